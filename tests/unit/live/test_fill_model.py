"""One fill model (``backtest.fill``) for the backtest, the paper broker and Alpaca's order type.

The paper broker, given the orders the backtest sizes, fills them as the backtest does (the
fill session's open or close, sells first, buys from the smallest, the last buy that cash
cannot cover filled with what is left after its fee); the Alpaca adapter sends the matching
auction orders (market-on-open ``opg``, market-on-close ``cls``), which the loopback fake
fills at opens that differ from the closes, and refuses a plan outside their window in one
line. A throttle lift between rebalances resizes the book alike on both sides.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest

from py_finance.backtest import BacktestConfig, run_backtest
from py_finance.errors import PyFinanceError
from py_finance.live.brokers.alpaca import AlpacaBroker
from py_finance.live.brokers.paper import PaperBroker
from py_finance.live.execution import OrderWindowClosed, execute
from py_finance.live.journal import record_intents
from py_finance.live.orders import OrderIntent, client_order_id, plan_orders, resized_weights
from py_finance.risk import RiskConfig
from tests.fakes.alpaca_server import FakeAlpaca

NY = ZoneInfo("America/New_York")
FEE_BPS = 10.0


def _book(n: int, m: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Closes, opens (the previous close moved by an overnight gap) and daily weights.

    Weights redraw a random part of the book each session and sum to 1, so cash runs short
    of the buys by about the fees every session and one buy is filled partly.
    """
    rng = np.random.default_rng(seed)
    closes = 100.0 * np.exp(np.cumsum(rng.normal(0.0003, 0.02, (n, m)), axis=0))
    prev = np.vstack([closes[:1], closes[:-1]])
    opens = prev * np.exp(rng.normal(0.0, 0.01, (n, m)))
    raw = rng.random((n, m))
    for t in range(1, n):
        keep = rng.random(m) < 0.6
        raw[t, keep] = raw[t - 1, keep]
    w = raw / raw.sum(axis=1, keepdims=True)
    idx = pd.bdate_range("2021-01-04", periods=n)
    cols = [f"S{j:02d}" for j in range(m)]
    return (
        pd.DataFrame(closes, index=idx, columns=cols),
        pd.DataFrame(opens, index=idx, columns=cols),
        pd.DataFrame(w, index=idx, columns=cols),
    )


@pytest.mark.parametrize("n", [pytest.param(45, marks=pytest.mark.slow), 8])
@pytest.mark.parametrize("fill", ["next_open", "next_close"])
def test_paper_broker_with_the_backtests_fill_model_gives_the_backtests_fills(
    tmp_path: Path, fill: str, n: int
) -> None:
    # n sessions (45; 8 in the quick suite), 8 names, daily rebalancing, 10 bps. Each
    # session the backtest's orders (targets w x V / p at the fill prices p, V the book at
    # those prices) go to the paper broker as pending orders and settle at that session's
    # open (or close): its cash, positions and marked equity are the backtest's, session by
    # session.
    closes, opens, weights = _book(n, 8, seed=4)
    cfg = BacktestConfig(cost_bps=FEE_BPS, initial_cash=100_000.0, fill=fill)
    res = run_backtest(closes, weights, cfg, opens=opens)
    broker = PaperBroker(
        tmp_path / "paper.sqlite",
        initial_cash=100_000.0,
        commission_bps=FEE_BPS,
        slippage_bps=0.0,
        fill_at=fill,
    )
    at = opens if fill == "next_open" else closes
    days = [d.date() for d in closes.index]
    equity = [broker.mark_to_market({}, days[0])]
    partial = 0
    for s in range(1, len(days)):
        trade = {c: float(at.iloc[s][c]) for c in at.columns}
        close = {c: float(closes.iloc[s][c]) for c in closes.columns}
        account = broker.account()
        value = account.cash + sum(q * trade[k] for k, q in account.positions.items())
        intents = plan_orders(
            {k: float(v) for k, v in weights.iloc[s - 1].items()},
            account.positions,
            trade,
            value,
            session=days[s - 1],
            run_id="fill-model",
            min_notional=0.0,
        )
        for intent in intents:
            assert broker.submit(intent, intent.ref_price).status == "pending"
        fills = broker.settle(close, days[s], opens=trade if fill == "next_open" else None)
        assert {f.client_order_id for f in fills} == {i.client_order_id for i in intents}
        assert all(f.price == trade[f.symbol] for f in fills)  # no slippage: the model's price
        partial += sum(f.status == "partially_filled" for f in fills)
        equity.append(broker.mark_to_market(close, days[s]))
        held = broker.account().positions
        shares = res.weights.iloc[s] * res.equity.iloc[s] / closes.iloc[s]
        np.testing.assert_allclose(
            [held.get(c, 0.0) for c in closes.columns], shares.to_numpy(), rtol=1e-9, atol=1e-9
        )
        assert broker.account().cash == pytest.approx(res.cash.iloc[s], rel=1e-9, abs=1e-6)
    np.testing.assert_allclose(equity, res.equity.to_numpy(), rtol=1e-9, atol=0)
    assert partial >= n // 2  # the cash shortfall path ran most sessions
    # The other fill model is another backtest: the fills matter.
    other = "next_close" if fill == "next_open" else "next_open"
    moved = run_backtest(closes, weights, BacktestConfig(cost_bps=FEE_BPS, fill=other), opens=opens)
    assert np.max(np.abs(moved.returns.to_numpy() - res.returns.to_numpy())) > 1e-3


def test_paper_broker_at_the_open_without_opens_is_one_clear_error(tmp_path: Path) -> None:
    broker = PaperBroker(
        tmp_path / "p.sqlite",
        initial_cash=1_000.0,
        commission_bps=0.0,
        slippage_bps=0.0,
        fill_at="next_open",
    )
    day = dt.date(2024, 3, 14)
    order = OrderIntent(client_order_id(day, "AAA", "buy", "r"), day, "AAA", "buy", 2.0, 100.0, 200)
    assert broker.submit(order, 100.0).status == "pending"
    with pytest.raises(PyFinanceError, match=r"fills at the open .* no opens for 2024-03-15"):
        broker.settle({"AAA": 110.0}, dt.date(2024, 3, 15))
    (fill,) = broker.settle({"AAA": 110.0}, dt.date(2024, 3, 15), opens={"AAA": 104.0})
    assert (fill.status, fill.price) == ("filled", 104.0)
    assert broker.mark_to_market({"AAA": 110.0}, dt.date(2024, 3, 15)) == 1_000 - 208 + 220


def test_throttle_lift_between_rebalances_gives_the_same_book_in_backtest_and_live(
    tmp_path: Path,
) -> None:
    # REDUCING halves a 1:1 book (row 3); A rallies while throttled (row 4: 150:300 held,
    # 400 cash); the throttle lifts at row 4's close. Doubling both would need 900 of 850:
    # both sides scale the book to full investment in its proportions, 1:2 (the backtest
    # used to fill the buys in key order until cash ran out: 0.6051 / 0.3945 with fees).
    # Live: resized_weights on the broker's positions at row 4's close, planned and filled
    # by the paper broker at row 5's close (the prices did not move), 10 bps both sides.
    px = [[100.0, 100.0], [100.0, 100.0], [40.0, 120.0], [40.0, 120.0]] + [[60.0, 120.0]] * 3
    idx = pd.bdate_range("2024-01-02", periods=len(px))
    prices = pd.DataFrame(px, index=idx, columns=["A", "B"])
    weights = pd.DataFrame(np.nan, index=idx, columns=["A", "B"])
    weights.iloc[0] = [0.5, 0.5]
    risk = RiskConfig(drawdown_throttle=0.15, reset_after_sessions=2)
    cfg = BacktestConfig(cost_bps=FEE_BPS, initial_cash=1000.0)
    res = run_backtest(prices, weights, cfg, risk=risk)
    assert list(res.states[3:5]) == ["REDUCING", "ACTIVE"]

    row4 = {c: float(prices.iloc[4][c]) for c in prices.columns}
    held = (res.weights.iloc[4] * res.equity.iloc[4] / prices.iloc[4]).to_dict()
    cash = float(res.cash.iloc[4])
    equity = cash + sum(q * row4[k] for k, q in held.items())
    targets = resized_weights(held, row4, equity, ratio=1.0 / 0.5)
    # Full investment in the book's proportions (about 1:2; the first buy paid fees).
    assert sum(targets.values()) == pytest.approx(1.0, rel=1e-12)
    ratio = held["B"] * row4["B"] / (held["A"] * row4["A"])
    assert targets["B"] / targets["A"] == pytest.approx(ratio, rel=1e-12)
    assert ratio == pytest.approx(2.0, rel=2e-3)

    day4, day5 = idx[4].date(), idx[5].date()
    path = tmp_path / "paper.sqlite"
    # The broker's book at row 4's close: bought there without costs, then traded with them.
    with PaperBroker(path, initial_cash=equity, commission_bps=0.0, slippage_bps=0.0) as seed:
        for k, q in held.items():
            seed.submit(OrderIntent(f"seed-{k}", day4, k, "buy", q, row4[k], q * row4[k]), row4[k])
    broker = PaperBroker(
        path, initial_cash=0.0, commission_bps=FEE_BPS, slippage_bps=0.0, fill_at="next_close"
    )
    assert broker.account().cash == pytest.approx(cash, rel=1e-12)
    intents = plan_orders(
        targets, held, row4, equity, session=day4, run_id="lift", min_notional=0.0
    )
    for intent in intents:
        broker.submit(intent, intent.ref_price)
    broker.settle(row4, day5)
    live_equity = broker.mark_to_market(row4, day5)
    live = {k: q * row4[k] / live_equity for k, q in broker.account().positions.items()}
    backtest = res.weights.iloc[5].to_dict()
    assert live == pytest.approx(backtest, rel=1e-9)
    # In proportion, up to the fees (the largest buy, B's, is the partly filled one); the
    # buys in key order gave about 550:300 here.
    assert backtest["B"] / backtest["A"] == pytest.approx(ratio, rel=5e-3)
    assert backtest["B"] < targets["B"] and backtest["A"] == pytest.approx(targets["A"], rel=2e-3)


# ------------------------------------------------------------------ Alpaca auction orders
def _at(hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(2024, 3, 14, hour, minute, tzinfo=NY).astimezone(dt.UTC)


def _alpaca(fake: FakeAlpaca, tmp_path: Path, fill: str | None) -> AlpacaBroker:
    return AlpacaBroker(
        fake.key,
        fake.secret,
        paper=True,
        state_path=tmp_path / "alpaca.sqlite",
        url_override=fake.url,
        fill_timeout_s=0.0,
        fill=fill,
        clock=fake.now,
        sleep=lambda s: None,
    )


def _intent(symbol: str, side: str, qty: float, price: float) -> OrderIntent:
    day = dt.date(2024, 3, 13)
    coid = client_order_id(day, symbol, side, "auction")
    return OrderIntent(coid, day, symbol, side, qty, price, qty * price)


@pytest.mark.parametrize(
    ("fill", "tif", "auction"),
    [("next_open", "opg", "open_auction"), ("next_close", "cls", "close_auction")],
)
def test_alpaca_auction_orders_fill_at_the_fake_auction(tmp_path, fill, tif, auction) -> None:
    # Sent at 20:00 ET after the decision close: whole shares, the fill model's time in
    # force; nothing fills until the auction, then at the opens (which differ from the
    # closes) or at the closes.
    closes = {"AAPL": 190.0, "MSFT": 410.0}
    opens = {"AAPL": 187.5, "MSFT": 414.25}
    with FakeAlpaca(
        cash=10_000.0, prices=closes, opens=opens, market_open=False, now=lambda: _at(20)
    ) as fake:
        broker = _alpaca(fake, tmp_path, fill)
        assert broker.order_window() is None
        assert broker.fractionable(["AAPL", "MSFT"]) == {"AAPL": False, "MSFT": False}
        first = broker.submit(_intent("AAPL", "buy", 10.0, 190.0), 190.0)
        second = broker.submit(_intent("MSFT", "buy", 3.6, 410.0), 410.0)
        bodies = [c.body for c in fake.calls("POST", "/v2/orders")]
        assert [b["time_in_force"] for b in bodies] == [tif, tif]
        assert [float(b["qty"]) for b in bodies] == [10.0, 3.0]  # whole shares
        assert first.open and second.open and first.qty_filled == 0.0
        assert getattr(fake, "open_auction" if tif == "cls" else "close_auction")() == 0
        assert getattr(fake, auction)() == 2
        done = broker.wait_for_fills([first.client_order_id, second.client_order_id], 0.0)
        expected = opens if tif == "opg" else closes
        assert [(f.status, f.price) for f in done] == [
            ("filled", expected["AAPL"]),
            ("filled", expected["MSFT"]),
        ]
        assert fake.cash == pytest.approx(10_000.0 - 10 * expected["AAPL"] - 3 * expected["MSFT"])
        broker.close()


def test_the_fake_refuses_fractional_auction_orders_and_day_orders_keep_their_fractions(
    tmp_path,
) -> None:
    with FakeAlpaca(cash=10_000.0, market_open=False, now=lambda: _at(20)) as fake:
        day = _alpaca(fake, tmp_path, None)
        assert day.submit(_intent("AAPL", "buy", 2.5, 190.0), 190.0).open
        assert fake.calls("POST", "/v2/orders")[-1].body["time_in_force"] == "day"
        assert float(fake.calls("POST", "/v2/orders")[-1].body["qty"]) == 2.5
        day.close()
        auction = _alpaca(fake, tmp_path, "next_open")
        rejected = auction.submit(_intent("MSFT", "buy", 0.4, 410.0), 410.0)
        assert rejected.status == "rejected" and "whole shares" in rejected.reason
        assert len(fake.calls("POST", "/v2/orders")) == 1  # nothing sent for it
        auction.close()


@pytest.mark.parametrize(
    ("fill", "hour", "minute", "refused"),
    [
        ("next_open", 9, 27, False),
        ("next_open", 9, 28, True),
        ("next_open", 17, 5, True),
        ("next_open", 19, 0, False),
        ("next_close", 9, 28, False),
        ("next_close", 15, 49, False),
        ("next_close", 15, 50, True),
        ("next_close", 18, 59, True),
        ("next_close", 19, 0, False),
    ],
)
def test_auction_orders_outside_their_window_stop_the_plan_in_one_line(
    tmp_path, fill, hour, minute, refused
) -> None:
    # Alpaca's clock decides: opg is refused 09:28-19:00 ET, cls 15:50-19:00 ET. Inside the
    # window nothing is sent and the run stops with one line; outside, the plan goes out.
    with FakeAlpaca(cash=10_000.0, market_open=False, now=lambda: _at(hour, minute)) as fake:
        broker = _alpaca(fake, tmp_path, fill)
        journal = tmp_path / "journal.sqlite"
        intents = [_intent("AAPL", "buy", 2.0, 190.0)]
        record_intents(journal, intents)
        if refused:
            with pytest.raises(OrderWindowClosed) as stopped:
                execute(broker, intents, {"AAPL": 190.0}, journal, wait_budget_s=0.0)
            text = str(stopped.value)
            assert "\n" not in text and f"{hour:02d}:{minute:02d} ET" in text
            kind = "market-on-open" if fill == "next_open" else "market-on-close"
            assert f"alpaca refuses {kind} orders" in text and "nothing was sent" in text
            assert fake.calls("POST", "/v2/orders") == []
        else:
            done = execute(broker, intents, {"AAPL": 190.0}, journal, wait_budget_s=0.0)
            assert [f.status for f in done.fills] == ["pending"]
        broker.close()
