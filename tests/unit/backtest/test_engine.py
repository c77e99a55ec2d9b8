from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from py_finance.backtest import BacktestConfig, buy_and_hold, run_backtest
from py_finance.errors import DataError
from py_finance.risk import RiskConfig

nan = np.nan


def _frames(
    prices: list[list[float]], weights: list[list[float]], cols: str = "ABC"
) -> tuple[pd.DataFrame, pd.DataFrame]:
    idx = pd.date_range("2024-01-02", periods=len(prices), freq="B")
    names = list(cols[: len(prices[0])])
    return (
        pd.DataFrame(prices, index=idx, columns=names, dtype=float),
        pd.DataFrame(weights, index=idx, columns=names, dtype=float),
    )


def _shares(res, row: int, name: str, price: float) -> float:  # type: ignore[no-untyped-def]
    return float(res.weights[name].iloc[row] * res.equity.iloc[row] / price)


def test_hand_computed_three_names_with_lag_fees_partial_fill_and_missing_price() -> None:
    prices, weights = _frames(
        [
            [10.0, 20.0, nan],
            [10.0, 20.0, 50.0],
            [11.0, 18.0, 50.0],
            [12.0, nan, 40.0],
        ],
        [
            [0.5, 0.5, 0.0],
            [0.5, 0.25, 0.25],
            [0.3, 0.25, 0.25],
            [0.0, 0.0, 0.0],
        ],
    )
    f = 0.001
    res = run_backtest(prices, weights, BacktestConfig(cost_bps=10.0, initial_cash=1000.0))

    # Row 0: the decision of row 0 has not filled yet.
    assert res.cash.iloc[0] == 1000.0
    assert res.equity.iloc[0] == 1000.0
    assert res.fees.iloc[0] == 0.0
    assert res.returns.iloc[0] == 0.0

    # Row 1: V = 1000. Buys A 500, B 500 (tie -> A first). A costs 500.5; B gets the 499.5
    # left, of which 499.5 / 1.001 buys shares and the rest is its fee.
    fill_b = 499.5 / (1 + f)
    sh_a1, sh_b1 = 50.0, fill_b / 20.0
    fees1 = 500 * f + (499.5 - fill_b)
    eq1 = 500.0 + fill_b
    assert res.cash.iloc[1] == 0.0
    assert res.fees.iloc[1] == pytest.approx(fees1, rel=1e-12)
    assert res.equity.iloc[1] == pytest.approx(eq1, rel=1e-12)
    assert res.turnover.iloc[1] == pytest.approx((500.0 + fill_b) / 1000.0, rel=1e-12)
    assert _shares(res, 1, "B", 20.0) == pytest.approx(sh_b1, rel=1e-12)
    # The fill day only loses the fees; the position first earns on row 2.
    assert res.returns.iloc[1] == pytest.approx(-fees1 / 1000.0, rel=1e-9)

    # Row 2: V = 50*11 + sh_b1*18. Targets A 0.5V, B 0.25V, C 0.25V. Selling A and B frees
    # exactly 0.25V (less the fee); C needs 0.25V plus fee -> partial fill of C.
    v2 = sh_a1 * 11 + sh_b1 * 18
    sold2 = (sh_a1 * 11 - 0.5 * v2) + (sh_b1 * 18 - 0.25 * v2)
    cash_after_sells = sold2 * (1 - f)
    fill_c = cash_after_sells / (1 + f)
    sh_a2, sh_b2, sh_c2 = 0.5 * v2 / 11, 0.25 * v2 / 18, fill_c / 50
    fees2 = sold2 * f + (cash_after_sells - fill_c)
    eq2 = sh_a2 * 11 + sh_b2 * 18 + sh_c2 * 50
    assert res.cash.iloc[2] == 0.0
    assert res.fees.iloc[2] == pytest.approx(fees2, rel=1e-10)
    assert res.equity.iloc[2] == pytest.approx(eq2, rel=1e-12)
    assert res.returns.iloc[2] == pytest.approx(eq2 / eq1 - 1, rel=1e-9)

    # Row 3: B has no price: its shares are kept and valued at 18. A is cut to 0.3V, C topped
    # up to 0.25V; the sale of A pays for C in full, the rest stays in cash.
    v3 = sh_a2 * 12 + sh_b2 * 18 + sh_c2 * 40
    sh_a3, sh_c3 = 0.3 * v3 / 12, 0.25 * v3 / 40
    sold3 = (sh_a2 - sh_a3) * 12
    bought3 = (sh_c3 - sh_c2) * 40
    cash3 = sold3 * (1 - f) - bought3 * (1 + f)
    assert cash3 > 0
    assert res.cash.iloc[3] == pytest.approx(cash3, rel=1e-10)
    assert res.fees.iloc[3] == pytest.approx((sold3 + bought3) * f, rel=1e-10)
    assert _shares(res, 3, "B", 18.0) == pytest.approx(sh_b2, rel=1e-12)
    assert _shares(res, 3, "A", 12.0) == pytest.approx(sh_a3, rel=1e-12)
    assert _shares(res, 3, "C", 40.0) == pytest.approx(sh_c3, rel=1e-12)
    assert res.equity.iloc[3] == pytest.approx(cash3 + sh_a3 * 12 + sh_b2 * 18 + sh_c3 * 40)
    np.testing.assert_allclose(
        res.exposure.to_numpy(), res.weights.sum(axis=1).to_numpy(), rtol=1e-12
    )
    assert list(res.states) == ["ACTIVE"] * 4


def test_execution_lag_two_delays_the_fill() -> None:
    prices, weights = _frames(
        [[10.0], [10.0], [10.0], [12.0]], [[1.0], [1.0], [1.0], [1.0]], cols="A"
    )
    res = run_backtest(prices, weights, BacktestConfig(execution_lag=2, cost_bps=0.0))
    np.testing.assert_array_equal(res.exposure.to_numpy()[:2], [0.0, 0.0])
    assert res.exposure.iloc[2] == pytest.approx(1.0)
    assert res.returns.iloc[3] == pytest.approx(0.2, rel=1e-12)


def test_partial_fill_buys_smallest_orders_first() -> None:
    prices, weights = _frames([[10.0, 10.0, 10.0]] * 2, [[0.2, 0.3, 0.5]] * 2)
    res = run_backtest(prices, weights, BacktestConfig(cost_bps=100.0, initial_cash=1000.0))
    # Costs 202, 303, 505 > 1000: A and B fill, C gets 495 / 1.01.
    fill_c = 495.0 / 1.01
    np.testing.assert_allclose(
        res.weights.iloc[1].to_numpy() * res.equity.iloc[1],
        [200.0, 300.0, fill_c],
        rtol=1e-12,
    )
    assert res.cash.iloc[1] == 0.0
    assert res.fees.iloc[1] == pytest.approx(2.0 + 3.0 + (495.0 - fill_c), rel=1e-12)
    assert (res.cash >= 0).all()


def test_sells_execute_before_buys() -> None:
    prices, weights = _frames(
        [[10.0, 20.0], [10.0, 20.0], [15.0, 20.0]], [[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]]
    )
    res = run_backtest(prices, weights, BacktestConfig(cost_bps=0.0, initial_cash=1000.0))
    # Row 1: all in A (100 shares). Row 2: V = 1500; the sale of A funds the buy of B.
    assert res.weights.iloc[2].tolist() == pytest.approx([0.0, 1.0])
    assert res.equity.iloc[2] == pytest.approx(1500.0)
    assert res.cash.iloc[2] == pytest.approx(0.0, abs=1e-9)
    assert res.turnover.iloc[2] == pytest.approx(2.0)


def test_fees_come_out_of_cash_not_out_of_the_targets() -> None:
    prices, weights = _frames([[10.0, 20.0]] * 2, [[0.3, 0.3]] * 2)
    free = run_backtest(prices, weights, BacktestConfig(cost_bps=0.0, initial_cash=1000.0))
    paid = run_backtest(prices, weights, BacktestConfig(cost_bps=10.0, initial_cash=1000.0))
    # Same shares either way (30 A, 15 B); only the cash differs by the fee.
    for res in (free, paid):
        assert _shares(res, 1, "A", 10.0) == pytest.approx(30.0, rel=1e-12)
        assert _shares(res, 1, "B", 20.0) == pytest.approx(15.0, rel=1e-12)
    assert free.cash.iloc[1] == pytest.approx(400.0)
    assert paid.cash.iloc[1] == pytest.approx(400.0 - 0.6)
    assert paid.fees.iloc[1] == pytest.approx(0.6)


def test_name_without_price_is_not_bought_and_its_weight_stays_cash() -> None:
    prices, weights = _frames(
        [[10.0, nan], [10.0, nan], [10.0, 5.0]], [[0.5, 0.5], [0.5, 0.5], [0.5, 0.5]]
    )
    res = run_backtest(prices, weights, BacktestConfig(cost_bps=0.0, initial_cash=1000.0))
    assert res.cash.iloc[1] == pytest.approx(500.0)
    assert res.weights["B"].iloc[1] == 0.0
    # Once priced, it trades.
    assert res.weights["B"].iloc[2] == pytest.approx(0.5)


def test_held_name_without_price_keeps_shares_at_last_price() -> None:
    prices, weights = _frames(
        [[10.0, 10.0], [10.0, 10.0], [12.0, nan], [12.0, 8.0]],
        [[0.5, 0.5], [1.0, 0.0], [1.0, 0.0], [1.0, 0.0]],
    )
    res = run_backtest(prices, weights, BacktestConfig(cost_bps=0.0, initial_cash=1000.0))
    # Row 2: B cannot be sold; A is bought with the cash that V*1.0 - A asks for, but only
    # 0 cash is there -> A unchanged. B is valued at 10.
    assert res.equity.iloc[2] == pytest.approx(50 * 12 + 50 * 10)
    assert res.weights["B"].iloc[2] == pytest.approx(500 / 1100)
    # Row 3: B trades again and is sold.
    assert res.weights["B"].iloc[3] == 0.0
    assert res.equity.iloc[3] == pytest.approx(50 * 12 + 50 * 8)


def test_zero_cost_daily_rebalance_earns_weighted_asset_returns() -> None:
    rng = np.random.default_rng(7)
    n, w = 300, np.array([0.2, 0.3, 0.4])
    px = 50 * np.exp(np.cumsum(rng.normal(0, 0.02, (n, 3)), axis=0))
    prices, weights = _frames(px.tolist(), np.tile(w, (n, 1)).tolist())
    res = run_backtest(prices, weights, BacktestConfig(cost_bps=0.0))
    asset_rets = px[1:] / px[:-1] - 1
    expected = asset_rets @ w
    # From row 2 the book holds w at every close (row 1 is the first fill).
    np.testing.assert_allclose(res.returns.to_numpy()[2:], expected[1:], rtol=0, atol=1e-12)
    np.testing.assert_allclose(res.weights.to_numpy()[1:], np.tile(w, (n - 1, 1)), atol=1e-12)


def test_drawdown_throttle_halves_the_next_fill() -> None:
    prices, weights = _frames(
        [[100.0], [100.0], [100.0], [80.0], [80.0], [80.0]], [[1.0]] * 6, cols="A"
    )
    risk = RiskConfig(drawdown_throttle=0.15, throttle_exposure=0.5, reset_after_sessions=None)
    res = run_backtest(prices, weights, BacktestConfig(cost_bps=0.0), risk=risk)
    assert list(res.states) == ["ACTIVE", "ACTIVE", "ACTIVE", "REDUCING", "REDUCING", "REDUCING"]
    # Row 3 closes 20% down: the weight decided at row 3 is halved and fills at row 4.
    np.testing.assert_allclose(res.exposure.to_numpy(), [0, 1, 1, 1, 0.5, 0.5], atol=1e-12)
    none = run_backtest(prices, weights, BacktestConfig(cost_bps=0.0), risk=None)
    np.testing.assert_allclose(none.exposure.to_numpy(), [0, 1, 1, 1, 1, 1], atol=1e-12)


def test_mismatched_sessions_are_a_data_error() -> None:
    prices, weights = _frames([[10.0], [11.0]], [[1.0], [1.0]], cols="A")
    with pytest.raises(DataError, match="session index"):
        run_backtest(prices, weights.iloc[:1], BacktestConfig())


def test_columns_are_aligned_by_name() -> None:
    prices, weights = _frames([[10.0, 20.0], [10.0, 20.0]], [[1.0, 0.0], [1.0, 0.0]])
    res = run_backtest(prices, weights[["B", "A"]], BacktestConfig(cost_bps=0.0))
    assert res.weights["A"].iloc[1] == pytest.approx(1.0)


def test_negative_weights_are_rejected() -> None:
    prices, weights = _frames([[10.0], [11.0]], [[-0.5], [0.5]], cols="A")
    with pytest.raises(DataError, match="long-only"):
        run_backtest(prices, weights, BacktestConfig())


def test_buy_and_hold_normalised_from_start() -> None:
    idx = pd.date_range("2024-01-01", periods=5, freq="D")
    px = pd.Series([5.0, 10.0, 12.0, nan, 8.0], index=idx, name="SPY")
    curve = buy_and_hold(px, idx[1])
    np.testing.assert_allclose(curve.to_numpy(), [1.0, 1.2, 1.2, 0.8])
    assert curve.index[0] == idx[1]
    with pytest.raises(DataError):
        buy_and_hold(pd.Series([nan, nan], index=idx[:2]), idx[0])


def test_eight_thousand_sessions_twenty_names_is_fast() -> None:
    rng = np.random.default_rng(0)
    n, m = 8000, 20
    px = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, (n, m)), axis=0))
    idx = pd.RangeIndex(n)
    prices = pd.DataFrame(px, index=idx)
    weights = pd.DataFrame(rng.dirichlet(np.ones(m), n) * 0.99, index=idx)
    best = np.inf
    for _ in range(3):
        start = time.perf_counter()
        run_backtest(prices, weights, BacktestConfig(), risk=RiskConfig())
        best = min(best, time.perf_counter() - start)
    assert best < 1.0


def test_drawdown_throttle_episode_reproduced_by_hand() -> None:
    # One name, no costs, always 100% targeted. By hand (cash 1000, decisions fill next day):
    # row 1 buys 10 shares @100; row 3 closes at 800 (20% down) -> REDUCING; row 4 trades to
    # 0.5 x 800 = 5 shares; row 5 closes 5 x 100 + 400 = 900 (10% down: above the 7.5%
    # recovery level, still REDUCING) and trades to 0.5 x 900 / 100 = 4.5 shares; row 6
    # closes 4.5 x 120 + 450 = 990 (1% down) -> ACTIVE, but trades row 5's halved decision
    # (4.125 shares); row 7 trades row 6's full decision: 990 / 120 = 8.25 shares.
    prices, weights = _frames(
        [[100.0], [100.0], [100.0], [80.0], [80.0], [100.0], [120.0], [120.0]],
        [[1.0]] * 8,
        cols="A",
    )
    risk = RiskConfig(drawdown_throttle=0.15, recovery_drawdown=0.075, reset_after_sessions=None)
    res = run_backtest(
        prices, weights, BacktestConfig(cost_bps=0.0, initial_cash=1000.0), risk=risk
    )
    assert list(res.states) == ["ACTIVE"] * 3 + ["REDUCING"] * 3 + ["ACTIVE"] * 2
    np.testing.assert_allclose(
        res.equity.to_numpy(), [1000, 1000, 1000, 800, 800, 900, 990, 990], rtol=1e-13
    )
    shares = res.weights["A"].to_numpy() * res.equity.to_numpy() / prices["A"].to_numpy()
    np.testing.assert_allclose(shares, [0, 10, 10, 10, 5, 4.5, 4.125, 8.25], rtol=1e-13)
    np.testing.assert_allclose(
        res.exposure.to_numpy(), [0, 1, 1, 1, 0.5, 0.5, 0.5, 1], rtol=1e-13, atol=1e-15
    )
