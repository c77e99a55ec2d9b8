"""The real CLI (``scripts/run_live_loop.py``, a subprocess) against the loopback Alpaca fake.

The fake runs in this process on 127.0.0.1; the CLI reaches it only through the
``APCA_API_BASE_URL`` setting, as a user would point it at a staging endpoint or a proxy.
Every other HTTP(S) destination goes to a dead proxy, so nothing can reach a real vendor.
"""

from __future__ import annotations

import collections
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
    root: Path, fake: FakeAlpaca, *args: str, env: dict[str, str] | None = None
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
        **(env or {}),
    )
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


def rate_limited() -> Fault:
    return Fault(
        "status",
        429,
        {"code": 42910000, "message": "rate limit exceeded"},
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


def test_a_key_echoed_by_the_broker_is_nowhere_on_disk_or_the_terminal(live_root):
    echo = {"code": 40310000, "message": f"key {KEY} (secret {SECRET}) may not trade"}
    with (
        FakeAlpaca(
            cash=100_000.0, prices=closes(live_root), market_open=False, key=KEY, secret=SECRET
        ) as fake,
        FakeSlack() as slack,
    ):
        alerts = {"ALERT_SLACK_WEBHOOK_URL": slack.webhook_url}
        # A refusal that names the key: a rejected order in the log, its alert, its record.
        fake.inject("POST", "/v2/orders", Fault("status", 403, echo))
        first = run_cli(live_root, fake, "--as-of", AS_OF, "--enable-alerts", env=alerts)
        assert first.returncode == 0, first.stderr[-3000:]
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
    assert any("account failed" in e for e in doc["errors"])  # ... and the failure, both kept
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
