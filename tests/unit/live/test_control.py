"""``--halt`` says whether the halt is in force, whatever the broker does."""

from __future__ import annotations

import pytest

from py_finance.config import build, compose
from py_finance.live import control
from py_finance.pipeline.context import Context
from tests.conftest import SLICE
from tests.fakes.alpaca_server import FakeAlpaca, Fault
from tests.unit.live.test_alpaca_broker import KEY, SECRET, loopback_only

__all__ = ["loopback_only"]


@pytest.fixture
def env(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # no .env of the checkout
    for name in ("APCA_API_KEY_ID", "APCA_API_SECRET_KEY", "ALPACA_API_KEY", "ALPACA_SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("APCA_API_BASE_URL", raising=False)
    return monkeypatch


def ctx_at(root, *overrides: str) -> Context:
    return Context(build(compose([*SLICE, *overrides])), root)


def test_a_halt_with_the_broker_down_is_in_force_and_says_the_cancel_failed(env, tmp_path):
    with FakeAlpaca(key=KEY, secret=SECRET) as fake:
        env.setenv("APCA_API_KEY_ID", KEY)
        env.setenv("APCA_API_SECRET_KEY", SECRET)
        env.setenv("APCA_API_BASE_URL", fake.url)
        fake.inject("DELETE", "/v2/orders", *[Fault.error(503)] * 10)
        ctx = ctx_at(tmp_path, "live.alpaca.retry_base_s=0", "live.alpaca.retry_max_s=0")
        result = control.halt(ctx, "alpaca_paper", "broker down")
    assert result.in_force and result.canceled is None
    assert "HTTP 503" in result.error
    assert (tmp_path / "logs/live_trading/HALT").read_text().strip().endswith("broker down")
    text = result.describe()
    assert "the halt is in force" in text and "cancelling the open orders failed" in text


def test_a_halt_without_keys_still_holds(env, tmp_path):
    result = control.halt(ctx_at(tmp_path), "alpaca_live", "no keys here")
    assert result.in_force and result.canceled is None and "needs API keys" in result.error
    assert control.halt_path(ctx_at(tmp_path)).exists()


def test_a_halt_cancels_open_orders_through_the_configured_endpoint(env, tmp_path):
    with FakeAlpaca(key=KEY, secret=SECRET, market_open=False) as fake:
        env.setenv("APCA_API_KEY_ID", KEY)
        env.setenv("APCA_API_SECRET_KEY", SECRET)
        status, _ = fake._create_order(
            {"symbol": "AAPL", "qty": "1", "side": "buy", "type": "market", "client_order_id": "x"}
        )
        assert status == 200 and fake.orders["x"]["status"] == "accepted"
        ctx = ctx_at(tmp_path, f"live.alpaca.base_url={fake.url}")
        result = control.halt(ctx, "alpaca_paper", "checking")
    assert (result.in_force, result.canceled, result.error) == (True, 1, "")
    assert fake.orders["x"]["status"] == "canceled"
    assert "1 open order(s) canceled" in result.describe()


def test_a_halt_that_cannot_write_its_file_says_it_is_not_in_force(env, tmp_path):
    (tmp_path / "blocker").write_text("a file where the halt folder should be")
    ctx = ctx_at(tmp_path, "live.halt_file=blocker/HALT")
    result = control.halt(ctx, "paper", "x")
    assert not result.in_force and result.canceled is None
    assert result.describe().startswith("trading is NOT halted")
