from __future__ import annotations

import datetime as dt

import pytest

from py_finance.errors import PyFinanceError
from py_finance.live.brokers.paper import PaperBroker
from py_finance.live.journal import mark_submitted, pending_intents, record_intents
from py_finance.live.orders import plan_orders

SESSION = dt.date(2024, 3, 15)


def planned(run_id="r1", session=SESSION):
    return plan_orders(
        {"AAA": 0.3, "BBB": 0.1},
        {"CCC": 4.0},
        {"AAA": 10.0, "BBB": 20.0, "CCC": 50.0},
        10_000.0,
        session=session,
        run_id=run_id,
        min_notional=1.0,
    )


def test_recorded_intents_are_pending_in_planned_order(tmp_path):
    db = tmp_path / "j.sqlite"
    intents = planned()
    assert record_intents(db, intents) == 3
    assert pending_intents(db) == intents


def test_marked_intents_are_no_longer_pending(tmp_path):
    db = tmp_path / "j.sqlite"
    intents = planned()
    record_intents(db, intents)
    mark_submitted(db, intents[0].client_order_id)
    mark_submitted(db, intents[0].client_order_id)  # idempotent
    assert pending_intents(db) == intents[1:]


def test_recording_again_keeps_first_record(tmp_path):
    db = tmp_path / "j.sqlite"
    intents = planned()
    record_intents(db, intents)
    mark_submitted(db, intents[0].client_order_id)
    assert record_intents(db, intents) == 0
    assert pending_intents(db) == intents[1:]


def test_pending_filters_by_session(tmp_path):
    db = tmp_path / "j.sqlite"
    day1 = planned()
    day2 = planned(session=dt.date(2024, 3, 18))
    record_intents(db, day1 + day2)
    assert pending_intents(db, session=dt.date(2024, 3, 18)) == day2


def test_mark_submitted_of_unknown_id_raises(tmp_path):
    db = tmp_path / "j.sqlite"
    record_intents(db, planned())
    with pytest.raises(PyFinanceError, match="journal"):
        mark_submitted(db, "pf-unknown")


def test_journal_shares_the_paper_broker_file_and_restart_does_not_double_trade(tmp_path):
    db = tmp_path / "paper.sqlite"
    intents = plan_orders(
        {"AAA": 0.3, "BBB": 0.1},
        {},
        {"AAA": 10.0, "BBB": 20.0},
        10_000.0,
        session=SESSION,
        run_id="r1",
        min_notional=1.0,
    )
    assert [i.side for i in intents] == ["buy", "buy"]
    with PaperBroker(db, initial_cash=10_000.0, commission_bps=0.0, slippage_bps=0.0) as b:
        record_intents(db, intents)
        # crash after the first order reached the broker but before it was marked
        b.submit(intents[0], intents[0].ref_price)
    with PaperBroker(db, initial_cash=10_000.0, commission_bps=0.0, slippage_bps=0.0) as b:
        assert pending_intents(db) == intents
        for it in pending_intents(db):
            b.submit(it, it.ref_price)
            mark_submitted(db, it.client_order_id)
        assert pending_intents(db) == []
        assert b.positions() == {"BBB": pytest.approx(50.0), "AAA": pytest.approx(300.0)}
        assert b.account().cash == pytest.approx(6_000.0)
