from __future__ import annotations

import datetime as dt
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from py_finance.errors import PyFinanceError
from py_finance.live.orders import OrderIntent, client_order_id, plan_orders

SESSION = dt.date(2024, 3, 15)


def plan(targets, positions, prices, equity=10_000.0, min_notional=1.0, run_id="run-1"):
    return plan_orders(
        targets,
        positions,
        prices,
        equity,
        session=SESSION,
        run_id=run_id,
        min_notional=min_notional,
    )


def test_client_order_id_is_deterministic_and_short():
    a = client_order_id(SESSION, "AAPL", "buy", "run-1")
    assert a == client_order_id(SESSION, "AAPL", "buy", "run-1")
    assert a.startswith("pf-20240315-AAPL-buy-")
    assert len(a) <= 128
    assert len(a.rsplit("-", 1)[1]) == 8


@pytest.mark.parametrize(
    ("other"),
    [
        (dt.date(2024, 3, 18), "AAPL", "buy", "run-1"),
        (SESSION, "MSFT", "buy", "run-1"),
        (SESSION, "AAPL", "sell", "run-1"),
        (SESSION, "AAPL", "buy", "run-2"),
    ],
)
def test_client_order_id_differs_when_any_part_differs(other):
    assert client_order_id(SESSION, "AAPL", "buy", "run-1") != client_order_id(*other)


def test_client_order_id_rejects_bad_side_and_long_symbol():
    with pytest.raises(PyFinanceError, match="side"):
        client_order_id(SESSION, "AAPL", "short", "r")
    with pytest.raises(PyFinanceError, match="128"):
        client_order_id(SESSION, "X" * 120, "buy", "r")


def test_sells_come_before_buys_and_buys_ascend_by_notional():
    targets = {"AAA": 0.5, "BBB": 0.1, "CCC": 0.2, "DDD": 0.0}
    positions = {"DDD": 10.0, "EEE": 5.0}
    prices = {"AAA": 10.0, "BBB": 20.0, "CCC": 50.0, "DDD": 100.0, "EEE": 40.0}
    orders = plan(targets, positions, prices)
    sides = [o.side for o in orders]
    assert sides == ["sell", "sell", "buy", "buy", "buy"]
    buys = [o for o in orders if o.side == "buy"]
    assert [o.symbol for o in buys] == ["BBB", "CCC", "AAA"]
    assert [o.notional for o in buys] == sorted(o.notional for o in buys)


def test_one_net_order_per_symbol_for_the_difference():
    orders = plan({"AAA": 0.5}, {"AAA": 400.0}, {"AAA": 10.0})
    assert len(orders) == 1
    (o,) = orders
    # target 0.5 * 10_000 / 10 = 500 shares, 400 held
    assert o.side == "buy"
    assert o.qty == pytest.approx(100.0)
    assert o.notional == pytest.approx(1_000.0)
    assert o.ref_price == 10.0

    (o,) = plan({"AAA": 0.1}, {"AAA": 400.0}, {"AAA": 10.0})
    assert o.side == "sell"
    assert o.qty == pytest.approx(300.0)


def test_names_held_but_not_targeted_are_sold_to_zero():
    orders = plan({"AAA": 0.2}, {"AAA": 200.0, "ZZZ": 3.25}, {"AAA": 10.0, "ZZZ": 7.0})
    zzz = [o for o in orders if o.symbol == "ZZZ"]
    assert len(zzz) == 1
    assert zzz[0].side == "sell"
    assert zzz[0].qty == 3.25  # exactly the holding, no float residue
    assert all(o.symbol != "AAA" for o in orders)  # already on target


def test_orders_below_min_notional_are_dropped():
    orders = plan(
        {"AAA": 0.5, "BBB": 0.5}, {"AAA": 499.95}, {"AAA": 10.0, "BBB": 10.0}, min_notional=5.0
    )
    # AAA needs 0.05 sh = $0.50 < $5; BBB needs $5000
    assert [o.symbol for o in orders] == ["BBB"]


def test_no_orders_when_already_on_target():
    assert plan({"AAA": 0.5}, {"AAA": 500.0}, {"AAA": 10.0}, min_notional=0.0) == []


@pytest.mark.parametrize("bad", [None, 0.0, -1.0, float("nan")])
def test_missing_or_non_positive_price_of_a_needed_symbol_raises(bad):
    prices = {"AAA": 10.0}
    if bad is not None:
        prices["BBB"] = bad
    with pytest.raises(PyFinanceError, match="BBB"):
        plan({"AAA": 0.5, "BBB": 0.2}, {}, prices)
    with pytest.raises(PyFinanceError, match="BBB"):
        plan({"AAA": 0.5}, {"BBB": 1.0}, prices)


def test_price_not_needed_for_zero_weight_unheld_symbol():
    orders = plan({"AAA": 0.5, "BBB": 0.0}, {}, {"AAA": 10.0})
    assert [o.symbol for o in orders] == ["AAA"]


@pytest.mark.parametrize(
    ("targets", "match"),
    [
        ({"AAA": -0.1}, "long-only"),
        ({"AAA": 0.7, "BBB": 0.4}, "sum"),
        ({"AAA": float("nan")}, "long-only"),
    ],
)
def test_invalid_weights_raise(targets, match):
    with pytest.raises(PyFinanceError, match=match):
        plan(targets, {}, {"AAA": 10.0, "BBB": 10.0})


def test_ids_are_deterministic_across_replans_and_runs_differ():
    args = ({"AAA": 0.5}, {"BBB": 2.0}, {"AAA": 10.0, "BBB": 5.0})
    first = plan(*args)
    again = plan(*args)
    other = plan(*args, run_id="run-2")
    assert [o.client_order_id for o in first] == [o.client_order_id for o in again]
    assert {o.client_order_id for o in first}.isdisjoint(o.client_order_id for o in other)
    assert all(o.session == SESSION for o in first)


def test_order_intent_validates_qty_and_side():
    with pytest.raises(PyFinanceError):
        OrderIntent("x", SESSION, "AAA", "buy", 0.0, 10.0, 0.0)
    with pytest.raises(PyFinanceError):
        OrderIntent("x", SESSION, "AAA", "hold", 1.0, 10.0, 10.0)


symbols = st.sampled_from(["A", "B", "C", "D", "E"])


@settings(max_examples=200, deadline=None)
@given(
    weights=st.dictionaries(symbols, st.floats(0, 0.2, allow_nan=False)),
    held=st.dictionaries(symbols, st.floats(0, 1_000, allow_nan=False)),
    prices=st.fixed_dictionaries({s: st.floats(0.5, 1_000) for s in "ABCDE"}),
    equity=st.floats(0, 1e6),
)
def test_applying_the_plan_reaches_the_targets(weights, held, prices, equity):
    orders = plan(weights, held, prices, equity=equity, min_notional=0.0)
    assert len({o.symbol for o in orders}) == len(orders)
    sides = [o.side for o in orders]
    assert sides == sorted(sides, key=lambda s: s == "buy")
    after = dict(held)
    for o in orders:
        after[o.symbol] = after.get(o.symbol, 0.0) + (o.qty if o.side == "buy" else -o.qty)
        assert math.isclose(o.notional, o.qty * o.ref_price)
    for s in "ABCDE":
        target = weights.get(s, 0.0) * equity / prices[s]
        assert after.get(s, 0.0) == pytest.approx(target, rel=1e-9, abs=1e-6)


def test_non_fractionable_names_trade_whole_shares_and_exit_whole():
    from py_finance.live.orders import plan_orders

    session = dt.date(2024, 3, 15)
    orders = plan_orders(
        {"AAA": 0.5, "BBB": 0.001},
        {"CCC": 2.5},
        {"AAA": 30.0, "BBB": 400.0, "CCC": 10.0},
        1000.0,
        session=session,
        run_id="r",
        min_notional=0.0,
        fractionable={"AAA": False, "BBB": False, "CCC": False},
    )
    by_symbol = {o.symbol: o for o in orders}
    assert by_symbol["AAA"].qty == 16.0  # 500 / 30 = 16.67 -> 16 whole shares
    assert by_symbol["AAA"].notional == 16.0 * 30.0
    assert "BBB" not in by_symbol  # 1 / 400 of a share: nothing to send
    assert by_symbol["CCC"].qty == 2.5 and by_symbol["CCC"].side == "sell"  # whole exit


def test_resized_weights_scale_every_holding_and_nothing_else():
    from py_finance.live.orders import resized_weights

    positions = {"AAA": 10.0, "BBB": 5.0, "CCC": 0.0}
    prices = {"AAA": 20.0, "BBB": 40.0, "CCC": 1.0, "DDD": 9.0}
    half = resized_weights(positions, prices, 1_000.0, 0.5)
    assert half == pytest.approx({"AAA": 0.1, "BBB": 0.1})
    assert resized_weights(positions, prices, 1_000.0, 0.0) == {"AAA": 0.0, "BBB": 0.0}
    # Growing a book back (REDUCING -> ACTIVE) never levers up.
    grown = resized_weights(positions, prices, 500.0, 2.0)
    assert sum(grown.values()) == pytest.approx(1.0)
    with pytest.raises(PyFinanceError, match="ratio"):
        resized_weights(positions, prices, 1_000.0, -1.0)
