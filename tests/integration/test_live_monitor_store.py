"""The live monitor on a champion of the synthetic market, through the store and the brokers.

A champion is trained and promoted once per module on the synthetic market (which has
opens) with ``backtest.fill=next_open`` and a feature set that holds one feature of the
opens, Alpha158's ``OPEN0`` (open / close), beside close-based momentum and volatility.
Each test trades a private copy of that project root with the real daily loop:

- through the loopback Alpaca fake, whose opening auction fills the market-on-open orders
  at the next session's opens (which differ from the closes): the monitor's shortfall
  against the decision close is the one computed here from the fills and the store;
- on the paper broker over sessions appended to the store after the champion's data, the
  opens of which are moved from some session on: a drift alert names ``OPEN0``, once, and
  the untouched store raises none.
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from py_finance.config import build, compose
from py_finance.data.calendar import session_closes, sessions
from py_finance.data.sources.synthetic import SyntheticSource
from py_finance.knownanswer import market_overrides
from py_finance.live.daily_log import read_daily_log
from py_finance.live.loop import run_live_day
from py_finance.pipeline.context import Context

pytestmark = [pytest.mark.integration, pytest.mark.slow]

NY = ZoneInfo("America/New_York")
MARKET = {"n_active": 30, "n_sessions": 1260, "edge": 0.05, "seed": 0}
LIVE_SESSIONS = 29  # sessions of the market after the champion's data
OVERRIDES = [
    "walk_forward.min_train_sessions=504",
    "regimes.min_train_sessions=252",
    "model.n_estimators=30",
    "model.learning_rate=0.1",
    "model.patience=0",
    "portfolio.top_k=5",
    "promotion.dsr_confidence=0.5",
    "promotion.min_oos_sessions=252",
    "backtest.fill=next_open",
    "features=basic",
    # Alpha158's open / close only: the one feature a change of the opens moves.
    "+features.groups=[{kind:alpha158,windows:[5],kbar:false,price:[OPEN],include:[]}]",
    "live.monitor.drift_window=5",  # PSI over 5 sessions: a short track can judge drift
]


def _days() -> pd.DatetimeIndex:
    first, last = SyntheticSource(**MARKET).coverage()
    return sessions(first, last)


def _ctx(root: Path, *extra: str) -> Context:
    base = [o for o in market_overrides(**MARKET) if not o.startswith("data.end=")]
    end = _days()[-LIVE_SESSIONS - 1].date()
    return Context(build(compose([*base, f"data.end={end}", *OVERRIDES, *extra])), root)


@pytest.fixture(scope="module")
def synthetic_champion(tmp_path_factory) -> Path:
    from py_finance.pipeline import evaluation, research

    root = tmp_path_factory.mktemp("synthetic-champion")
    ctx = _ctx(root)
    research.ingest(ctx)
    research.features(ctx)
    research.labels(ctx)
    research.regimes(ctx)
    research.train(ctx, progress=False)
    evaluation.backtest(ctx)
    evaluation.report(ctx)
    decision = evaluation.promote(ctx)
    assert decision["promoted"], decision
    return root


@pytest.fixture
def root(synthetic_champion, tmp_path) -> Path:
    out = tmp_path / "root"
    shutil.copytree(synthetic_champion, out)
    return out


def _after_close(day: pd.Timestamp) -> pd.Timestamp:
    return session_closes(pd.DatetimeIndex([day]))[0] + pd.Timedelta(minutes=30)


def _row(frame: pd.DataFrame, day: pd.Timestamp) -> dict[str, float]:
    row = frame.loc[day].dropna()
    return {str(k): float(v) for k, v in row.to_dict().items()}


def test_alpaca_opening_auction_fills_measure_the_shortfall_against_the_close_exactly(
    root, monkeypatch
):
    from py_finance.live import report
    from py_finance.live.brokers.alpaca import AlpacaBroker
    from tests.fakes.alpaca_server import FakeAlpaca

    # The MLflow chart of each day ends at that day (the first of a new track included).
    charted: list[dt.date] = []
    figure = report.tracking_figure

    def spy(frame: pd.DataFrame):
        charted.append(frame.index[-1].date())
        return figure(frame)

    monkeypatch.setattr(report, "tracking_figure", spy)

    ctx = _ctx(root)
    days = _days()
    d1, d2 = days[-LIVE_SESSIONS - 3], days[-LIVE_SESSIONS - 2]  # inside the champion's data
    known = _after_close(d2)
    closes = ctx.store.wide("adj_close", None, None, None, known)
    opens = ctx.store.wide("open", None, None, None, known)
    clock = {"t": dt.datetime.combine(d1.date(), dt.time(20, 0), NY)}
    with FakeAlpaca(
        cash=100_000.0,
        prices=_row(closes, d1),
        opens=_row(opens, d1),
        market_open=False,
        now=lambda: clock["t"].astimezone(dt.UTC),
    ) as fake:

        def factory(name, c):
            return AlpacaBroker(
                fake.key,
                fake.secret,
                paper=True,
                url_override=fake.url,
                state_path=c.root / "data/live/alpaca_paper.sqlite",
                fill_timeout_s=0.0,
                poll_interval_s=0.05,
                fill="next_open",
                clock=fake.now,
                sleep=lambda s: None,
            )

        # Day 1, 20:00 ET after its close: the plan goes out as market-on-open orders.
        first = run_live_day(
            ctx,
            dry_run=False,
            as_of=_after_close(d1),
            broker="alpaca_paper",
            broker_factory=factory,
        )
        bodies = [c.body for c in fake.calls("POST", "/v2/orders")]
        assert bodies and len(bodies) == len(first.payload["orders"])
        assert {b["time_in_force"] for b in bodies} == {"opg"}
        assert {f.status for f in first.payload["fills"]} == {"pending"}
        # Day 2's opening auction fills them at day 2's opens; its close is the fake's price.
        fake.opens, fake.prices = _row(opens, d2), _row(closes, d2)
        assert fake.close_auction() == 0
        assert fake.open_auction() == len(bodies)
        clock["t"] = dt.datetime.combine(d2.date(), dt.time(20, 0), NY)
        second = run_live_day(
            ctx,
            dry_run=False,
            as_of=_after_close(d2),
            broker="alpaca_paper",
            broker_factory=factory,
        )
        assert second.status == "ok"
        filled = {o["client_order_id"]: o for o in fake.orders.values() if o["status"] == "filled"}
    assert len(filled) == len(bodies)
    assert charted == [d1.date(), d2.date()]

    doc = read_daily_log(root / "logs/live_trading/alpaca_paper", d2.date())
    monitor = doc["monitor"]
    assert monitor["fill_model"] == "next_open"
    rows = {r["client_order_id"]: r for r in monitor["shortfall"]["orders"]}
    assert set(rows) == set(filled)
    decision, at_open = _row(closes, d1), _row(opens, d2)
    for coid, order in filled.items():
        sym, price = order["symbol"], float(order["filled_avg_price"])
        sign = 1.0 if order["side"] == "buy" else -1.0
        close = decision[sym]
        # The open (as the fake reports it, a decimal string), not the close.
        assert price == pytest.approx(at_open[sym], rel=1e-9) and price != close
        expected = (price - close) / close * 1e4 * sign
        assert rows[coid]["bps_vs_decision"] == pytest.approx(expected, rel=0, abs=1e-9)
        # ~0: the fill is the modelled open up to the 9 decimals of the reported price.
        assert rows[coid]["bps_vs_model"] == pytest.approx(0.0, abs=1e-6)
        assert rows[coid]["qty"] == float(order["filled_qty"])
    # The notional-weighted mean of the orders is the session's figure, and it is not zero:
    # the opens differed from the decision closes.
    notional = {c: float(o["filled_qty"]) * float(o["filled_avg_price"]) for c, o in filled.items()}
    weighted = sum(rows[c]["bps_vs_decision"] * n for c, n in notional.items()) / sum(
        notional.values()
    )
    assert monitor["shortfall"]["bps_vs_decision"] == pytest.approx(weighted, rel=1e-12)
    assert abs(weighted) > 1.0


class _Alerts:
    """Records the alerts the loop sends (its only channel)."""

    def __init__(self) -> None:
        self.sent: list = []

    def send(self, alert) -> list:
        self.sent.append(alert)
        return []


SHIFT_FROM = 6  # the first live session whose opens are moved
DRIFT_SESSIONS = 14  # live sessions traded on each store


def _drift_track(root: Path, *, shift: float) -> tuple[list[dict], list]:
    """Append the live sessions' bars (opens x ``shift`` from SHIFT_FROM on), trade each."""
    ctx = _ctx(root)
    live = _days()[-LIVE_SESSIONS:][:DRIFT_SESSIONS]
    source = SyntheticSource(**MARKET)
    bars = source.bars(source.symbols(), live[0].date(), live[-1].date())
    moved = pd.to_datetime(bars["session"]) >= live[SHIFT_FROM]
    bars.loc[moved, "open"] *= shift
    bars["high"] = bars[["high", "open"]].max(axis=1)  # a valid bar: high >= open
    ctx.store.write_bars(bars)
    alerts = _Alerts()
    for day in live:
        out = run_live_day(ctx, dry_run=False, as_of=_after_close(day), alerter=alerts)
        assert out.status == "ok", out.payload.get("errors")
    log_dir = root / "logs/live_trading"
    return [read_daily_log(log_dir, d.date()) for d in live], alerts.sent


def test_opens_moved_in_the_store_from_some_session_on_raise_one_drift_alert_naming_open0(
    root, tmp_path
):
    # The control first: the same sessions, the store as the source gives them.
    control = tmp_path / "control"
    shutil.copytree(root, control)
    calm_logs, calm_alerts = _drift_track(control, shift=1.0)
    assert all(e["monitor"]["drift"]["psi"] for e in calm_logs)
    assert not [a for a in calm_alerts if a.kind == "feature_drift"], [
        e["monitor"]["drift"]["top"] for e in calm_logs
    ]

    logs, alerts = _drift_track(root, shift=1.05)
    drift = [a for a in alerts if a.kind == "feature_drift"]
    assert len(drift) == 1, [a.subject for a in drift]
    assert drift[0].subject.split(": ", 1)[1].startswith("feature drift: OPEN0 ")
    fired = [e["session"] for e in logs].index(str(drift[0].session))
    assert fired >= SHIFT_FROM
    assert [k for k in logs[fired]["monitor"]["alerts_active"] if k.startswith("feature")] == [
        "feature_drift:OPEN0"
    ]
    # Only the moved feature: every other one has the control's PSI.
    last, calm = logs[-1]["monitor"]["drift"]["psi"], calm_logs[-1]["monitor"]["drift"]["psi"]
    assert last["OPEN0"] > 0.25 >= calm["OPEN0"]
    assert {k: v for k, v in last.items() if k != "OPEN0"} == pytest.approx(
        {k: v for k, v in calm.items() if k != "OPEN0"}, rel=1e-12
    )
