from __future__ import annotations

import datetime as dt
import sqlite3
import tempfile
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from py_finance.errors import PyFinanceError
from py_finance.live.brokers.base import Broker
from py_finance.live.brokers.paper import PaperBroker
from py_finance.live.orders import OrderIntent, client_order_id

SESSION = dt.date(2024, 3, 15)
NOW = dt.datetime(2024, 3, 15, 21, 0, tzinfo=dt.UTC)


def intent(symbol, side, qty, price=100.0, run="r1", session=SESSION):
    return OrderIntent(
        client_order_id(session, symbol, side, run), session, symbol, side, qty, price, qty * price
    )


@pytest.fixture
def make_broker(tmp_path):
    opened = []

    def make(cash=10_000.0, commission_bps=0.0, slippage_bps=0.0, path=None):
        b = PaperBroker(
            path or tmp_path / "state" / "paper.sqlite",
            initial_cash=cash,
            commission_bps=commission_bps,
            slippage_bps=slippage_bps,
            clock=lambda: NOW,
        )
        opened.append(b)
        return b

    yield make
    for b in opened:
        b.close()


def test_paper_broker_satisfies_protocol(make_broker):
    assert isinstance(make_broker(), Broker)


def test_new_account_starts_with_initial_cash(make_broker):
    acct = make_broker(cash=5_000.0).account()
    assert acct.cash == 5_000.0
    assert acct.equity == 5_000.0
    assert acct.positions == {}


def test_buy_fills_above_and_sell_below_price_by_slippage(make_broker):
    b = make_broker(slippage_bps=10.0)
    buy = b.submit(intent("AAA", "buy", 10), 100.0)
    assert buy.status == "filled"
    assert buy.price == pytest.approx(100.1)
    assert buy.qty_filled == 10
    assert b.account().cash == pytest.approx(10_000 - 1_001.0)
    sell = b.submit(intent("AAA", "sell", 10), 100.0)
    assert sell.price == pytest.approx(99.9)
    assert b.account().cash == pytest.approx(10_000 - 1_001.0 + 999.0)
    assert b.positions() == {}


def test_commission_is_paid_from_cash(make_broker):
    b = make_broker(commission_bps=25.0)
    fill = b.submit(intent("AAA", "buy", 10), 100.0)
    assert fill.commission == pytest.approx(2.5)
    assert b.account().cash == pytest.approx(10_000 - 1_000 - 2.5)
    sell = b.submit(intent("AAA", "sell", 4), 100.0)
    assert sell.commission == pytest.approx(1.0)
    assert b.account().cash == pytest.approx(10_000 - 1_000 - 2.5 + 400 - 1.0)


def test_fill_timestamp_is_tz_aware_utc(make_broker):
    fill = make_broker().submit(intent("AAA", "buy", 1), 100.0)
    assert fill.filled_at == NOW
    assert fill.filled_at.utcoffset() == dt.timedelta(0)


def test_buy_larger_than_cash_is_partially_filled_with_all_cash(make_broker):
    b = make_broker(cash=1_000.0, commission_bps=10.0, slippage_bps=10.0)
    fill = b.submit(intent("AAA", "buy", 50), 100.0)
    assert fill.status == "partially_filled"
    assert 0 < fill.qty_filled < 50
    assert fill.qty_filled * fill.price + fill.commission == pytest.approx(1_000.0)
    acct = b.account()
    assert 0.0 <= acct.cash < 1e-6
    assert acct.positions == {"AAA": pytest.approx(fill.qty_filled)}


def test_buy_with_no_cash_is_rejected(make_broker):
    b = make_broker(cash=1_000.0)
    b.submit(intent("AAA", "buy", 10), 100.0)
    fill = b.submit(intent("BBB", "buy", 1), 50.0)
    assert fill.status == "rejected"
    assert fill.qty_filled == 0
    assert "BBB" not in b.positions()


def test_sell_larger_than_position_is_clamped_and_never_shorts(make_broker):
    b = make_broker()
    b.submit(intent("AAA", "buy", 5), 100.0)
    fill = b.submit(intent("AAA", "sell", 8), 100.0)
    assert fill.status == "partially_filled"
    assert fill.qty_filled == 5
    assert b.positions() == {}
    assert b.account().cash == pytest.approx(10_000.0)


def test_sell_without_position_is_rejected(make_broker):
    b = make_broker()
    fill = b.submit(intent("AAA", "sell", 3), 100.0)
    assert fill.status == "rejected"
    assert b.positions() == {}
    assert b.account().cash == 10_000.0


def test_resubmitting_same_client_order_id_changes_nothing(make_broker):
    b = make_broker()
    order = intent("AAA", "buy", 10)
    first = b.submit(order, 100.0)
    again = b.submit(order, 80.0)
    assert again == first
    assert b.positions() == {"AAA": 10.0}
    assert b.account().cash == pytest.approx(9_000.0)
    assert b.get_order(order.client_order_id) == first


def test_reused_id_for_another_symbol_is_an_error(make_broker):
    b = make_broker()
    order = intent("AAA", "buy", 1)
    b.submit(order, 100.0)
    clash = OrderIntent(order.client_order_id, SESSION, "BBB", "buy", 1.0, 100.0, 100.0)
    with pytest.raises(PyFinanceError, match="already used"):
        b.submit(clash, 100.0)


def test_get_order_of_unknown_id_is_none(make_broker):
    assert make_broker().get_order("pf-nope") is None


def test_state_persists_across_instances(make_broker, tmp_path):
    path = tmp_path / "persist.sqlite"
    b1 = make_broker(path=path, slippage_bps=5.0)
    order = intent("AAA", "buy", 10)
    fill = b1.submit(order, 100.0)
    b1.mark_to_market({"AAA": 110.0}, SESSION)
    b1.close()

    b2 = make_broker(path=path, cash=999_999.0, slippage_bps=5.0)  # initial_cash ignored
    assert b2.positions() == {"AAA": 10.0}
    assert b2.account().cash == pytest.approx(10_000 - 10 * 100.05)
    assert b2.get_order(order.client_order_id) == fill
    assert b2.submit(order, 100.0) == fill  # still idempotent after a restart
    assert b2.positions() == {"AAA": 10.0}
    assert list(b2.equity_history().index) == [pd.Timestamp("2024-03-15")]


def test_failure_inside_submit_rolls_everything_back(make_broker, monkeypatch):
    b = make_broker()

    def boom(*args, **kwargs):
        raise sqlite3.OperationalError("disk full")

    monkeypatch.setattr(b, "_record_order", boom)
    order = intent("AAA", "buy", 10)
    with pytest.raises(sqlite3.OperationalError):
        b.submit(order, 100.0)
    assert b.account().cash == 10_000.0
    assert b.positions() == {}
    assert b.get_order(order.client_order_id) is None


@pytest.mark.parametrize("bad", [0.0, -5.0, float("nan")])
def test_non_positive_price_is_refused(make_broker, bad):
    b = make_broker()
    with pytest.raises(PyFinanceError, match="price"):
        b.submit(intent("AAA", "buy", 1), bad)
    assert b.account().cash == 10_000.0


def test_mark_to_market_records_equity_history(make_broker):
    b = make_broker()
    b.submit(intent("AAA", "buy", 10), 100.0)
    e1 = b.mark_to_market({"AAA": 120.0}, SESSION)
    assert e1 == pytest.approx(9_000 + 1_200)
    assert b.account().equity == pytest.approx(e1)
    e2 = b.mark_to_market({"AAA": 90.0}, dt.date(2024, 3, 18))
    b.mark_to_market({"AAA": 95.0}, dt.date(2024, 3, 18))  # re-mark replaces
    hist = b.equity_history()
    assert hist.index.name == "session"
    assert hist.dtype == "float64"
    assert hist.to_dict() == {
        pd.Timestamp("2024-03-15"): pytest.approx(e1),
        pd.Timestamp("2024-03-18"): pytest.approx(e2 + 50.0),
    }


def test_mark_to_market_without_price_for_a_holding_raises(make_broker):
    b = make_broker()
    b.submit(intent("AAA", "buy", 1), 100.0)
    with pytest.raises(PyFinanceError, match="AAA"):
        b.mark_to_market({"BBB": 1.0}, SESSION)
    assert b.equity_history().empty


def test_naive_clock_is_refused(tmp_path):
    with PaperBroker(
        tmp_path / "p.sqlite",
        initial_cash=1_000.0,
        commission_bps=0.0,
        slippage_bps=0.0,
        clock=lambda: dt.datetime(2024, 1, 1),  # noqa: DTZ001 - the point of the test
    ) as b:
        with pytest.raises(PyFinanceError, match="tz-aware"):
            b.submit(intent("AAA", "buy", 1), 100.0)
        assert b.account().cash == 1_000.0


order_steps = st.lists(
    st.tuples(
        st.sampled_from(["A", "B", "C"]),
        st.sampled_from(["buy", "sell"]),
        st.floats(0.001, 500.0),
        st.floats(0.01, 1_000.0),
    ),
    max_size=25,
)


@settings(max_examples=60, deadline=None)
@given(
    steps=order_steps,
    cash=st.floats(0.0, 50_000.0),
    commission_bps=st.floats(0.0, 100.0),
    slippage_bps=st.floats(0.0, 100.0),
)
def test_cash_and_positions_never_go_negative(steps, cash, commission_bps, slippage_bps):
    with (
        tempfile.TemporaryDirectory() as d,
        PaperBroker(
            Path(d) / "p.sqlite",
            initial_cash=cash,
            commission_bps=commission_bps,
            slippage_bps=slippage_bps,
        ) as b,
    ):
        for i, (symbol, side, qty, price) in enumerate(steps):
            before = b.account()
            fill = b.submit(intent(symbol, side, qty, price=price, run=str(i)), price)
            acct = b.account()
            assert acct.cash >= 0.0
            assert all(q > 0 for q in acct.positions.values())
            assert fill.qty_filled <= qty
            if side == "buy":
                spent = fill.qty_filled * fill.price + fill.commission
                assert acct.cash == pytest.approx(before.cash - spent, abs=1e-6)
            else:
                assert fill.qty_filled <= before.positions.get(symbol, 0.0) + 1e-9


def next_close_broker(tmp_path, cash=1_000.0):
    return PaperBroker(
        tmp_path / "next.sqlite",
        initial_cash=cash,
        commission_bps=0.0,
        slippage_bps=0.0,
        clock=lambda: NOW,
        fill_at="next_close",
    )


def test_next_close_orders_wait_and_fill_at_the_next_sessions_close(tmp_path):
    with next_close_broker(tmp_path) as b:
        sent = b.submit(intent("AAA", "buy", 5, price=100.0), 100.0)
        assert sent.status == "pending" and sent.open and sent.qty_filled == 0
        assert b.positions() == {} and b.account().cash == 1_000.0
        assert [o.client_order_id for o in b.open_orders()] == [sent.client_order_id]
        # Not in the session it was decided in: the decision came after that close.
        assert b.settle({"AAA": 90.0}, SESSION) == []
        later = SESSION + dt.timedelta(days=3)
        fills = b.settle({"AAA": 110.0}, later)
        assert [(f.status, f.qty_filled, f.price) for f in fills] == [("filled", 5.0, 110.0)]
        assert b.positions() == {"AAA": 5.0} and b.account().cash == pytest.approx(450.0)
        assert b.settle({"AAA": 120.0}, later) == []  # idempotent
        assert b.get_order(sent.client_order_id).final
        assert b.open_orders() == []


def test_settle_sells_first_so_their_cash_pays_the_buys(tmp_path):
    with next_close_broker(tmp_path, cash=0.0) as b:
        b._conn.execute("INSERT INTO positions (symbol, qty, last_price) VALUES ('OLD', 10, 50)")
        b._conn.commit()
        buy = b.submit(intent("NEW", "buy", 4, price=100.0), 100.0)
        sell = b.submit(intent("OLD", "sell", 10, price=50.0), 50.0)
        fills = b.settle({"NEW": 100.0, "OLD": 50.0}, SESSION + dt.timedelta(days=1))
        assert [f.client_order_id for f in fills] == [sell.client_order_id, buy.client_order_id]
        assert b.positions() == {"NEW": 4.0}


def test_a_pending_order_without_a_price_stays_pending_and_can_be_canceled(tmp_path):
    with next_close_broker(tmp_path) as b:
        sent = b.submit(intent("AAA", "buy", 1), 100.0)
        assert b.settle({"BBB": 10.0}, SESSION + dt.timedelta(days=1)) == []
        assert b.get_order(sent.client_order_id).status == "pending"
        assert b.cancel_open_orders() == 1
        state = b.get_order(sent.client_order_id)
        assert state.status == "canceled" and state.final
        assert b.settle({"AAA": 10.0}, SESSION + dt.timedelta(days=2)) == []
