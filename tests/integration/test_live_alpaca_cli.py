"""The real CLI (``scripts/run_live_loop.py``, a subprocess) against the loopback Alpaca fake.

The fake runs in this process on 127.0.0.1; the CLI reaches it only through the
``APCA_API_BASE_URL`` setting, as a user would point it at a staging endpoint or a proxy.
Every other HTTP(S) destination goes to a dead proxy, so nothing can reach a real vendor.
"""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from py_finance.config import build, compose
from py_finance.live.daily_log import read_daily_log
from py_finance.pipeline.context import Context
from tests.fakes.alpaca_server import FakeAlpaca, Fault
from tests.fakes.slack_server import FakeSlack
from tests.integration.conftest import LIVE_OVERRIDES

pytestmark = pytest.mark.integration

SCRIPT = Path(__file__).resolve().parents[2] / "scripts/run_live_loop.py"
AS_OF = "2000-12-29T23:00Z"
SESSION = pd.Timestamp("2000-12-29").date()
KEY = "PKCLIECHOKEY7Q4Z9W2M0"
SECRET = "cli-secret-Vq8wYh2nB5rT0pLmK3sJ9dF6gH1c"
LOG_DIR = "logs/live_trading/alpaca_paper"
# Fast retries; the breaker and Retry-After as configured by default.
FAST = ["live.alpaca.retry_base_s=0.05", "live.alpaca.retry_max_s=0.1", "live.request_timeout_s=2"]


def run_cli(
    root: Path,
    fake: FakeAlpaca,
    *args: str,
    env: dict[str, str] | None = None,
    overrides: tuple[str, ...] = (),
) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ALERT_", "APCA_", "ALPACA_", "PY_FINANCE_"))
        and k.lower() not in ("http_proxy", "https_proxy", "all_proxy", "no_proxy")
    }
    clean.update(
        APCA_API_KEY_ID=KEY,
        APCA_API_SECRET_KEY=SECRET,
        APCA_API_BASE_URL=fake.url,
        # Anything not on 127.0.0.1 goes to a port where nothing listens.
        HTTP_PROXY="http://127.0.0.1:9",
        HTTPS_PROXY="http://127.0.0.1:9",
        NO_PROXY="127.0.0.1,localhost",
    )
    clean.update(env or {})
    return subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--root",
            str(root),
            "--broker",
            "alpaca_paper",
            *args,
            *LIVE_OVERRIDES,
            *FAST,
            *overrides,  # last, so they win over the slice's
        ],
        capture_output=True,
        text=True,
        env=clean,
        cwd=root,
        timeout=300,
    )


def closes(root: Path) -> dict[str, float]:
    ctx = Context(build(compose(LIVE_OVERRIDES)), root)
    bars = ctx.store.wide("adj_close", None, None, None, pd.Timestamp(AS_OF))
    return {str(k): float(v) for k, v in bars.iloc[-1].items()}


def rate_limited(*, accept: bool = False) -> Fault:
    """A 429 asking for 0.2 s; ``accept``: the order is created all the same."""
    return Fault(
        "status",
        429,
        {"code": 42910000, "message": "rate limit exceeded"},
        accept=accept,
        headers={"Retry-After": "0.2"},
    )


def test_a_429_storm_ends_degraded_and_the_next_run_sends_each_order_once(live_root):
    with (
        FakeAlpaca(
            cash=100_000.0, prices=closes(live_root), market_open=False, key=KEY, secret=SECRET
        ) as fake,
        FakeSlack() as slack,
    ):
        alerts = {"ALERT_SLACK_WEBHOOK_URL": slack.webhook_url}
        fake.inject("POST", "/v2/orders", *[rate_limited()] * 500)
        first = run_cli(live_root, fake, "--as-of", AS_OF, "--enable-alerts", env=alerts)
        storm_posts = len(fake.calls("POST", "/v2/orders"))

        assert first.returncode == 3, first.stderr[-3000:]
        assert "degraded" in first.stdout
        last = first.stderr.strip().splitlines()[-1]
        assert last.startswith("error: 2000-12-29: degraded:") and "circuit breaker open" in last
        doc = read_daily_log(live_root / LOG_DIR, SESSION)
        coids = [o["client_order_id"] for o in doc["orders"]]
        assert len(coids) >= 3
        assert doc["status"] == "degraded"
        assert [f["status"] for f in doc["fills"]] == ["unconfirmed"] * len(coids)
        # The breaker stopped the storm after 5 consecutive 429s: no order x 4 tries.
        assert storm_posts == 5 and not fake.created
        assert any("degraded" in p.json["text"] for p in slack.posts)

        fake.faults.clear()  # the storm is over
        seen_before = len(fake.seen)
        second = run_cli(live_root, fake, "--as-of", AS_OF)
        assert second.returncode == 0, second.stderr[-3000:]
        # Each order was looked up by its client_order_id, then sent once.
        rerun = fake.seen[seen_before:]
        for coid in coids:
            asked = [
                i
                for i, s in enumerate(rerun)
                if s.path == "/v2/orders:by_client_order_id"
                and s.query.get("client_order_id") == [coid]
            ]
            sent = [
                i
                for i, s in enumerate(rerun)
                if s.method == "POST" and (s.body or {}).get("client_order_id") == coid
            ]
            assert asked and len(sent) == 1 and asked[0] < sent[0], coid
        assert collections.Counter(fake.created) == collections.Counter(coids)
        assert fake.duplicate_posts == 0

        doc = read_daily_log(live_root / LOG_DIR, SESSION)
        assert [r["status"] for r in doc["runs"]] == ["degraded", "ok"]
        assert doc["status"] == "ok"
        # The first run's error stays in the day's errors, which the readiness gates count.
        assert any(e.startswith("degraded:") for e in doc["errors"])
        assert [f["status"] for f in doc["fills"]] == ["pending"] * len(coids)

        third = run_cli(live_root, fake, "--as-of", AS_OF, "--skip-if-logged")
        assert third.returncode == 0 and "skipped" in third.stdout
        assert collections.Counter(fake.created) == collections.Counter(coids)


def test_an_order_the_broker_got_in_a_storm_is_looked_up_not_sent_again(live_root):
    # The first order reaches Alpaca but its reply is a 429, and every lookup after it is
    # rate-limited too: the run cannot tell whether Alpaca has it (unconfirmed).
    with FakeAlpaca(
        cash=100_000.0, prices=closes(live_root), market_open=False, key=KEY, secret=SECRET
    ) as fake:
        fake.inject("POST", "/v2/orders", rate_limited(accept=True), *[rate_limited()] * 100)
        # The lookup before the first send answers; every later one is rate-limited.
        lookups = "/v2/orders:by_client_order_id"
        fake.inject("GET", lookups, Fault.none(), *[rate_limited()] * 200)
        first = run_cli(live_root, fake, "--as-of", AS_OF)
        assert first.returncode == 3, first.stderr[-3000:]
        doc = read_daily_log(live_root / LOG_DIR, SESSION)
        coids = [o["client_order_id"] for o in doc["orders"]]
        got, never = coids[0], coids[1:]
        assert [f["status"] for f in doc["fills"]] == ["unconfirmed"] * len(coids)
        assert len(fake.calls("POST", "/v2/orders")) == 1 and fake.created == [got]

        fake.faults.clear()
        seen_before = len(fake.seen)
        second = run_cli(live_root, fake, "--as-of", AS_OF)
        assert second.returncode == 0, second.stderr[-3000:]
        rerun = fake.seen[seen_before:]

        def asked(coid: str) -> list[int]:
            return [
                i
                for i, s in enumerate(rerun)
                if s.path == lookups and s.query.get("client_order_id") == [coid]
            ]

        def sent(coid: str) -> list[int]:
            return [
                i
                for i, s in enumerate(rerun)
                if s.method == "POST" and (s.body or {}).get("client_order_id") == coid
            ]

        # Alpaca had the first order: looked up, never sent again; the others, which it
        # never saw, looked up and then sent once each.
        assert asked(got) and not sent(got)
        for coid in never:
            assert asked(coid) and len(sent(coid)) == 1 and asked(coid)[0] < sent(coid)[0]
        assert collections.Counter(fake.created) == collections.Counter(coids)
        assert fake.duplicate_posts == 0
    doc = read_daily_log(live_root / LOG_DIR, SESSION)
    assert doc["runs"][-1]["reconciliation"]["found_at_broker"] == [got]
    assert sorted(doc["runs"][-1]["reconciliation"]["resent"]) == sorted(never)
    assert [r["status"] for r in doc["runs"]] == ["degraded", "ok"]
    assert [f["status"] for f in doc["fills"]] == ["pending"] * len(coids)


def test_a_key_echoed_by_the_broker_is_nowhere_on_disk_or_the_terminal(live_root):
    echo = {"code": 40310000, "message": f"key {KEY} (secret {SECRET}) may not trade"}
    with (
        FakeAlpaca(
            cash=100_000.0, prices=closes(live_root), market_open=False, key=KEY, secret=SECRET
        ) as fake,
        FakeSlack() as slack,
    ):
        alerts = {"ALERT_SLACK_WEBHOOK_URL": slack.webhook_url}
        # A refusal that names the key (a rejected order in the log, its alert, its record),
        # then a 503 storm whose every body names it (unconfirmed orders, the circuit
        # breaker's reason, the degraded line on stderr).
        fake.inject("POST", "/v2/orders", Fault("status", 403, echo))
        fake.inject("POST", "/v2/orders", *[Fault("status", 503, echo)] * 100)
        first = run_cli(live_root, fake, "--as-of", AS_OF, "--enable-alerts", env=alerts)
        assert first.returncode == 3, first.stderr[-3000:]
        assert "circuit breaker open" in first.stderr.strip().splitlines()[-1]
        fake.faults.clear()
        # A failure that names the key: the run's error line, the log, the alert.
        fake.inject("GET", "/v2/account", *[Fault("status", 500, echo)] * 20)
        second = run_cli(live_root, fake, "--as-of", AS_OF, "--enable-alerts", env=alerts)
        assert second.returncode == 2, second.stderr[-3000:]
        assert second.stderr.strip().splitlines()[-1].startswith("error: alpaca account failed")
        # The halt with the broker answering the same way.
        fake.inject("DELETE", "/v2/orders", *[Fault("status", 500, echo)] * 20)
        halted = run_cli(live_root, fake, "--halt", "echo test")
        assert halted.returncode == 2
        texts = [slack_post.raw.decode() for slack_post in slack.posts]
    runs = [first, second, halted]
    texts += [r.stdout + r.stderr for r in runs]

    doc = read_daily_log(live_root / LOG_DIR, SESSION)
    assert any("may not trade" in e for e in doc["errors"])  # the rejection ...
    assert any(e.startswith("degraded:") for e in doc["errors"])  # ... the storm ...
    assert any("account failed" in e for e in doc["errors"])  # ... and the failure, all kept
    assert {f["status"] for f in doc["fills"]} == {"rejected", "unconfirmed"}
    assert any("may not trade" in f["reason"] for f in doc["fills"] if f["status"] == "unconfirmed")
    assert any("***" in t for t in texts)
    files = [p for p in live_root.rglob("*") if p.is_file()]
    assert any(p.suffix == ".sqlite" for p in files) and any(p.suffix == ".json" for p in files)
    for value in (KEY, SECRET):
        leaks = [i for i, t in enumerate(texts) if value in t]
        assert not leaks, f"{value[:6]}... reached the terminal or an alert: {leaks}"
        on_disk = [p for p in files if value.encode() in p.read_bytes()]
        assert not on_disk, f"{value[:6]}... written to {on_disk}"


def test_halt_with_the_broker_down_says_the_halt_is_in_force(live_root):
    with FakeAlpaca(prices=closes(live_root), market_open=False, key=KEY, secret=SECRET) as fake:
        fake.inject("DELETE", "/v2/orders", *[Fault.error(503)] * 20)
        halted = run_cli(live_root, fake, "--halt", "broker down")
        assert halted.returncode == 2
        assert "the halt is in force" in halted.stdout
        assert "cancelling the open orders failed" in halted.stdout
        last = halted.stderr.strip().splitlines()[-1]
        assert last.startswith("error: the halt is in force, but cancelling")
        blocked = run_cli(live_root, fake, "--as-of", AS_OF)
        assert blocked.returncode == 0 and "trading is halted" in blocked.stdout
        assert not fake.calls("POST", "/v2/orders")


def test_a_same_day_rerun_keeps_the_first_runs_errors_and_plan(live_root):
    with FakeAlpaca(
        cash=100_000.0, prices=closes(live_root), market_open=False, key=KEY, secret=SECRET
    ) as fake:
        fake.inject("POST", "/v2/orders", Fault.insufficient_buying_power())
        first = run_cli(live_root, fake, "--as-of", AS_OF)
        assert first.returncode == 0, first.stderr[-3000:]
        posts = len(fake.calls("POST", "/v2/orders"))
        # A plain rerun (no --skip-if-logged), with settings that would pick other names.
        second = run_cli(
            live_root, fake, "--as-of", AS_OF, "--override", overrides=("portfolio.top_k=2",)
        )
        assert second.returncode == 0, second.stderr[-3000:]
        assert len(fake.calls("POST", "/v2/orders")) == posts  # the journaled plan, done
    doc = read_daily_log(live_root / LOG_DIR, SESSION)
    one, two = doc["runs"]
    assert (one["plan"], two["plan"]) == ("new", "resumed")
    rejected = [e for e in one["errors"] if "insufficient buying power" in e]
    assert len(rejected) == 1 and two["errors"] == []
    assert doc["errors"] == rejected  # the rerun had none of its own; the day keeps the first's
    assert [f["status"] for f in doc["fills"]].count("rejected") == 1
    # The day shows the targets its orders were planned from, not the rerun's.
    assert len(two["target_weights"]) == 2 and len(one["target_weights"]) == 4
    assert doc["target_weights"] == one["target_weights"]
    assert doc["orders"] == one["orders"]

    # The readiness gates, from their own CLI, count the session as an error session.
    done = subprocess.run(
        [
            sys.executable,
            str(SCRIPT.parent / "check_live_readiness.py"),
            "--json",
            "--log-dir",
            str(live_root / LOG_DIR),
        ],
        capture_output=True,
        text=True,
        cwd=live_root,
        timeout=120,
    )
    assert done.returncode == 1, done.stderr[-2000:]  # one session is not a track record
    gates = {g["name"]: g for g in json.loads(done.stdout)["report"]["gates"]}
    errors = gates["max_consecutive_errors"]
    assert errors["value"] == 1 and "(1 in all)" in errors["detail"]


def test_the_configured_base_url_wins_and_the_halt_says_whether_it_holds(live_root):
    with FakeAlpaca(prices=closes(live_root), market_open=False, key=KEY, secret=SECRET) as fake:
        status, _ = fake._create_order(
            {"symbol": "KO", "qty": "1", "side": "buy", "type": "market", "client_order_id": "x"}
        )
        assert status == 200 and fake.orders["x"]["status"] == "accepted"
        # $APCA_API_BASE_URL points where nothing listens; live.alpaca.base_url at the fake.
        nowhere = {"APCA_API_BASE_URL": "http://127.0.0.1:9"}
        configured = (f"live.alpaca.base_url={fake.url}",)
        halted = run_cli(live_root, fake, "--halt", "check", env=nowhere, overrides=configured)
        halt_file = live_root.resolve() / "logs/live_trading/HALT"
        assert halted.returncode == 0, halted.stderr[-3000:]
        assert halted.stdout.strip() == (
            f"trading halted: the halt is in force ({halt_file}); "
            "no order is sent until --resume; 1 open order(s) canceled"
        )
        assert fake.orders["x"]["status"] == "canceled" and fake.calls("DELETE", "/v2/orders")
        blocked = run_cli(live_root, fake, "--as-of", AS_OF, env=nowhere, overrides=configured)
        assert blocked.returncode == 0 and "trading is halted" in blocked.stdout
        resumed = run_cli(live_root, fake, "--resume")
        assert resumed.stdout.strip() == "trading resumed"

    # No halt file can be written: it says the halt is NOT in force, and exits 2.
    (live_root / "blocker").write_text("a file where the halt folder should be")
    unwritable = run_cli(live_root, fake, "--halt", "x", overrides=("live.halt_file=blocker/HALT",))
    assert unwritable.returncode == 2
    assert unwritable.stdout.startswith("trading is NOT halted")
    assert unwritable.stderr.strip().splitlines()[-1].startswith("error: trading is NOT halted")
    # Nor without a config to say where the halt file goes.
    broken = run_cli(live_root, fake, "--halt", "x", overrides=("live.alpaca.max_attempts=0",))
    assert broken.returncode == 2
    assert broken.stdout.startswith("trading is NOT halted: the config could not be read")
    assert broken.stderr.strip().splitlines()[-1].startswith("error: trading is NOT halted")
    assert not (live_root / "logs/live_trading/HALT").exists()


def test_orders_that_never_fill_wait_one_budget_in_all(live_root):
    # Market open, nothing fills: the run waits live.fill_timeout_s in all, not per order.
    budget = ("live.fill_timeout_s=3", "live.poll_interval_s=0.5")
    with FakeAlpaca(
        cash=100_000.0,
        prices=closes(live_root),
        market_open=True,
        fill_policy="pending",
        key=KEY,
        secret=SECRET,
    ) as fake:
        done = run_cli(live_root, fake, "--as-of", AS_OF, overrides=budget)
        assert done.returncode == 0, done.stderr[-3000:]
    doc = read_daily_log(live_root / LOG_DIR, SESSION)
    n = len(doc["orders"])
    assert n >= 3 and [f["status"] for f in doc["fills"]] == ["pending"] * n
    timings = doc["timings"]
    # The budget runs from the first send: sending and waiting share it, no wait per order.
    assert 2.0 < timings["fills"] <= timings["submit"], timings
    assert 3.0 <= timings["submit"] < 3.0 + 2.0, timings
