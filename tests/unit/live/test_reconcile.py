"""Start-of-run reconciliation: journal and last log against the broker."""

from __future__ import annotations

import datetime as dt

import pytest

from py_finance.errors import PyFinanceError
from py_finance.live.brokers.paper import PaperBroker
from py_finance.live.journal import (
    mark_submitted,
    pending_intents,
    record_intents,
    submitted_ids,
)
from py_finance.live.orders import OrderIntent, client_order_id
from py_finance.live.reconcile import reconcile

DAY1 = dt.date(2024, 3, 14)
DAY2 = dt.date(2024, 3, 15)
NOW = dt.datetime(2024, 3, 15, 21, 0, tzinfo=dt.UTC)


def intent(symbol, side, qty, session=DAY2, price=100.0):
    return OrderIntent(
        client_order_id(session, symbol, side, "run"),
        session,
        symbol,
        side,
        qty,
        price,
        qty * price,
    )


@pytest.fixture
def broker(tmp_path):
    b = PaperBroker(
        tmp_path / "paper.sqlite",
        initial_cash=10_000.0,
        commission_bps=0.0,
        slippage_bps=0.0,
        clock=lambda: NOW,
    )
    yield b
    b.close()


def test_an_order_sent_before_a_crash_is_marked_submitted_not_resent(broker, tmp_path):
    journal = tmp_path / "paper.sqlite"
    sent, unsent = intent("AAA", "buy", 10), intent("BBB", "buy", 5)
    record_intents(journal, [sent, unsent])
    broker.submit(sent, 100.0)  # the crash came before mark_submitted
    rec = reconcile(broker, journal, DAY2, None)
    assert rec.found_at_broker == [sent.client_order_id]
    assert [i.client_order_id for i in rec.to_send] == [unsent.client_order_id]
    assert submitted_ids(journal) == {sent.client_order_id}
    assert rec.clean


def test_an_earlier_sessions_unsent_intent_is_abandoned_and_reported(broker, tmp_path):
    journal = tmp_path / "paper.sqlite"
    old = intent("AAA", "buy", 10, session=DAY1)
    record_intents(journal, [old])
    rec = reconcile(broker, journal, DAY2, None)
    assert rec.abandoned == [old.client_order_id]
    assert not rec.to_send and not rec.clean
    assert pending_intents(journal) == []
    assert "never reached the broker" in rec.messages()[0]


def test_positions_follow_the_last_log_plus_later_fills(broker, tmp_path):
    journal = tmp_path / "paper.sqlite"
    first = intent("AAA", "buy", 10, session=DAY1)
    record_intents(journal, [first])
    broker.submit(first, 100.0)
    mark_submitted(journal, first.client_order_id)
    last_log = {
        "session": DAY1.isoformat(),
        "positions": {"AAA": 10.0},
        "fills": [{"client_order_id": first.client_order_id, "qty_filled": 10.0}],
    }
    # A crashed run of DAY2 sold 4 before it could log.
    later = intent("AAA", "sell", 4)
    record_intents(journal, [later])
    broker.submit(later, 100.0)
    mark_submitted(journal, later.client_order_id)
    assert reconcile(broker, journal, DAY2, last_log).position_differences == {}


def test_a_position_the_logs_cannot_explain_is_reported(broker, tmp_path):
    journal = tmp_path / "paper.sqlite"
    stray = intent("ZZZ", "buy", 3, session=DAY1)
    broker.submit(stray, 100.0)  # traded outside the loop: never journaled
    last_log = {"session": DAY1.isoformat(), "positions": {}, "fills": []}
    rec = reconcile(broker, journal, DAY2, last_log)
    assert rec.position_differences == {"ZZZ": (0.0, 3.0)}
    assert not rec.clean
    assert "ZZZ: broker holds 3 sh" in rec.messages()[0]


@pytest.mark.parametrize(
    ("symbol", "side", "qty"), [("CCC", "buy", 10), ("AAA", "sell", 10), ("AAA", "buy", 3)]
)
def test_an_order_with_our_id_but_another_symbol_side_or_qty_is_not_ours(
    broker, tmp_path, symbol, side, qty
):
    journal = tmp_path / "journal.sqlite"
    ours = intent("AAA", "buy", 10)
    record_intents(journal, [ours])
    if side == "sell":
        broker.submit(intent("AAA", "buy", 20, session=DAY1), 100.0)
    # Someone else's order under our id (paper broker's book, same id).
    broker.submit(
        OrderIntent(ours.client_order_id, DAY2, symbol, side, qty, 100.0, qty * 100.0), 100.0
    )
    rec = reconcile(broker, journal, DAY2, None)
    assert rec.found_at_broker == [] and not rec.clean
    assert list(rec.conflicts) == [ours.client_order_id]
    assert f"{side} {symbol}" in rec.conflicts[ours.client_order_id]
    assert [i.client_order_id for i in rec.to_send] == [ours.client_order_id]
    assert submitted_ids(journal) == set()
    assert any("taken at the broker by another order" in m for m in rec.messages())
    # Sending it is refused, naming the other order; nothing is filled twice.
    with pytest.raises(PyFinanceError, match="already used"):
        broker.submit(ours, 100.0)


def test_whole_shares_of_a_fractional_intent_are_the_intent():
    from py_finance.live.orders import order_mismatch

    ours = intent("AAA", "buy", 10.7)
    assert order_mismatch(ours, "AAA", "buy", 10.7) is None
    assert order_mismatch(ours, "AAA", "buy", 10.0) is None  # a non-fractionable name
    assert order_mismatch(ours, "AAA", "buy", 10.700000001) is None  # 9 decimals
    assert order_mismatch(ours, "AAA", "buy", None) is None
    assert order_mismatch(ours, "AAA", "buy", 9.0) is not None
    assert order_mismatch(ours, "AAA", "sell", 10.7) == "sell AAA 10.7 sh"
