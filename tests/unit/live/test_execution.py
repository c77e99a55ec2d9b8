"""Sending a plan: one wait budget, sells before buys, unconfirmed orders left for a rerun.

Through the real alpaca-py client against the loopback fake, with time that only moves
when the broker sleeps, so the waits are measured exactly and nothing waits for real.
"""

from __future__ import annotations

import datetime as dt

import pytest

from py_finance.live.brokers.alpaca import AlpacaBroker
from py_finance.live.execution import execute
from py_finance.live.journal import record_intents, submitted_ids
from py_finance.live.orders import OrderIntent, client_order_id
from tests.fakes.alpaca_server import FakeAlpaca, Fault
from tests.unit.live.test_alpaca_broker import KEY, NOW, SECRET, FakeTime, loopback_only

__all__ = ["loopback_only"]  # the fixture, re-used: nothing here leaves 127.0.0.1

SESSION = dt.date(2024, 3, 15)
SYMBOLS = [f"S{i:02d}" for i in range(13)]


def order(symbol: str, side: str = "buy", qty: float = 1.0) -> OrderIntent:
    coid = client_order_id(SESSION, symbol, side, "run")
    return OrderIntent(coid, SESSION, symbol, side, qty, 10.0, qty * 10.0)


@pytest.fixture
def fake():
    prices = dict.fromkeys(SYMBOLS, 10.0)
    with FakeAlpaca(cash=1_000_000.0, prices=prices, key=KEY, secret=SECRET, now=lambda: NOW) as f:
        yield f


@pytest.fixture
def clock():
    return FakeTime()


@pytest.fixture
def broker(fake, clock, tmp_path):
    b = AlpacaBroker(
        KEY,
        SECRET,
        paper=True,
        state_path=tmp_path / "alpaca.sqlite",
        url_override=fake.url,
        request_timeout_s=0.5,
        fill_timeout_s=0.0,  # as the loop opens it: the loop owns the waiting
        poll_interval_s=2.0,
        max_attempts=4,
        retry_base_s=0.5,
        retry_max_s=8.0,
        breaker_failures=5,
        clock=lambda: NOW,
        sleep=clock.sleep,
        monotonic=clock.monotonic,
    )
    yield b
    b.close()


def test_thirteen_orders_that_never_fill_wait_one_budget_in_all(fake, broker, clock, tmp_path):
    fake.fill_policy = "pending"
    intents = [order(s) for s in SYMBOLS]
    journal = tmp_path / "journal.sqlite"
    record_intents(journal, intents)
    done = execute(
        broker,
        intents,
        {s: 10.0 for s in SYMBOLS},
        journal,
        wait_budget_s=60.0,
        monotonic=clock.monotonic,
    )
    # Before: 10 s per submit and 60 s more, 190 s in all; now one budget for everything.
    assert clock.t == pytest.approx(60.0)
    assert done.waited_s == pytest.approx(60.0)
    assert [f.status for f in done.fills] == ["pending"] * 13
    assert submitted_ids(journal) == {i.client_order_id for i in intents}
    assert done.stopped is None and not done.unconfirmed


def test_the_sells_fill_before_the_buys_are_sent_within_the_budget(fake, broker, clock, tmp_path):
    fake.positions["S00"] = {"qty": 5.0, "cost": 50.0}
    fake.fill_policy = "pending"
    intents = [order("S00", "sell", 5.0), order("S01"), order("S02")]
    journal = tmp_path / "journal.sqlite"
    record_intents(journal, intents)
    clock.hooks.append(lambda t: fake.fill_pending() if t >= 4.0 else None)
    sent_at: list[tuple[str, float]] = []
    submit = broker._client.submit_order

    def timed(request):
        sent_at.append((request.side.value, clock.t))
        return submit(request)

    broker._client.submit_order = timed
    done = execute(
        broker,
        intents,
        {s: 10.0 for s in SYMBOLS},
        journal,
        wait_budget_s=10.0,
        monotonic=clock.monotonic,
    )
    # The sell went out at 0 s and filled at 4 s (polls every 2 s); then the buys, which
    # filled at the next poll; one budget of 10 s covered both waits.
    assert sent_at == [("sell", 0.0), ("buy", 4.0), ("buy", 4.0)]
    assert clock.t == pytest.approx(6.0) and done.waited_s == pytest.approx(6.0)
    assert [f.status for f in done.fills] == ["filled", "filled", "filled"]


def test_a_closed_market_reads_the_states_once(fake, broker, clock, tmp_path):
    fake.market_open = False
    intents = [order(s) for s in SYMBOLS[:3]]
    journal = tmp_path / "journal.sqlite"
    record_intents(journal, intents)
    done = execute(
        broker,
        intents,
        {s: 10.0 for s in SYMBOLS},
        journal,
        wait_budget_s=0.0,
        monotonic=clock.monotonic,
    )
    assert clock.t == 0.0 and [f.status for f in done.fills] == ["pending"] * 3


def test_a_storm_leaves_every_order_unconfirmed_and_unmarked(fake, broker, clock, tmp_path):
    fake.inject("POST", "/v2/orders", *[Fault.error(429)] * 100)
    intents = [order(s) for s in SYMBOLS]
    journal = tmp_path / "journal.sqlite"
    record_intents(journal, intents)
    done = execute(
        broker,
        intents,
        {s: 10.0 for s in SYMBOLS},
        journal,
        wait_budget_s=60.0,
        monotonic=clock.monotonic,
    )
    assert [f.status for f in done.fills] == ["unconfirmed"] * 13
    assert len(done.unconfirmed) == 13 and not done.rejected
    assert "circuit breaker open" in (done.stopped or "")
    assert all("not sent" in f.reason for f in done.fills[2:])
    # Five sends (4 tries of the first order, 1 of the second), then nothing.
    assert len(fake.calls("POST", "/v2/orders")) == 5
    # Backoff 0.5 + 1 + 2 s, then the breaker: no 60 s fill wait for orders never confirmed.
    assert clock.t == pytest.approx(3.5)
    assert submitted_ids(journal) == set()  # the next run looks each one up


def test_an_order_found_at_the_broker_after_all_is_marked_submitted(fake, broker, clock, tmp_path):
    # The send's reply is lost (accepted), and every lookup after it fails: unconfirmed;
    # the final read finds it, so it is confirmed and never sent again.
    fake.inject("POST", "/v2/orders", Fault.error(503, accept=True))
    fake.inject("GET", "/v2/orders:by_client_order_id", Fault.none(), *[Fault.error(503)] * 4)
    it = order("S00")
    journal = tmp_path / "journal.sqlite"
    record_intents(journal, [it])
    done = execute(
        broker, [it], {"S00": 10.0}, journal, wait_budget_s=0.0, monotonic=clock.monotonic
    )
    assert [f.status for f in done.fills] == ["filled"]
    assert submitted_ids(journal) == {it.client_order_id}
    assert len(fake.calls("POST", "/v2/orders")) == 1
