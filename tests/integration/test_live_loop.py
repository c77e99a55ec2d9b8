"""The daily loop end to end on a promoted champion: replays, gates, brokers, alerts, halts."""

from __future__ import annotations

import functools
import itertools
import json
import logging
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from py_finance.config import build, compose
from py_finance.data.calendar import session_closes, sessions
from py_finance.errors import DataError
from py_finance.live import control
from py_finance.live.alerts import AlertSettings, alerter_from_env
from py_finance.live.daily_log import logged_sessions, read_daily_log
from py_finance.live.loop import LiveRefusal, run_live_day
from py_finance.pipeline.context import Context
from tests.fakes.slack_server import FakeSlack
from tests.integration.conftest import LIVE_OVERRIDES

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
LAST = pd.Timestamp("2000-12-29T23:00Z")


def ctx_at(root: Path, *overrides: str) -> Context:
    return Context(build(compose([*LIVE_OVERRIDES, *overrides])), root)


def replay_times(n: int) -> list[pd.Timestamp]:
    days = sessions("2000-09-01", "2000-12-29")[-n:]
    return [t + pd.Timedelta(minutes=30) for t in session_closes(days)]


def slack_env(slack: FakeSlack) -> dict[str, str]:
    return {"ALERT_SLACK_WEBHOOK_URL": slack.webhook_url}


def test_replaying_40_sessions_writes_40_logs_and_the_gates_match_the_account(live_root):
    ctx = ctx_at(live_root)
    times = replay_times(40)
    with FakeSlack() as slack:
        for t in times:
            run_live_day(ctx, dry_run=False, as_of=t, enable_alerts=True, env=slack_env(slack))
        texts = [p.json["text"] for p in slack.posts]
    log_dir = live_root / "logs/live_trading"
    logs = [read_daily_log(log_dir, s) for s in logged_sessions(log_dir)]
    assert len(logs) == 40
    assert [pd.Timestamp(e["session"]) for e in logs] == [
        t.normalize().tz_localize(None) for t in times
    ]
    assert all(e["schema_version"] == 3 and e["status"] == "ok" for e in logs)
    assert all(len(e["runs"]) == 1 for e in logs)

    # Every regime change between consecutive sessions was alerted once, and every day summarised.
    changes = sum(a["regime"] != b["regime"] for a, b in itertools.pairwise(logs))
    assert sum("regime" in t and "->" in t for t in texts) == changes
    assert sum("equity" in t for t in texts) == 40

    # The gates from the paper account itself (its SQLite file), not from the logs.
    db = sqlite3.connect(live_root / "data/live/paper_broker.sqlite")
    trades = db.execute("SELECT COUNT(*) FROM orders WHERE fill_qty > 0").fetchone()[0]
    equity = np.array([r[0] for r in db.execute("SELECT equity FROM equity ORDER BY session")])
    db.close()
    rets = equity[1:] / equity[:-1] - 1
    drawdown = float(np.max(1 - equity / np.maximum.accumulate(equity)))
    vol = float(rets.std(ddof=1) * np.sqrt(252))
    sharpe = float(rets.mean() / rets.std(ddof=1) * np.sqrt(252))
    expected = {
        "min_paper_trading_days": True,
        "min_paper_trades": trades >= 50,
        "max_paper_drawdown_pct": drawdown <= 0.20,
        "max_paper_volatility": vol <= 0.40,
        "min_paper_sharpe": sharpe >= 0.0,
        "max_consecutive_errors": True,
        # The live monitor's checks at the last log (its own test: tests/unit/live/test_monitor.py).
        **{f"monitor_{k}": not c["breached"] for k, c in logs[-1]["monitor"]["checks"].items()},
    }
    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts/check_live_readiness.py"),
            "--json",
            "--log-dir",
            str(log_dir),
        ],
        capture_output=True,
        text=True,
        cwd=live_root,
    )
    report = json.loads(out.stdout)
    got = {g["name"]: g["passed"] for g in report["report"]["gates"]}
    assert got == expected, (got, trades, drawdown, vol, sharpe)
    assert out.returncode == (0 if all(expected.values()) else 1)
    values = {g["name"]: g["value"] for g in report["report"]["gates"]}
    assert values["min_paper_trades"] == trades
    assert values["max_paper_drawdown_pct"] == pytest.approx(drawdown, rel=1e-9)


def test_stale_data_means_no_trading_an_error_log_and_an_alert(live_root):
    ctx = ctx_at(live_root)
    # Six sessions after the store's last one (2000-12-29).
    with FakeSlack() as slack, pytest.raises(DataError, match="stale data"):
        run_live_day(
            ctx,
            dry_run=False,
            as_of=pd.Timestamp("2001-01-09T23:00Z"),
            enable_alerts=True,
            env=slack_env(slack),
        )
    entry = read_daily_log(live_root / "logs/live_trading", pd.Timestamp("2001-01-09").date())
    assert entry["status"] == "stale" and "6 session(s) behind" in entry["errors"][0]
    assert "orders" not in entry
    assert any("stale data" in p.json["text"] for p in slack.posts)
    assert not (live_root / "data/live/paper_broker.sqlite").exists()  # no broker was opened


def test_halt_stops_every_order_until_resume(live_root):
    ctx = ctx_at(live_root)
    halt = control.halt(ctx, "paper", "checking fills")
    assert (halt.in_force, halt.canceled) == (True, 0)
    halted = run_live_day(ctx, dry_run=False, as_of=LAST)
    assert halted.status == "halted"
    assert not (live_root / "logs/live_trading/daily_log_2000-12-29.json").exists()
    assert control.resume(ctx)
    traded = run_live_day(ctx, dry_run=False, as_of=LAST)
    assert traded.status == "ok" and traded.payload["fills"]


def test_a_holiday_with_the_last_session_logged_is_skipped(live_root):
    ctx = ctx_at(live_root)
    run_live_day(ctx, dry_run=False, as_of=pd.Timestamp("2000-12-22T23:00Z"))
    # Christmas Day 2000 was a Monday holiday: the last session, 22 December, is logged.
    again = run_live_day(ctx, dry_run=False, as_of=pd.Timestamp("2000-12-25T23:00Z"))
    assert again.skipped and again.status == "closed"
    assert str(again.session) == "2000-12-22"


def test_alpaca_live_needs_the_gates_and_a_confirmation_then_trades_the_ramp_share(live_root):
    ctx = ctx_at(live_root)
    from py_finance.live.brokers.paper import PaperBroker

    def paper_as_live(name, c):  # the live account stands in as a second paper account
        return PaperBroker(
            c.root / "data/live/live.sqlite",
            initial_cash=100_000.0,
            commission_bps=0.0,
            slippage_bps=0.0,
        )

    with pytest.raises(LiveRefusal, match="readiness gates fail"):
        run_live_day(
            ctx,
            dry_run=False,
            as_of=LAST,
            broker="alpaca_live",
            broker_factory=paper_as_live,
            env={},
        )
    # A paper track that passes every gate.
    log_dir = live_root / "logs/live_trading"
    log_dir.mkdir(parents=True)
    days = sessions("2000-06-01", "2000-12-28")[-35:]
    for i, day in enumerate(days):
        doc = {
            "schema_version": 1,
            "session": day.date().isoformat(),
            "status": "ok",
            "dry_run": False,
            "broker": "paper",
            "errors": [],
            "equity": 100_000.0 * (1.001**i) * (1 + 0.002 * (-1) ** i),
            "fills": [
                {"client_order_id": f"x{i}-{k}", "qty_filled": 1.0, "status": "filled"}
                for k in range(2)
            ],
        }
        (log_dir / f"daily_log_{day.date().isoformat()}.json").write_text(json.dumps(doc))
    with pytest.raises(LiveRefusal, match="confirm the live account"):
        run_live_day(
            ctx,
            dry_run=False,
            as_of=LAST,
            broker="alpaca_live",
            broker_factory=paper_as_live,
            env={},
        )
    result = run_live_day(
        ctx,
        dry_run=False,
        as_of=LAST,
        broker="alpaca_live",
        broker_factory=paper_as_live,
        env={"PY_FINANCE_CONFIRM_LIVE": "yes"},
    )
    assert result.payload["capital_fraction"] == 0.05
    assert 0 < result.payload["gross_exposure"] <= 0.05 + 1e-12
    invested = sum(f.notional for f in result.payload["fills"])
    assert invested <= 0.05 * 100_000.0 * (1 + 1e-9)
    assert result.log_path.parent == live_root / "logs/live_trading/alpaca_live"


def test_an_alpaca_paper_day_through_the_fake_server_reconciles_clean(live_root, tmp_path):
    from py_finance.live.brokers.alpaca import AlpacaBroker
    from tests.fakes.alpaca_server import FakeAlpaca

    ctx = ctx_at(live_root)
    closes = ctx.store.wide("adj_close", None, None, None, LAST)
    with FakeAlpaca(cash=100_000.0, prices=closes.iloc[-6].to_dict(), market_open=False) as fake:

        def factory(name, c):
            return AlpacaBroker(
                fake.key,
                fake.secret,
                paper=True,
                url_override=fake.url,
                state_path=c.root / "data/live/alpaca_paper.sqlite",
                fill_timeout_s=0.2,
                poll_interval_s=0.05,
                sleep=lambda s: None,
            )

        first = run_live_day(
            ctx,
            dry_run=False,
            as_of=pd.Timestamp("2000-12-21T23:00Z"),
            broker="alpaca_paper",
            broker_factory=factory,
        )
        sent = first.payload["orders"]
        assert sent and len(fake.created) == len(sent)
        assert {f.status for f in first.payload["fills"]} == {"pending"}  # market closed
        fake.prices = closes.iloc[-5].to_dict()
        fake.fill_pending()
        second = run_live_day(
            ctx,
            dry_run=False,
            as_of=pd.Timestamp("2000-12-22T23:00Z"),
            broker="alpaca_paper",
            broker_factory=factory,
        )
        assert second.payload["reconciliation"]["clean"], second.payload["reconciliation"]
        assert len(fake.created) == len(sent) + len(second.payload["orders"])
        assert fake.duplicate_posts == 0
    assert (live_root / "logs/live_trading/alpaca_paper/daily_log_2000-12-22.json").exists()


def test_secrets_never_reach_logs_alerts_daily_logs_or_mlflow(live_root, caplog):
    from tests.fakes.smtp_server import FakeSMTP

    password, key, secret = "abcd efgh ijkl mnop", "PKTESTKEY123456789", "sEcReT/abc+xyz0987654321"
    ctx = ctx_at(live_root)
    with FakeSlack() as slack, FakeSMTP(tls=True, login=("me@example.com", password)) as smtp:
        env = {
            "ALERT_EMAIL_SMTP_HOST": "127.0.0.1",
            "ALERT_EMAIL_SMTP_PORT": str(smtp.port),
            "ALERT_EMAIL_USERNAME": "me@example.com",
            "ALERT_EMAIL_PASSWORD": password,
            "ALERT_EMAIL_FROM": "me@example.com",
            "ALERT_EMAIL_TO": "ops@example.com",
            "ALERT_SLACK_WEBHOOK_URL": slack.webhook_url,
            "APCA_API_KEY_ID": key,
            "APCA_API_SECRET_KEY": secret,
        }
        alerter = alerter_from_env(
            env, AlertSettings(enabled=True), ssl_context=smtp.client_context
        )
        caplog.set_level(logging.DEBUG)
        run_live_day(ctx, dry_run=False, as_of=LAST, env=env, alerter=alerter)
        # The loop installed redaction on the handlers: a careless log line is masked too.
        logging.getLogger("py_finance").info("connecting with %s and %s", key, secret)
        mails = [m.message.as_string() for m in smtp.messages]
        posts = [p.raw.decode() for p in slack.posts]
    assert mails and posts, "both channels must have received the daily summary"
    token = slack.webhook_url.rsplit("/", 1)[-1]
    texts = [caplog.text, *mails, *posts]
    texts += [p.read_text() for p in (live_root / "logs").rglob("*.json")]
    db = sqlite3.connect(live_root / "mlflow.db")
    for table in (
        "params",
        "tags",
        "latest_metrics",
        "model_version_tags",
        "registered_model_tags",
    ):
        texts += [repr(r) for r in db.execute(f"SELECT * FROM {table}")]
    db.close()
    texts += [
        p.read_text(errors="ignore")
        for p in (live_root / "mlruns").rglob("*")
        if p.is_file() and p.stat().st_size < 1_000_000
    ]
    for value in (password, key, secret, slack.webhook_url, token):
        leaks = [i for i, t in enumerate(texts) if value in t]
        assert not leaks, f"a secret leaked ({value[:4]}...) into texts {leaks}"


def test_the_data_driven_policy_trades_live_on_out_of_sample_history(live_root):
    # The champion was evaluated with the fixed policy: trading another is an explicit override.
    ctx = ctx_at(live_root, "regime_policy=data_driven", "risk=full")
    result = run_live_day(ctx, dry_run=False, as_of=LAST, override=True)
    p = result.payload
    assert p["regime_policy"] == "data_driven" and p["regime_exposure"] is None
    weights = pd.Series(p["target_weights"], dtype="float64")
    assert len(weights) and weights.max() <= 0.20 + 1e-9 and weights.sum() <= 1 + 1e-9
    # The same day under the fixed policy: the data-driven multiplier differs from the
    # fixed one (1.0/0.4/0.7/0.25), so the gross exposure does too.
    fixed = run_live_day(
        ctx_at(live_root, "risk=full"), dry_run=True, as_of=LAST, override=True
    ).payload
    assert fixed["regime_policy"] == "fixed"
    assert p["gross_exposure"] != pytest.approx(fixed["gross_exposure"])


def run_script(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("ALERT_", "APCA_", "PY_FINANCE_"))
    }
    return subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts/run_live_loop.py"),
            "--root",
            str(root),
            *args,
            *LIVE_OVERRIDES,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def test_the_script_takes_every_seed_flag_and_refuses_live_money_without_gates(live_root):
    done = run_script(
        live_root,
        "--dry-run",
        "--as-of",
        "last-session",
        "--skip-if-logged",
        "--regime-aware",
        "--vol-scaling",
        "--drawdown-throttle",
        "--sector-tilts",
        "--enable-alerts",
        "--override",  # the flags build the seed's strategy, not the champion's recorded one
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "2000-12-29 (dry run)" in done.stdout and "survivorship bias" in done.stdout
    entry = read_daily_log(live_root / "logs/live_trading", pd.Timestamp("2000-12-29").date())
    assert entry["dry_run"] and entry["regime_policy"] == "fixed"

    refused = run_script(live_root, "--broker", "alpaca_live", "--as-of", "last-session")
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines()[-1].startswith("error: --broker alpaca_live refused")

    halted = run_script(live_root, "--halt", "maintenance")
    assert halted.returncode == 0 and "the halt is in force" in halted.stdout
    blocked = run_script(live_root, "--as-of", "last-session")
    assert blocked.returncode == 0 and "trading is halted" in blocked.stdout
    assert run_script(live_root, "--resume").stdout.strip() == "trading resumed"


def test_a_throttle_that_trips_between_rebalances_resizes_the_holdings(live_root):
    ctx = ctx_at(live_root)  # risk=default: throttle at a 15% drawdown, exposure 0.5
    assert ctx.settings.portfolio.rebalance_every > 1
    day1 = run_live_day(ctx, dry_run=False, as_of=pd.Timestamp("2000-12-21T23:00Z"))
    assert day1.payload["rebalance"]["due"] and day1.payload["throttle_multiplier"] == 1.0
    # An earlier high-water mark twice today's equity: the next close is a 50% drawdown.
    db = sqlite3.connect(live_root / "data/live/paper_broker.sqlite")
    with db:
        db.execute(
            "INSERT INTO equity (session, equity) VALUES (?, ?)",
            ("2000-12-20", 2 * day1.payload["equity"]),
        )
    db.close()

    day2 = run_live_day(ctx, dry_run=False, as_of=pd.Timestamp("2000-12-22T23:00Z"))
    p = day2.payload
    assert not p["rebalance"]["due"]  # no rebalance today ...
    assert p["risk_state"] == "REDUCING" and p["throttle_multiplier"] == 0.5
    assert p["plan"] == "resize"  # ... but the throttle tripped: the book is halved now
    assert p["rebalance"]["throttle_resize"] == {
        "from_multiplier": 1.0,
        "to_multiplier": 0.5,
        "ratio": 0.5,
    }
    held = p["positions"]  # day 1's buys filled at this close; today's sells fill at the next
    assert held and {o["side"] for o in p["orders"]} == {"sell"}
    assert {o["symbol"]: o["qty"] for o in p["orders"]} == pytest.approx(
        {sym: qty / 2 for sym, qty in held.items()}
    )
    # The next session: the book is sized at 0.5 already, nothing more is traded.
    day3 = run_live_day(ctx, dry_run=False, as_of=pd.Timestamp("2000-12-26T23:00Z"))
    assert day3.payload["plan"] == "none" and day3.payload["orders"] == []
    assert day3.payload["positions"] == pytest.approx({s: q / 2 for s, q in held.items()})


def test_a_throttle_halt_between_rebalances_sells_the_book_that_session(live_root):
    ctx = ctx_at(live_root, "risk.halt_drawdown=0.3")
    day = functools.partial(run_live_day, ctx, dry_run=False, override=True)  # halt: not recorded
    day1 = day(as_of=pd.Timestamp("2000-12-21T23:00Z"))
    assert day1.payload["rebalance"]["due"] and day1.payload["orders"]
    db = sqlite3.connect(live_root / "data/live/paper_broker.sqlite")
    with db:  # an earlier high-water mark twice today's equity: a 50% drawdown
        db.execute(
            "INSERT INTO equity (session, equity) VALUES (?, ?)",
            ("2000-12-20", 2 * day1.payload["equity"]),
        )
    db.close()

    day2 = day(as_of=pd.Timestamp("2000-12-22T23:00Z"))
    p = day2.payload
    assert not p["rebalance"]["due"]
    assert p["risk_state"] == "HALTED" and p["throttle_multiplier"] == 0.0
    assert p["plan"] == "resize" and p["rebalance"]["throttle_resize"]["ratio"] == 0.0
    held = p["positions"]
    assert held and {o["side"] for o in p["orders"]} == {"sell"}
    assert {o["symbol"]: o["qty"] for o in p["orders"]} == pytest.approx(held)  # all of it
    # The sells fill at the next close; an emptied book has nothing left to resize.
    day3 = day(as_of=pd.Timestamp("2000-12-26T23:00Z"))
    assert day3.payload["risk_state"] == "HALTED"
    assert day3.payload["plan"] == "none" and day3.payload["orders"] == []
    assert day3.payload["positions"] == {}
