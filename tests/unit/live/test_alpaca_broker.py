"""AlpacaBroker through the real alpaca-py client against a loopback fake with faults.

Every fault scenario checks the two things that matter with money: no order is sent twice
(one order per client_order_id at the fake, the expected number created, no duplicate
refused) and none is lost (each intent ends as a broker order or a rejected fill that sent
nothing).
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import socket
from dataclasses import dataclass

import pandas as pd
import pytest

from py_finance.errors import PyFinanceError
from py_finance.live.brokers.alpaca import (
    BASE_URL_VARIABLE,
    LIVE_URL,
    PAPER_URL,
    AlpacaBroker,
    resolve_base_url,
)
from py_finance.live.brokers.base import Broker, BrokerUnavailable, Fill
from py_finance.live.orders import OrderIntent, client_order_id
from tests.fakes.alpaca_server import FakeAlpaca, Fault

SESSION = dt.date(2024, 3, 15)
NOW = dt.datetime(2024, 3, 15, 15, 0, tzinfo=dt.UTC)
KEY = "PKTESTKEYID7QX4Z9W2M"
SECRET = "sk-test-Vq8wYh2nB5rT0pLmK3sJ9dF6gH1cX4zA"
TIMEOUT_S = 0.5
LOOKUP = "/v2/orders:by_client_order_id"


def intent(symbol: str = "AAPL", side: str = "buy", qty: float = 2.0, run: str = "r1"):
    return OrderIntent(
        client_order_id(SESSION, symbol, side, run), SESSION, symbol, side, qty, 100.0, qty * 100
    )


class FakeTime:
    """Monotonic time that only moves when the broker sleeps; hooks run on each sleep."""

    def __init__(self) -> None:
        self.t = 0.0
        self.sleeps: list[float] = []
        self.hooks: list = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += seconds
        for hook in self.hooks:
            hook(self.t)

    def monotonic(self) -> float:
        return self.t


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch):
    """Nothing here may reach a real vendor: a connection off 127.0.0.1 fails the test."""
    real = socket.socket.connect

    def connect(self, address):
        host = address[0] if isinstance(address, tuple) else address
        if host not in ("127.0.0.1", "::1", "localhost"):
            raise AssertionError(f"a test tried to reach {address!r}")
        return real(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)


@pytest.fixture
def fake():
    with FakeAlpaca(
        cash=10_000.0,
        prices={"AAPL": 190.0, "MSFT": 410.0},
        assets={"BRK.A": {"fractionable": False}, "OTC": {"tradable": False}},
        key=KEY,
        secret=SECRET,
        now=lambda: NOW,
    ) as f:
        f.prices["BRK.A"] = 500.0
        yield f


@pytest.fixture
def clock():
    return FakeTime()


@pytest.fixture
def make_broker(tmp_path, fake, clock):
    opened: list[AlpacaBroker] = []

    def make(**kw):
        options = {
            "paper": True,
            "state_path": tmp_path / "alpaca.sqlite",
            "url_override": fake.url,
            "request_timeout_s": TIMEOUT_S,
            "fill_timeout_s": 2.0,
            "poll_interval_s": 0.5,
            "max_attempts": 4,
            "retry_base_s": 0.01,
            "retry_max_s": 0.05,
            "clock": lambda: NOW,
            "sleep": clock.sleep,
            "monotonic": clock.monotonic,
        }
        options.update(kw)
        key = options.pop("api_key", KEY)
        secret = options.pop("secret_key", SECRET)
        broker = AlpacaBroker(key, secret, **options)
        opened.append(broker)
        return broker

    yield make
    for b in opened:
        b.close()


def posts(fake: FakeAlpaca) -> int:
    return len(fake.calls("POST", "/v2/orders"))


def assert_no_duplicate_no_loss(
    fake: FakeAlpaca, pairs: list[tuple[OrderIntent, Fill]], created: int
) -> None:
    assert fake.duplicate_posts == 0
    assert len(fake.created) == len(set(fake.created)) == created
    for it, fill in pairs:
        order = fake.orders.get(it.client_order_id)
        if fill.status == "unconfirmed":
            # Not lost: the next run looks it up by its id; here it never reached the fake.
            assert not fill.broker_order_id and order is None
        elif fill.status == "rejected" and not fill.broker_order_id:
            assert order is None, f"{it.client_order_id} rejected but the broker has it"
        else:
            assert order is not None, f"{it.client_order_id} lost"
            assert order["id"] == fill.broker_order_id


# ------------------------------------------------------------------ fault matrix
@dataclass(frozen=True)
class Case:
    faults: tuple[tuple[str, str, Fault], ...] = ()
    status: str = "filled"
    created: int = 1
    posts: int = 1
    qty_filled: float = 2.0
    open: bool = False
    reason: str = ""
    policy: str = "fill"
    market_open: bool = True


def post(*faults: Fault) -> tuple[tuple[str, str, Fault], ...]:
    return tuple(("POST", "/v2/orders", f) for f in faults)


CASES = {
    "clean_fill": Case(),
    "partial_fill_stays_open": Case(status="partially_filled", qty_filled=1.0, open=True,
                                    policy="partial"),
    "market_closed_pending": Case(status="pending", qty_filled=0.0, open=True, market_open=False),
    "429_before_accept": Case(post(Fault.error(429)), posts=2),
    "429_after_accept": Case(post(Fault.error(429, accept=True))),
    "500_before_accept": Case(post(Fault.error(500)), posts=2),
    "500_after_accept": Case(post(Fault.error(500, accept=True))),
    "503_before_accept": Case(post(Fault.error(503)), posts=2),
    "503_after_accept": Case(post(Fault.error(503, accept=True))),
    "504_before_accept": Case(post(Fault.error(504)), posts=2),
    "504_after_accept": Case(post(Fault.error(504, accept=True))),
    "502_html_before_accept": Case(post(Fault.error(502)), posts=2),
    "502_html_after_accept": Case(post(Fault.error(502, accept=True))),
    "timeout_before_accept": Case(post(Fault.delay(5.0)), posts=2),
    "timeout_after_accept": Case(post(Fault.delay(5.0, accept=True))),
    "dropped_before_accept": Case(post(Fault.drop()), posts=2),
    "dropped_after_accept": Case(post(Fault.drop(accept=True))),
    "three_failures_then_accept": Case(
        post(Fault.error(503), Fault.drop(), Fault.error(502)), posts=4
    ),
    "lookup_also_fails_once": Case(
        (*post(Fault.error(500, accept=True)), ("GET", LOOKUP, Fault.error(503))),
    ),
    "persistent_503_is_unconfirmed_not_rejected": Case(
        post(*[Fault.error(503)] * 4),
        status="unconfirmed", created=0, posts=4, qty_filled=0.0, reason="after 4 attempts",
    ),
    "insufficient_buying_power": Case(
        post(Fault.insufficient_buying_power()),
        status="rejected", created=0, qty_filled=0.0, reason="insufficient buying power",
    ),
    "wash_trade": Case(
        post(Fault.wash_trade()),
        status="rejected", created=0, qty_filled=0.0, reason="potential wash trade detected",
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_submit_under_faults_sends_once_and_loses_nothing(fake, make_broker, case):
    fake.fill_policy = case.policy
    fake.market_open = case.market_open
    for method, path, fault in case.faults:
        fake.inject(method, path, fault)
    broker = make_broker()
    it = intent("AAPL", "buy", 2.0)

    fill = broker.submit(it, 190.0)

    assert fill.status == case.status
    assert fill.open is case.open
    assert fill.qty_filled == pytest.approx(case.qty_filled)
    assert fill.client_order_id == it.client_order_id
    assert (fill.symbol, fill.side) == ("AAPL", "buy")
    assert case.reason in fill.reason
    assert fill.commission == 0.0
    if fill.qty_filled:
        assert fill.price == pytest.approx(190.0)
    assert posts(fake) == case.posts
    assert not fake.faults, "every scripted fault was used"
    assert_no_duplicate_no_loss(fake, [(it, fill)], case.created)
    # What the broker says afterwards agrees with what submit returned.
    again = broker.get_order(it.client_order_id)
    if case.created:
        assert again is not None
        assert (again.status, again.qty_filled) == (fill.status, fill.qty_filled)
    else:
        assert again is None


def test_no_sdk_blind_retry_our_backoff_is_used(fake, make_broker, clock):
    fake.inject("POST", "/v2/orders", Fault.error(429), Fault.error(504))
    fill = make_broker().submit(intent(), 190.0)
    assert fill.status == "filled"
    # Two sends failed: one backoff each (ours: 0.01, 0.02), never the SDK's 3 s sleeps.
    assert clock.sleeps == [0.01, 0.02]
    assert posts(fake) == 3
    assert_no_duplicate_no_loss(fake, [(intent(), fill)], 1)


def test_duplicate_id_422_looks_up_the_existing_order(fake, make_broker):
    it = intent()
    first = make_broker().submit(it, 190.0)
    # A stale read hides the order from the second instance, which then sends it: Alpaca
    # refuses the id (422, 40010001) and the broker takes the existing order.
    fake.inject("GET", LOOKUP, Fault.not_found())
    second = make_broker().submit(it, 190.0)
    assert second.status == "filled"
    assert second.broker_order_id == first.broker_order_id
    assert fake.duplicate_posts == 1
    assert fake.created == [it.client_order_id]
    assert posts(fake) == 2


def test_resubmit_after_restart_sends_nothing(fake, make_broker):
    it = intent("MSFT", "buy", 1.5)
    first = make_broker().submit(it, 410.0)
    assert posts(fake) == 1
    second = make_broker().submit(it, 410.0)
    assert posts(fake) == 1
    assert second.broker_order_id == first.broker_order_id
    assert (second.status, second.qty_filled) == ("filled", 1.5)
    assert_no_duplicate_no_loss(fake, [(it, second)], 1)


def test_resubmit_after_restart_of_a_pending_order_sends_nothing(fake, make_broker):
    fake.market_open = False
    it = intent()
    make_broker().submit(it, 190.0)
    again = make_broker().submit(it, 190.0)
    assert (again.status, again.open) == ("pending", True)
    assert posts(fake) == 1
    assert_no_duplicate_no_loss(fake, [(it, again)], 1)


def test_lost_reply_and_unreachable_lookups_are_unconfirmed_never_resent(fake, make_broker):
    fake.inject("POST", "/v2/orders", Fault.error(503, accept=True))
    fake.inject("GET", LOOKUP, Fault.none(), Fault.error(503), Fault.error(503))
    broker = make_broker(max_attempts=2)
    it = intent()
    # The lookup before sending gets through; both tries of the one after the lost reply fail.
    unknown = broker.submit(it, 190.0)
    assert (unknown.status, unknown.open, unknown.qty_filled) == ("unconfirmed", False, 0.0)
    assert not unknown.confirmed
    assert re.search(r"order lookup .* failed after 2 attempts", unknown.reason)
    assert posts(fake) == 1
    # Not lost: once Alpaca answers again, the order is there.
    fill = broker.get_order(it.client_order_id)
    assert fill is not None and fill.status == "filled"
    assert_no_duplicate_no_loss(fake, [(it, fill)], 1)


def test_reused_id_for_another_symbol_is_refused(fake, make_broker):
    broker = make_broker()
    it = intent("AAPL", "buy", 1.0)
    broker.submit(it, 190.0)
    clash = OrderIntent(it.client_order_id, SESSION, "MSFT", "buy", 1.0, 410.0, 410.0)
    with pytest.raises(PyFinanceError, match="already used at alpaca for buy AAPL"):
        broker.submit(clash, 410.0)
    assert posts(fake) == 1


# ------------------------------------------------------------------ broker refusals
def test_real_insufficient_buying_power_is_a_rejected_fill(fake, make_broker):
    it = intent("MSFT", "buy", 100.0)  # 41,000 > 10,000 cash
    fill = make_broker().submit(it, 410.0)
    assert fill.status == "rejected"
    assert fill.final and fill.qty_filled == 0.0
    assert "HTTP 403: insufficient buying power" in fill.reason
    assert_no_duplicate_no_loss(fake, [(it, fill)], 0)


def test_selling_more_than_held_is_a_rejected_fill(fake, make_broker):
    it = intent("AAPL", "sell", 3.0)
    fill = make_broker().submit(it, 190.0)
    assert fill.status == "rejected"
    assert "insufficient qty available" in fill.reason
    assert_no_duplicate_no_loss(fake, [(it, fill)], 0)


def test_not_tradable_asset_is_rejected_with_the_brokers_message(fake, make_broker):
    it = intent("OTC", "buy", 1.0)
    fill = make_broker().submit(it, 100.0)
    assert fill.status == "rejected"
    assert "asset OTC is not tradable" in fill.reason
    assert_no_duplicate_no_loss(fake, [(it, fill)], 0)


def test_unknown_symbol_is_rejected_without_sending(fake, make_broker):
    it = intent("NOPE", "buy", 1.0)
    fill = make_broker().submit(it, 100.0)
    assert fill.status == "rejected"
    assert "does not know symbol 'NOPE'" in fill.reason
    assert posts(fake) == 0
    with pytest.raises(PyFinanceError, match="does not know symbol 'NOPE'"):
        make_broker().fractionable(["NOPE"])


def test_not_fractionable_sends_whole_shares(fake, make_broker):
    it = intent("BRK.A", "buy", 2.7)
    fill = make_broker().submit(it, 500.0)
    assert (fill.status, fill.qty_filled) == ("filled", 2.0)
    assert fake.calls("POST", "/v2/orders")[0].body["qty"] == 2.0
    assert_no_duplicate_no_loss(fake, [(it, fill)], 1)


def test_not_fractionable_below_one_share_is_rejected_without_sending(fake, make_broker):
    it = intent("BRK.A", "buy", 0.4)
    fill = make_broker().submit(it, 500.0)
    assert fill.status == "rejected"
    assert "not fractionable" in fill.reason and "0 whole shares" in fill.reason
    assert posts(fake) == 0
    assert_no_duplicate_no_loss(fake, [(it, fill)], 0)


@pytest.mark.parametrize(
    ("qty", "sent"), [(1.23456789012, 1.23456789), (0.3, 0.3), (1.23456789, 1.23456789)]
)
def test_fractional_qty_is_cut_to_nine_decimals(fake, make_broker, qty, sent):
    it = intent("AAPL", "buy", qty)
    fill = make_broker().submit(it, 190.0)
    assert fake.calls("POST", "/v2/orders")[0].body["qty"] == sent
    assert fill.qty_filled == sent


# ------------------------------------------------------------------ waiting, statuses
def test_pending_order_fills_while_waiting(fake, make_broker, clock):
    fake.fill_policy = "pending"
    broker = make_broker(fill_timeout_s=0)
    it = intent()
    fill = broker.submit(it, 190.0)
    assert (fill.status, fill.open) == ("pending", True)
    clock.hooks.append(lambda t: fake.fill_pending() if t >= 1.0 else None)
    [done] = broker.wait_for_fills([it.client_order_id], timeout_s=5.0)
    assert (done.status, done.open, done.qty_filled) == ("filled", False, 2.0)
    assert clock.t == pytest.approx(1.0)
    assert_no_duplicate_no_loss(fake, [(it, done)], 1)


def test_submit_waits_for_the_fill_up_to_fill_timeout(fake, make_broker, clock):
    fake.fill_policy = "pending"
    clock.hooks.append(lambda t: fake.fill_pending() if t >= 0.5 else None)
    fill = make_broker(fill_timeout_s=2.0).submit(intent(), 190.0)
    assert fill.status == "filled"
    assert clock.t == pytest.approx(0.5)


def test_wait_for_fills_timeout_returns_pending_states(fake, make_broker, clock):
    fake.fill_policy = "pending"
    broker = make_broker(fill_timeout_s=0)
    a, b = intent("AAPL"), intent("MSFT", qty=1.0)
    broker.submit(a, 190.0)
    broker.submit(b, 410.0)
    got = broker.wait_for_fills([a.client_order_id, b.client_order_id, "pf-unknown"], timeout_s=1.2)
    assert [(f.client_order_id, f.status, f.open) for f in got] == [
        (a.client_order_id, "pending", True),
        (b.client_order_id, "pending", True),
    ]
    assert clock.t == pytest.approx(1.2)
    assert posts(fake) == 2


def test_partial_fill_that_expires_is_final(fake, make_broker):
    fake.fill_policy = "partial"
    broker = make_broker(fill_timeout_s=0)
    it = intent(qty=4.0)
    broker.submit(it, 190.0)
    fake.expire_open()
    fill = broker.get_order(it.client_order_id)
    assert fill is not None
    assert (fill.status, fill.open, fill.qty_filled) == ("partially_filled", False, 2.0)
    assert "expired at alpaca after 2 of 4 sh filled" in fill.reason
    assert fill.filled_at == NOW


STATUSES = {
    # alpaca status, filled qty -> our status, open
    "new": (0, "pending", True),
    "accepted": (0, "pending", True),
    "pending_new": (0, "pending", True),
    "accepted_for_bidding": (0, "pending", True),
    "held": (0, "pending", True),
    "stopped": (0, "pending", True),
    "suspended": (0, "pending", True),
    "pending_cancel": (1, "partially_filled", True),
    "partially_filled": (1, "partially_filled", True),
    "filled": (2, "filled", False),
    "done_for_day": (0, "expired", False),
    "calculated": (2, "filled", False),
    "canceled": (0, "canceled", False),
    "expired": (1, "partially_filled", False),
    "replaced": (0, "canceled", False),
    "rejected": (0, "rejected", False),
    "some_new_status": (0, "pending", True),
}


@pytest.mark.parametrize(("alpaca_status", "expected"), STATUSES.items(), ids=STATUSES.keys())
def test_alpaca_status_maps_to_fill_status(fake, make_broker, alpaca_status, expected):
    filled, status, is_open = expected
    fake.fill_policy = "pending"
    broker = make_broker(fill_timeout_s=0)
    it = intent()
    broker.submit(it, 190.0)
    fake.set_order(
        it.client_order_id,
        status=alpaca_status,
        filled_qty=str(filled),
        filled_avg_price="190.5" if filled else None,
    )
    fill = broker.get_order(it.client_order_id)
    assert fill is not None
    assert (fill.status, fill.open, fill.qty_filled) == (status, is_open, filled)
    assert fill.price == (190.5 if filled else 0.0)


def test_commission_is_read_from_the_order_when_present(fake, make_broker):
    broker = make_broker()
    it = intent()
    assert broker.submit(it, 190.0).commission == 0.0
    fake.set_order(it.client_order_id, commission="1.25")
    fill = broker.get_order(it.client_order_id)
    assert fill is not None and fill.commission == 1.25


def test_get_order_of_unknown_id_is_none(make_broker):
    assert make_broker().get_order("pf-20240315-ZZZ-buy-00000000") is None


def test_open_orders_and_cancel_open_orders(fake, make_broker):
    fake.fill_policy = "pending"
    broker = make_broker(fill_timeout_s=0)
    a, b = intent("AAPL"), intent("MSFT", qty=1.0)
    broker.submit(a, 190.0)
    broker.submit(b, 410.0)
    assert {f.client_order_id for f in broker.open_orders()} == {
        a.client_order_id,
        b.client_order_id,
    }
    # The first try cancels both but its reply is lost; the retry finds nothing left.
    fake.inject("DELETE", "/v2/orders", Fault.error(503, accept=True))
    assert broker.cancel_open_orders() == 0
    assert broker.open_orders() == []
    for it in (a, b):
        fill = broker.get_order(it.client_order_id)
        assert fill is not None and (fill.status, fill.open) == ("canceled", False)
    assert broker.cancel_open_orders() == 0


def test_cancel_open_orders_counts_canceled(fake, make_broker):
    fake.fill_policy = "pending"
    broker = make_broker(fill_timeout_s=0)
    broker.submit(intent("AAPL"), 190.0)
    broker.submit(intent("MSFT", qty=1.0), 410.0)
    assert broker.cancel_open_orders() == 2


# ------------------------------------------------------------------ reads
def test_account_positions_clock_and_equity_history(fake, make_broker):
    broker = make_broker()
    assert isinstance(broker, Broker)
    assert broker.account().cash == 10_000.0
    broker.submit(intent("AAPL", "buy", 2.0), 190.0)
    broker.submit(intent("MSFT", "buy", 1.5), 410.0)
    account = broker.account()
    assert account.cash == pytest.approx(10_000 - 380 - 615)
    assert account.positions == {"AAPL": 2.0, "MSFT": 1.5}
    assert account.equity == pytest.approx(10_000.0)
    assert broker.positions() == {"AAPL": 2.0, "MSFT": 1.5}

    clock = broker.clock()
    assert clock is not None and clock.is_open
    assert clock.timestamp == NOW
    assert clock.next_close == dt.datetime(2024, 3, 15, 20, 0, tzinfo=dt.UTC)
    fake.market_open = False
    assert broker.clock().is_open is False

    assert broker.fractionable(["AAPL", "BRK.A"]) == {"AAPL": True, "BRK.A": False}
    n_asset_calls = len(fake.calls("GET", "/v2/assets/*"))
    broker.fractionable(["AAPL", "BRK.A"])
    assert len(fake.calls("GET", "/v2/assets/*")) == n_asset_calls  # cached

    fake.prices["AAPL"] = 200.0
    assert broker.mark_to_market({"AAPL": 1.0}, SESSION) == pytest.approx(10_020.0)
    fake.prices["AAPL"] = 210.0
    assert broker.mark_to_market({}, SESSION + dt.timedelta(days=3)) == pytest.approx(10_040.0)
    fake.prices["AAPL"] = 205.0
    broker.mark_to_market({}, SESSION)  # marking again replaces the point
    history = make_broker().equity_history()  # kept in the state file
    assert history.index.name == "session"
    assert list(history.index) == [pd.Timestamp("2024-03-15"), pd.Timestamp("2024-03-18")]
    assert history.tolist() == pytest.approx([10_030.0, 10_040.0])


def test_reads_retry_transient_failures_then_give_up(fake, make_broker):
    fake.inject("GET", "/v2/account", Fault.error(502), Fault.drop())
    broker = make_broker(max_attempts=3)
    assert broker.account().cash == 10_000.0
    fake.inject("GET", "/v2/clock", *[Fault.delay(5.0)] * 2)
    with pytest.raises(PyFinanceError, match="alpaca clock failed after 2 attempts: no reply"):
        make_broker(max_attempts=2).clock()


def test_fake_replies_parse_with_alpaca_py_models(fake):
    """The fake is only useful if the SDK's own models accept what it serves."""
    from alpaca.trading.client import TradingClient
    from alpaca.trading.enums import OrderSide, QueryOrderStatus, TimeInForce
    from alpaca.trading.requests import GetCalendarRequest, GetOrdersRequest, MarketOrderRequest

    client = TradingClient(KEY, SECRET, paper=True, url_override=fake.url)
    client._retry = 0

    def order(symbol: str, qty: float, coid: str):
        return MarketOrderRequest(
            symbol=symbol, qty=qty, side=OrderSide.BUY, time_in_force=TimeInForce.DAY,
            client_order_id=coid,
        )  # fmt: skip

    filled = client.submit_order(order("AAPL", 1.5, "pf-AAPL"))
    assert (filled.status.value, float(filled.filled_qty)) == ("filled", 1.5)
    fake.fill_policy = "partial"
    partial = client.submit_order(order("MSFT", 2, "pf-MSFT"))
    assert partial.status.value == "partially_filled"
    assert client.get_order_by_client_id("pf-AAPL").id == filled.id
    assert client.get_order_by_id(partial.id).client_order_id == "pf-MSFT"
    assert [o.id for o in client.get_orders(GetOrdersRequest(status=QueryOrderStatus.ALL))] == [
        partial.id,
        filled.id,
    ]
    assert client.get_account().cash is not None
    assert {p.symbol for p in client.get_all_positions()} == {"AAPL", "MSFT"}
    assert client.get_asset("BRK.A").fractionable is False
    assert len(client.get_all_assets()) == 4
    assert client.get_clock().is_open is True
    days = client.get_calendar(
        GetCalendarRequest(start=dt.date(2024, 11, 27), end=dt.date(2024, 12, 2))
    )
    assert [d.date for d in days] == [
        dt.date(2024, 11, 27),
        dt.date(2024, 11, 29),
        dt.date(2024, 12, 2),
    ]
    assert days[1].close.hour == 13  # early close after Thanksgiving
    assert [r.status for r in client.cancel_orders()] == [200]
    fake.fill_policy = "pending"
    pending = client.submit_order(order("AAPL", 1, "pf-AAPL-2"))
    client.cancel_order_by_id(pending.id)
    assert client.get_order_by_id(pending.id).status.value == "canceled"


# ------------------------------------------------------------------ keys and secrets
def test_refused_keys_raise_a_clear_error(fake, make_broker):
    broker = make_broker(secret_key="wrong-secret")
    with pytest.raises(PyFinanceError, match=r"refused the API keys .*HTTP 401"):
        broker.submit(intent(), 190.0)
    assert posts(fake) == 0


def test_secrets_never_reach_logs_or_errors(fake, make_broker, caplog):
    caplog.set_level(logging.DEBUG)
    errors: list[BaseException] = []
    broker = make_broker(max_attempts=2)
    fake.inject("POST", "/v2/orders", Fault.error(502), Fault.delay(5.0), Fault.drop())
    fills = [broker.submit(intent("AAPL"), 190.0), broker.submit(intent("MSFT", qty=1.0), 410.0)]
    fake.inject("GET", "/v2/account", *[Fault.error(503)] * 2)
    for call in (
        broker.account,
        lambda: make_broker(secret_key="bad-" + SECRET).account(),
        lambda: AlpacaBroker.from_env(True, "x.sqlite", environ={"APCA_API_KEY_ID": KEY}),
    ):
        with pytest.raises(PyFinanceError) as info:
            call()
        errors.append(info.value)

    texts = [caplog.text, repr(broker), *map(repr, fills)]
    for exc in errors:
        while exc is not None:
            texts += [str(exc), repr(exc)]
            exc = exc.__cause__ or exc.__context__
    assert caplog.text  # something was logged
    for text in texts:
        assert KEY not in text
        assert SECRET not in text
    # The keys did reach Alpaca, in its headers.
    assert fake.seen[0].headers["APCA-API-KEY-ID"] == KEY


def test_from_env_reads_either_pair_of_variables(fake, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for var in ("APCA_API_KEY_ID", "APCA_API_SECRET_KEY", "ALPACA_API_KEY", "ALPACA_SECRET_KEY"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(PyFinanceError, match="set APCA_API_KEY_ID or ALPACA_API_KEY and "):
        AlpacaBroker.from_env(True, tmp_path / "a.sqlite", url_override=fake.url)
    monkeypatch.setenv("ALPACA_API_KEY", KEY)
    monkeypatch.setenv("ALPACA_SECRET_KEY", SECRET)
    with AlpacaBroker.from_env(True, tmp_path / "a.sqlite", url_override=fake.url) as broker:
        assert broker.account().cash == 10_000.0
    monkeypatch.setenv("APCA_API_SECRET_KEY", "other")  # APCA_* wins over ALPACA_*
    with AlpacaBroker.from_env(
        False, tmp_path / "a.sqlite", url_override=fake.url, max_attempts=1
    ) as broker:
        assert broker.paper is False
        with pytest.raises(PyFinanceError, match="refused the API keys"):
            broker.account()
    (tmp_path / ".env").write_text(f"APCA_API_KEY_ID={KEY}\nAPCA_API_SECRET_KEY={SECRET}\n")
    for var in ("APCA_API_SECRET_KEY", "ALPACA_API_KEY", "ALPACA_SECRET_KEY"):
        monkeypatch.delenv(var)
    with AlpacaBroker.from_env(True, tmp_path / "a.sqlite", url_override=fake.url) as broker:
        assert broker.account().cash == 10_000.0


# ------------------------------------------------------------------ storms and the breaker
def rate_limited(retry_after: str) -> Fault:
    return Fault(
        "status",
        429,
        {"code": 42910000, "message": "rate limit exceeded"},
        headers={"Retry-After": retry_after},
    )


def test_a_429_storm_opens_the_breaker_and_honours_retry_after(fake, make_broker, clock):
    fake.inject("POST", "/v2/orders", *[rate_limited("1")] * 100)
    broker = make_broker(breaker_failures=5)  # 4 tries per order, backoff 0.01 .. 0.05 s
    orders = [intent(sym, qty=0.01, run=f"r{n}") for n, sym in enumerate(["AAPL", "MSFT"] * 7)]

    first = broker.submit(orders[0], 190.0)
    assert (first.status, first.qty_filled) == ("unconfirmed", 0.0)
    assert "after 4 attempts" in first.reason and "HTTP 429" in first.reason
    assert broker.breaker_open is None  # 4 failures: not yet
    # The fifth consecutive 429 opens the breaker: that order stays unconfirmed ...
    second = broker.submit(orders[1], 410.0)
    assert second.status == "unconfirmed" and "circuit breaker open" in second.reason
    assert "5 consecutive failed requests" in (broker.breaker_open or "")
    # ... and no later order reaches Alpaca, not even its lookup.
    seen = len(fake.seen)
    for it in orders[2:]:
        with pytest.raises(BrokerUnavailable, match="circuit breaker open"):
            broker.submit(it, 190.0)
    assert len(fake.seen) == seen
    assert posts(fake) == 5 and not fake.created
    # Reads go on, so the run can still log the account and the orders' states.
    assert broker.account().cash == 10_000.0
    assert broker.get_order(orders[0].client_order_id) is None
    # Alpaca asked for 1 s each time: never a try sooner (the backoff alone is 0.01 .. 0.04).
    assert clock.sleeps == [1.0, 1.0, 1.0]


def test_a_retry_after_longer_than_the_limit_stops_without_waiting(fake, make_broker, clock):
    fake.inject("POST", "/v2/orders", rate_limited("120"))
    broker = make_broker(max_retry_after_s=30.0)
    fill = broker.submit(intent(), 190.0)
    assert fill.status == "unconfirmed"
    assert "Retry-After" in (broker.breaker_open or "") and "120" in fill.reason
    assert clock.sleeps == [] and posts(fake) == 1
    # A read told to wait that long gives up at once too.
    fake.inject("GET", "/v2/account", rate_limited("120"))
    with pytest.raises(BrokerUnavailable, match="Retry-After"):
        broker.account()
    assert clock.sleeps == []
    # An HTTP-date Retry-After counts too.
    later = (dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)).strftime(
        "%a, %d %b %Y %H:%M:%S GMT"
    )
    fake.inject("POST", "/v2/orders", rate_limited(later))
    other = make_broker(max_retry_after_s=30.0)
    assert other.submit(intent("MSFT", qty=1.0), 410.0).status == "unconfirmed"
    assert "Retry-After" in (other.breaker_open or "")


def test_an_answer_between_failures_keeps_the_breaker_closed(fake, make_broker):
    broker = make_broker(breaker_failures=3, max_attempts=2)
    fake.inject("GET", "/v2/account", Fault.error(503), Fault.none(), Fault.error(503))
    fake.inject("GET", "/v2/account", Fault.none(), Fault.error(503), Fault.none())
    for _ in range(3):
        assert broker.account().cash == 10_000.0
    assert broker.breaker_open is None


def test_failed_sends_count_even_when_the_lookups_between_them_answer(fake, make_broker):
    # A storm on POST /v2/orders alone: each lookup between the sends answers 404, which
    # must not reset the count of failed sends.
    fake.inject("POST", "/v2/orders", *[Fault.error(503)] * 10)
    broker = make_broker(breaker_failures=3, max_attempts=4)
    fill = broker.submit(intent(), 190.0)
    assert fill.status == "unconfirmed" and "circuit breaker open" in fill.reason
    assert posts(fake) == 3


def test_a_key_echoed_in_an_error_body_never_reaches_a_reason_or_error(fake, make_broker, caplog):
    caplog.set_level(logging.DEBUG)
    echo = {"code": 40310000, "message": f"key {KEY} with secret {SECRET} may not trade"}
    fake.inject("POST", "/v2/orders", Fault("status", 403, echo))
    fake.inject("GET", "/v2/account", Fault("status", 500, echo), Fault("status", 400, echo))
    broker = make_broker(max_attempts=1)
    fill = broker.submit(intent(), 190.0)
    assert fill.status == "rejected" and "may not trade" in fill.reason
    texts = [fill.reason]
    for _ in range(2):
        with pytest.raises(PyFinanceError) as info:
            broker.account()
        exc: BaseException | None = info.value
        while exc is not None:
            texts += [str(exc), repr(exc)]
            exc = exc.__cause__ or exc.__context__
    texts.append(caplog.text)
    assert any("***" in t for t in texts)
    for text in texts:
        assert KEY not in text and SECRET not in text


# ------------------------------------------------------------------ endpoint
def test_the_base_url_comes_from_the_config_then_the_environment():
    env = {BASE_URL_VARIABLE: "https://proxy.example.com/alpaca/v2/"}
    assert resolve_base_url(None, {}, paper=True) is None
    assert resolve_base_url(None, env, paper=True) == "https://proxy.example.com/alpaca"
    assert resolve_base_url("http://127.0.0.1:8080", env, paper=False) == "http://127.0.0.1:8080"
    assert resolve_base_url(PAPER_URL, {}, paper=True) == PAPER_URL
    assert resolve_base_url(f"{LIVE_URL}/v2", {}, paper=False) == LIVE_URL


@pytest.mark.parametrize(
    ("url", "paper", "message"),
    [
        ("ftp://example.com", True, "must be an http"),
        ("paper-api.alpaca.markets", True, "must be an http"),
        ("http://staging.example.com", True, "unencrypted"),
        ("https://user:pw@proxy.example.com", True, "no user:password"),
        ("https://proxy.example.com/?token=1", True, "no user:password"),
        (LIVE_URL, True, "points the paper broker at https://api.alpaca.markets"),
        (PAPER_URL, False, "points the live broker at https://paper-api.alpaca.markets"),
    ],
)
def test_a_dangerous_base_url_is_refused(url, paper, message):
    with pytest.raises(PyFinanceError, match=re.escape(message)):
        resolve_base_url(None, {BASE_URL_VARIABLE: url}, paper=paper)


def test_from_env_reaches_the_endpoint_of_apca_api_base_url(fake, tmp_path):
    env = {"APCA_API_KEY_ID": KEY, "APCA_API_SECRET_KEY": SECRET, BASE_URL_VARIABLE: fake.url}
    with AlpacaBroker.from_env(True, tmp_path / "a.sqlite", environ=env) as broker:
        assert broker.url_override == fake.url
        assert broker.account().cash == 10_000.0
    configured = f"{fake.url}/v2"
    with AlpacaBroker.from_env(
        True, tmp_path / "a.sqlite", environ={**env, BASE_URL_VARIABLE: ""}, base_url=configured
    ) as broker:
        assert broker.account().cash == 10_000.0
    assert len(fake.calls("GET", "/v2/account")) == 2
