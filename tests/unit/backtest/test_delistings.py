"""A held name that delists is paid out at its delisting return, never valued at a stale close."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from py_finance.backtest import BacktestConfig, run_backtest

SESSIONS = pd.bdate_range("2020-01-01", periods=10)


def _book(ret: float, *, fee_bps: float = 0.0, price_after: bool = False):
    px = pd.DataFrame(
        {
            "A": np.linspace(100.0, 109.0, 10),
            "B": [50.0, 51.0, 52.0, 53.0, 54.0, np.nan, np.nan, np.nan, np.nan, np.nan],
        },
        index=SESSIONS,
    )
    if price_after:  # a vendor that keeps quoting after the delisting must not matter
        px.loc[SESSIONS[5] :, "B"] = 80.0
    w = pd.DataFrame(np.nan, index=SESSIONS, columns=["A", "B"])
    w.iloc[0] = [0.5, 0.5]
    delistings = pd.DataFrame({"symbol": ["B"], "date": [SESSIONS[5]], "delisting_return": [ret]})
    cfg = BacktestConfig(execution_lag=1, cost_bps=fee_bps, initial_cash=1_000_000.0)
    return px, w, delistings, cfg


@pytest.mark.parametrize("ret", [-1.0, -0.3, 0.25])
@pytest.mark.parametrize("price_after", [False, True])
def test_a_held_delisting_costs_exactly_its_delisting_return(ret, price_after):
    px, w, delistings, cfg = _book(ret, fee_bps=10.0, price_after=price_after)
    res = run_backtest(px, w, cfg, delistings=delistings)
    d = SESSIONS[5]
    held_b = res.weights.loc[SESSIONS[4], "B"] * res.equity.loc[SESSIONS[4]]
    held_a = res.weights.loc[SESSIONS[4], "A"] * res.equity.loc[SESSIONS[4]]
    shares_a = held_a / px.loc[SESSIONS[4], "A"]
    expected = res.cash.loc[SESSIONS[4]] + shares_a * px.loc[d, "A"] + held_b * (1.0 + ret)
    assert res.equity.loc[d] == pytest.approx(expected, rel=1e-13)
    assert res.fees.loc[d] == 0.0  # the payout is not a trade
    assert (res.weights.loc[d:, "B"] == 0.0).all()
    # afterwards the account moves with A alone (the payout sits in cash)
    assert res.cash.loc[SESSIONS[-1]] == pytest.approx(res.cash.loc[d])
    assert list(res.delisted["symbol"]) == ["B"]
    row = res.delisted.iloc[0]
    assert row["value"] == pytest.approx(held_b, rel=1e-13)
    assert row["cost"] == pytest.approx(held_b * ret, rel=1e-13)


def test_without_the_delisting_a_missing_price_keeps_the_stale_close():
    # The behaviour the delisting table exists to correct: the last close is carried.
    px, w, _, cfg = _book(-1.0)
    res = run_backtest(px, w, cfg)
    assert res.weights.loc[SESSIONS[-1], "B"] > 0.0
    assert res.delisted.empty


def test_a_name_not_held_when_it_delists_costs_nothing():
    px, w, delistings, cfg = _book(-1.0)
    w.iloc[0] = [1.0, 0.0]
    res = run_backtest(px, w, cfg, delistings=delistings)
    assert res.delisted.empty
    plain = run_backtest(px, w, cfg)
    pd.testing.assert_series_equal(res.equity, plain.equity)


def test_a_delisted_name_is_never_bought_again():
    px, w, delistings, cfg = _book(0.1, price_after=True)
    w.iloc[7] = [0.5, 0.5]  # targets after the delisting: B has no price, stays in cash
    res = run_backtest(px, w, cfg, delistings=delistings)
    assert (res.weights.loc[SESSIONS[5] :, "B"] == 0.0).all()
