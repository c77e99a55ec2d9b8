"""The paper broker pays a held delisted name out at its delisting return, once."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from py_finance.live.brokers.paper import Delisting, PaperBroker
from py_finance.live.loop import delisting_events
from py_finance.live.orders import OrderIntent, client_order_id

SESSION = dt.date(2024, 3, 15)
NOW = dt.datetime(2024, 3, 15, 21, 0, tzinfo=dt.UTC)


def _broker(tmp_path):
    return PaperBroker(
        tmp_path / "paper.sqlite",
        initial_cash=10_000.0,
        commission_bps=5.0,
        slippage_bps=0.0,
        clock=lambda: NOW,
    )


def _buy(broker, symbol, qty, price):
    cid = client_order_id(SESSION, symbol, "buy", "r1")
    broker.submit(OrderIntent(cid, SESSION, symbol, "buy", qty, price, qty * price), price)


@pytest.mark.parametrize("ret", [-1.0, -0.4, 0.3])
def test_a_held_delisting_costs_exactly_its_delisting_return(tmp_path, ret):
    broker = _broker(tmp_path)
    try:
        _buy(broker, "AAA", 20.0, 100.0)
        _buy(broker, "BBB", 30.0, 50.0)
        before = broker.mark_to_market({"AAA": 101.0, "BBB": 52.0}, SESSION)
        day = SESSION + dt.timedelta(days=3)
        done = broker.apply_delistings([Delisting("BBB", day, ret, 52.0)], day)
        after = broker.account()
        assert after.positions == {"AAA": 20.0}
        assert after.equity - before == pytest.approx(30.0 * 52.0 * ret, abs=1e-9)
        assert done[0]["paid"] == pytest.approx(30.0 * 52.0 * (1.0 + ret))
        # applied once: a rerun of the day pays nothing more
        assert broker.apply_delistings([Delisting("BBB", day, ret, 52.0)], day) == []
        assert broker.account().cash == after.cash
    finally:
        broker.close()


def test_a_future_or_unheld_delisting_does_nothing(tmp_path):
    broker = _broker(tmp_path)
    try:
        _buy(broker, "AAA", 20.0, 100.0)
        later = SESSION + dt.timedelta(days=10)
        assert broker.apply_delistings([Delisting("AAA", later, -1.0, 100.0)], SESSION) == []
        assert broker.apply_delistings([Delisting("ZZZ", SESSION, -1.0, 1.0)], SESSION) == []
        assert broker.positions() == {"AAA": 20.0}
    finally:
        broker.close()


def test_delisting_events_take_the_last_close_before_the_delisting():
    days = pd.bdate_range("2024-03-11", periods=5)
    history = pd.DataFrame(
        {"AAA": [1.0, 2.0, 3.0, 4.0, 5.0], "BBB": [7.0, 8.0, float("nan"), None, None]},
        index=days,
    )
    delistings = pd.DataFrame(
        {"symbol": ["BBB", "AAA"], "date": [days[3], days[4]], "delisting_return": [-0.5, 0.1]}
    )
    events = delisting_events(delistings, history, {"BBB": 1.0}, days[4].date())
    assert events == [Delisting("BBB", days[3].date(), -0.5, 8.0)]
