"""The real CLI against the loopback Alpaca fake, under the faults of issue 22.

Each test runs ``scripts/run_live_loop.py`` (or ``check_live_readiness.py``) as a fresh
process with the real alpaca-py client, and checks what a user sees (exit status, the
``error:`` line), what is written (daily log, journal), what is alerted, and that no order
is sent twice or lost (a rerun after the fault sends each planned order exactly once).
"""

from __future__ import annotations

import base64
import collections
import json
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import pandas as pd
import pytest

from py_finance.live.daily_log import daily_log_path, read_daily_log
from tests.fakes.alpaca_server import FakeAlpaca, Fault
from tests.fakes.slack_server import FakeSlack
from tests.integration.test_live_alpaca_cli import (
    AS_OF,
    KEY,
    LOG_DIR,
    SCRIPT,
    SECRET,
    SESSION,
    closes,
    rate_limited,
    run_cli,
)

pytestmark = pytest.mark.integration

LOOKUPS = "/v2/orders:by_client_order_id"
JOURNAL = "data/live/alpaca_paper.sqlite"


def fake_at(root: Path, **kwargs) -> FakeAlpaca:
    return FakeAlpaca(
        cash=100_000.0,
        prices=closes(root),
        market_open=False,
        key=KEY,
        secret=SECRET,
        **kwargs,
    )


def last_line(done: subprocess.CompletedProcess[str]) -> str:
    return done.stderr.strip().splitlines()[-1]


def pending(root: Path) -> list[str]:
    """Journaled intents not marked submitted (nor abandoned)."""
    db = sqlite3.connect(root / JOURNAL)
    try:
        rows = db.execute(
            "SELECT client_order_id FROM intents WHERE submitted_at IS NULL "
            "AND abandoned_at IS NULL ORDER BY seq"
        ).fetchall()
    finally:
        db.close()
    return [r[0] for r in rows]


def assert_each_sent_once(fake: FakeAlpaca, coids: list[str], *, others: tuple[str, ...] = ()):
    assert collections.Counter(fake.created) == collections.Counter([*coids, *others])
    assert fake.duplicate_posts == 0


# ---------------------------------------------------------------- 1. degraded, then a failed read
def _refused_after_the_third_send(fake: FakeAlpaca) -> None:
    fake.after("POST", "/v2/orders", 3, fake.refuse)


def _a_storm_then_account_503s(fake: FakeAlpaca) -> None:
    fake.inject("POST", "/v2/orders", *[rate_limited()] * 100)
    # The targets step reads the account; the read after the sends fails every try.
    fake.inject("GET", "/v2/account", Fault.none(), *[Fault.error(503)] * 20)


def _every_path_429_after_the_first_send(fake: FakeAlpaca) -> None:
    fake.after("POST", "/v2/orders", 1, lambda: fake.inject("*", "*", *[rate_limited()] * 2000))


@pytest.mark.parametrize(
    "scenario",
    [
        _refused_after_the_third_send,
        _a_storm_then_account_503s,
        _every_path_429_after_the_first_send,
    ],
    ids=["refused-after-3-sends", "storm-then-account-503", "all-429-after-1-send"],
)
def test_a_degraded_run_that_fails_a_read_logs_alerts_and_names_the_unconfirmed_orders(
    live_root: Path, scenario: Callable[[FakeAlpaca], None]
):
    with fake_at(live_root) as fake, FakeSlack() as slack:
        alerts = {"ALERT_SLACK_WEBHOOK_URL": slack.webhook_url}
        scenario(fake)
        first = run_cli(live_root, fake, "--as-of", AS_OF, "--enable-alerts", env=alerts)

        assert first.returncode == 2, first.stderr[-3000:]
        assert "Traceback" not in first.stderr
        path = daily_log_path(live_root / LOG_DIR, SESSION)
        assert path.exists(), f"no daily log: {first.stderr[-2000:]}"
        doc = read_daily_log(live_root / LOG_DIR, SESSION)
        coids = [o["client_order_id"] for o in doc["orders"]]
        unconfirmed = [f["client_order_id"] for f in doc["fills"] if f["status"] == "unconfirmed"]
        assert len(coids) >= 4 and unconfirmed, doc["fills"]
        assert doc["status"] == "error" and [r["status"] for r in doc["runs"]] == ["error"]
        degraded = [e for e in doc["errors"] if e.startswith("degraded:")]
        assert len(degraded) == 1 and len(doc["errors"]) == 2, doc["errors"]
        assert all(c in degraded[0] for c in unconfirmed)
        # The one error line names the failed read and every unconfirmed order.
        line = last_line(first)
        assert line.startswith("error: alpaca ") and "degraded:" in line, line
        assert all(c in line for c in unconfirmed)
        assert len([x for x in first.stderr.splitlines() if x.startswith("error:")]) == 1
        # Alerted: the failure with the degraded line.
        texts = [p.json["text"] for p in slack.posts]
        failed = [t for t in texts if "2000-12-29: error" in t]
        assert len(failed) == 1 and all(c in failed[0] for c in unconfirmed), texts
        # Nothing the broker did not confirm is marked sent.
        assert set(unconfirmed) <= set(pending(live_root))

        # The rerun, once Alpaca answers: each planned order exactly once.
        fake.faults.clear()
        fake.triggers.clear()
        fake.restart()
        second = run_cli(live_root, fake, "--as-of", AS_OF)
        assert second.returncode == 0, second.stderr[-3000:]
        assert_each_sent_once(fake, coids)
    doc = read_daily_log(live_root / LOG_DIR, SESSION)
    assert [r["status"] for r in doc["runs"]] == ["error", "ok"]
    assert pending(live_root) == []


# ---------------------------------------------------------------- 2. redaction before any cut
def windows(value: str, n: int = 8) -> set[str]:
    return {value[i : i + n] for i in range(len(value) - n + 1)}


def test_no_piece_of_a_key_leaks_through_a_cut_an_encoding_or_a_wrapped_line(live_root: Path):
    basic = base64.b64encode(f"{KEY}:{SECRET}".encode()).decode()
    # A gateway's plain-text page echoing the request headers; the adapter keeps 120
    # characters of it, which end 24 characters into the secret.
    head = "502 Bad Gateway: upstream reset. request headers: APCA-API-SECRET-KEY: "
    head += "x" * (96 - len(head))
    page = (
        f"{head}{SECRET}\nAPCA-API-KEY-ID: {KEY}\nAuthorization: Basic {basic}\n"
        f"X-Wrapped: {SECRET[:20]}\n  {SECRET[20:]}\nX-Quoted: {quote(SECRET, safe='')}\n"
    )
    with fake_at(live_root) as fake, FakeSlack() as slack:
        alerts = {"ALERT_SLACK_WEBHOOK_URL": slack.webhook_url}
        fake.inject(
            "POST",
            "/v2/orders",
            *[Fault("status", 502, page, headers={"Content-Type": "text/plain"})] * 50,
        )
        first = run_cli(live_root, fake, "--as-of", AS_OF, "--enable-alerts", env=alerts)
        assert first.returncode == 3, first.stderr[-3000:]
        assert "HTTP 502" in last_line(first) and "***" in last_line(first)
        fake.faults.clear()
        # A reply pydantic refuses: its message quotes the value, elided in the middle.
        account = fake._account()
        account["status"] = f"{KEY}:{SECRET}"
        fake.inject("GET", "/v2/account", *[Fault("status", 200, account)] * 20)
        second = run_cli(live_root, fake, "--as-of", AS_OF, "--enable-alerts", env=alerts)
        assert second.returncode == 2, second.stderr[-3000:]
        assert "Traceback" not in second.stderr
        assert last_line(second).startswith("error: alpaca account failed")
        texts = [p.raw.decode() for p in slack.posts]
    texts += [r.stdout + r.stderr for r in (first, second)]
    assert any("***" in t for t in texts)
    files = [p for p in live_root.rglob("*") if p.is_file()]
    data = [p.read_bytes() for p in files]
    for value in (KEY, SECRET, basic, quote(SECRET, safe="")):
        for piece in windows(value):
            leaks = [i for i, t in enumerate(texts) if piece in t]
            assert not leaks, f"{piece!r} of {value[:6]}... reached an output: {leaks}"
            on_disk = [str(files[i]) for i, d in enumerate(data) if piece.encode() in d]
            assert not on_disk, f"{piece!r} of {value[:6]}... written to {on_disk}"


# ---------------------------------------------------------------- 3. a mass cancel that failed
def test_a_halt_whose_cancels_all_failed_names_the_open_orders_and_exits_2(live_root: Path):
    with fake_at(live_root) as fake:
        symbols = sorted(fake.prices)[:5]
        for n in range(10):
            status, _ = fake._create_order(
                {
                    "symbol": symbols[n % 5],
                    "qty": "1",
                    "side": "buy",
                    "type": "market",
                    "client_order_id": f"open-{n}",
                }
            )
            assert status == 200
        errors = [
            {"id": o["id"], "status": 500, "body": {"code": 50010000, "message": "internal error"}}
            for o in fake.orders.values()
        ]
        fake.inject("DELETE", "/v2/orders", Fault("status", 207, errors))
        halted = run_cli(live_root, fake, "--halt", "fills look wrong")

        assert halted.returncode == 2, halted.stderr[-3000:]
        first = halted.stdout.splitlines()[0]
        assert first.startswith("trading halted: the halt is in force")
        assert "they may still fill" in first and "canceled 0 of 10" in first
        assert all(f"open-{n} (buy " in first for n in range(10))
        assert last_line(halted).startswith("error: the halt is in force, but cancelling")
        assert all(o["status"] == "accepted" for o in fake.orders.values())

        again = run_cli(live_root, fake, "--halt", "fills look wrong")
        assert again.returncode == 0, again.stderr[-3000:]
        assert again.stdout.strip().endswith("10 open order(s) canceled")
        assert all(o["status"] == "canceled" for o in fake.orders.values())
        blocked = run_cli(live_root, fake, "--as-of", AS_OF)
        assert blocked.returncode == 0 and "trading is halted" in blocked.stdout
        assert not fake.calls("POST", "/v2/orders")


# ---------------------------------------------------------------- 4. the Alpaca paper track
def write_track(folder: Path, broker: str, last: str, n: int) -> None:
    """``n`` passing daily logs of ``broker`` by hand, ending the session before ``last``."""
    from py_finance.data.calendar import sessions

    folder.mkdir(parents=True, exist_ok=True)
    days = sessions("2000-01-03", last)[-n - 1 : -1]
    for i, day in enumerate(days):
        doc = {
            "schema_version": 1,
            "session": day.date().isoformat(),
            "status": "ok",
            "dry_run": False,
            "broker": broker,
            "errors": [],
            "equity": 100_000.0 * (1.001**i) * (1 + 0.002 * (-1) ** i),
            "fills": [
                {"client_order_id": f"{broker}-{i}-{k}", "qty_filled": 1.0, "status": "filled"}
                for k in range(2)
            ],
        }
        (folder / f"daily_log_{day.date().isoformat()}.json").write_text(json.dumps(doc))


def test_an_alpaca_paper_track_opens_alpaca_live_and_the_flag_chooses_the_track(live_root: Path):
    write_track(live_root / "logs/live_trading/alpaca_paper", "alpaca_paper", "2000-12-29", 35)
    live = ("--broker", "alpaca_live", "--confirm-live", "--as-of", AS_OF)
    with fake_at(live_root) as fake:
        refused = run_cli(live_root, fake, *live, "--readiness-track", "paper")
        assert refused.returncode == 2, refused.stderr[-3000:]
        line = last_line(refused)
        assert "readiness gates fail on the paper track" in line
        assert "read paper: " in line and "live_trading/alpaca_paper" not in line, line
        assert not fake.calls("POST", "/v2/orders")

        done = run_cli(live_root, fake, *live)
        assert done.returncode == 0, done.stderr[-3000:]
        assert fake.created
    doc = read_daily_log(live_root / "logs/live_trading/alpaca_live", SESSION)
    assert doc["capital_fraction"] == 0.05
    readiness = doc["live_permission"]["readiness"]
    assert readiness["passed"] and readiness["brokers"] == ["paper", "alpaca_paper"]
    assert readiness["sessions_by_broker"] == {"paper": 0, "alpaca_paper": 35}
    invested = sum(o["notional"] for o in doc["orders"])
    assert 0 < invested <= 0.05 * 100_000.0 * (1 + 1e-9)


# ---------------------------------------------------------------- 5. order identity, both ways
def test_an_order_id_taken_by_another_symbol_is_never_accepted_as_ours(live_root: Path):
    with fake_at(live_root) as fake:
        plan = run_cli(live_root, fake, "--as-of", AS_OF, "--dry-run")
        assert plan.returncode == 0, plan.stderr[-3000:]
        orders = read_daily_log(live_root / LOG_DIR, SESSION)["orders"]
        assert len(orders) >= 3 and all(o["side"] == "buy" for o in orders)
        taken = orders[1]  # the first buy goes out; the second's id is someone else's
        other = next(s for s in sorted(fake.prices) if s != taken["symbol"])
        status, _ = fake._create_order(
            {
                "symbol": other,
                "qty": "1",
                "side": "buy",
                "type": "market",
                "client_order_id": taken["client_order_id"],
            }
        )
        assert status == 200

        for _ in range(2):  # the run, then its rerun: both refuse
            done = run_cli(live_root, fake, "--as-of", AS_OF)
            assert done.returncode == 2, done.stderr[-3000:]
            line = last_line(done)
            assert f"{taken['client_order_id']} was already used at alpaca for buy {other}" in line
        assert fake.orders[taken["client_order_id"]]["symbol"] == other
        assert fake.created == [taken["client_order_id"], orders[0]["client_order_id"]]
        assert fake.duplicate_posts == 0
    doc = read_daily_log(live_root / LOG_DIR, SESSION)
    rerun = doc["runs"][-1]["reconciliation"]
    assert rerun["clean"] is False and rerun["found_at_broker"] == []
    assert other in rerun["conflicts"][taken["client_order_id"]]
    assert taken["client_order_id"] in pending(live_root)


def test_a_reply_about_another_order_does_not_confirm_the_order_sent(live_root: Path):
    with fake_at(live_root) as fake:
        status, stray = fake._create_order(
            {"symbol": "KO", "qty": "1", "side": "buy", "type": "market", "client_order_id": "x"}
        )
        assert status == 200
        # A proxy answers every order with the same cached reply; Alpaca never sees them.
        fake.inject("POST", "/v2/orders", *[Fault("status", 200, dict(stray))] * 100)
        first = run_cli(live_root, fake, "--as-of", AS_OF)
        assert first.returncode == 3, first.stderr[-3000:]
        assert "the reply is about order x" in last_line(first)
        doc = read_daily_log(live_root / LOG_DIR, SESSION)
        coids = [o["client_order_id"] for o in doc["orders"]]
        assert [f["status"] for f in doc["fills"]] == ["unconfirmed"] * len(coids)
        assert doc["status"] == "degraded" and fake.created == ["x"]
        assert pending(live_root) == coids

        fake.faults.clear()
        second = run_cli(live_root, fake, "--as-of", AS_OF)
        assert second.returncode == 0, second.stderr[-3000:]
        assert_each_sent_once(fake, coids, others=("x",))
    assert pending(live_root) == []


# ---------------------------------------------------------------- 6. the smaller points
@pytest.mark.parametrize(
    ("path", "fault", "what"),
    [
        ("/v2/account", Fault("status", 200, ""), "account"),
        ("/v2/clock", Fault("status", 200, {"timestamp": "soon", "is_open": "maybe"}), "clock"),
    ],
    ids=["empty-account", "malformed-clock"],
)
def test_an_unreadable_reply_is_retried_then_one_error_line(live_root: Path, path, fault, what):
    with fake_at(live_root) as fake:
        fake.inject("GET", path, *[fault] * 20)
        failed = run_cli(live_root, fake, "--as-of", AS_OF)
        assert failed.returncode == 2, failed.stderr[-3000:]
        assert "Traceback" not in failed.stderr
        assert [x for x in failed.stderr.splitlines() if x.startswith("error:")] == [
            last_line(failed)
        ]
        assert last_line(failed).startswith(
            f"error: alpaca {what} failed after 4 attempts: unreadable reply"
        )
        assert len(fake.calls("GET", path)) >= 4  # retried
        assert not fake.calls("POST", "/v2/orders")

        fake.faults.clear()
        fake.inject("GET", path, fault)  # one bad reply: the retry reads the next one
        done = run_cli(live_root, fake, "--as-of", AS_OF)
        assert done.returncode == 0, done.stderr[-3000:]
        doc = read_daily_log(live_root / LOG_DIR, SESSION)
        assert_each_sent_once(fake, [o["client_order_id"] for o in doc["orders"]])


def test_a_refused_replay_of_an_earlier_session_leaves_its_log_alone(live_root: Path):
    earlier = "2000-12-28T23:00Z"
    with fake_at(live_root) as fake:
        done = run_cli(live_root, fake, "--as-of", AS_OF)
        assert done.returncode == 0, done.stderr[-3000:]
        posts = len(fake.calls("POST", "/v2/orders"))
        refused = run_cli(live_root, fake, "--as-of", earlier)
        assert refused.returncode == 2, refused.stderr[-3000:]
        assert "can only be replayed with --dry-run" in last_line(refused)
        assert len(fake.calls("POST", "/v2/orders")) == posts
        replay = run_cli(live_root, fake, "--as-of", earlier, "--dry-run")
        assert replay.returncode == 0, replay.stderr[-3000:]
    log_dir = live_root / LOG_DIR
    doc = read_daily_log(log_dir, pd.Timestamp(earlier).date())
    assert doc["dry_run"] is True and [r["status"] for r in doc["runs"]] == ["ok"]
    assert doc["errors"] == []
    readiness = subprocess.run(
        [
            sys.executable,
            str(SCRIPT.parent / "check_live_readiness.py"),
            "--json",
            "--log-dir",
            "logs/live_trading",
        ],
        capture_output=True,
        text=True,
        cwd=live_root,
        timeout=120,
    )
    gates = {g["name"]: g for g in json.loads(readiness.stdout)["report"]["gates"]}
    assert gates["max_consecutive_errors"]["value"] == 0


def test_a_stray_position_outside_the_universe_is_named(live_root: Path):
    with fake_at(live_root) as fake:
        fake.add_asset("GME")
        fake.prices["GME"] = 20.0
        fake.positions["GME"] = {"qty": 10.0, "cost": 200.0}
        done = run_cli(live_root, fake, "--as-of", AS_OF)
        assert done.returncode == 2, done.stderr[-3000:]
        line = last_line(done)
        assert "account holds GME (10 sh), outside the universe" in line, line
        assert "close that position at the broker" in line
        assert not fake.calls("POST", "/v2/orders")
    doc = read_daily_log(live_root / LOG_DIR, SESSION)
    assert doc["status"] == "error" and "GME" in doc["errors"][-1]


def test_lookups_alternating_429_and_answers_wait_one_retry_budget_in_all(live_root: Path):
    slow = Fault(
        "status",
        429,
        {"code": 42910000, "message": "rate limit exceeded"},
        headers={"Retry-After": "1"},
    )
    budget = ("++live.alpaca.retry_budget_s=2",)
    with fake_at(live_root) as fake:
        fake.inject("GET", LOOKUPS, *[slow, Fault.none()] * 200)
        first = run_cli(live_root, fake, "--as-of", AS_OF, overrides=budget)
        assert first.returncode == 3, first.stderr[-3000:]
        assert "retry budget is spent" in last_line(first)
        doc = read_daily_log(live_root / LOG_DIR, SESSION)
        coids = [o["client_order_id"] for o in doc["orders"]]
        # Two 1 s waits fit the 2 s budget; the third is not made.
        assert doc["timings"]["submit"] < 2.0 + 3.0, doc["timings"]
        sent = [s.body["client_order_id"] for s in fake.calls("POST", "/v2/orders")]
        assert 1 <= len(sent) < len(coids)

        fake.faults.clear()
        second = run_cli(live_root, fake, "--as-of", AS_OF, overrides=budget)
        assert second.returncode == 0, second.stderr[-3000:]
        assert_each_sent_once(fake, coids)
