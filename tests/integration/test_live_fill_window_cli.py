"""The live CLI against the loopback Alpaca fake: the fill model's auction orders and window.

The champion's fill model (``backtest.fill: next_close``) sends market-on-close orders
(``cls``). A run while Alpaca's clock is inside the cut-off window (15:50-19:00 ET) sends
nothing and ends in one line; the next run, after 19:00 ET, sends the journaled plan, which
the fake's closing auction fills at the closes.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from py_finance.live.daily_log import read_daily_log
from tests.fakes.alpaca_server import FakeAlpaca
from tests.integration.test_live_alpaca_cli import (
    AS_OF,
    KEY,
    LOG_DIR,
    SECRET,
    SESSION,
    closes,
    run_cli,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

NY = ZoneInfo("America/New_York")


def test_a_run_inside_alpacas_window_sends_nothing_and_the_next_sends_the_plan(live_root):
    now = {"t": dt.datetime(2001, 1, 2, 17, 5, tzinfo=NY)}
    prices = closes(live_root)
    with FakeAlpaca(
        cash=100_000.0,
        prices=prices,
        market_open=False,
        key=KEY,
        secret=SECRET,
        now=lambda: now["t"].astimezone(dt.UTC),
    ) as fake:
        refused = run_cli(live_root, fake, "--as-of", AS_OF)
        assert refused.returncode != 0
        last = refused.stderr.strip().splitlines()[-1]
        assert last.startswith("error: ") and "alpaca refuses market-on-close orders" in last
        assert "it is 17:05 ET: nothing was sent" in last
        assert fake.calls("POST", "/v2/orders") == []

        now["t"] = dt.datetime(2001, 1, 2, 19, 30, tzinfo=NY)
        sent = run_cli(live_root, fake, "--as-of", AS_OF)
        assert sent.returncode == 0, sent.stderr[-3000:]
        bodies = [c.body for c in fake.calls("POST", "/v2/orders")]
        assert bodies and {b["time_in_force"] for b in bodies} == {"cls"}
        assert all(float(b["qty"]) == int(float(b["qty"])) for b in bodies)  # whole shares
        doc = read_daily_log(live_root / LOG_DIR, SESSION)
        assert [r["status"] for r in doc["runs"]] == ["error", "ok"]
        assert doc["runs"][-1]["plan"] == "resumed"
        assert {f["status"] for f in doc["fills"]} == {"pending"}
        assert fake.close_auction() == len(bodies)
        filled = [o for o in fake.orders.values() if o["status"] == "filled"]
        assert len(filled) == len(bodies)
        assert all(float(o["filled_avg_price"]) == prices[o["symbol"]] for o in filled)
