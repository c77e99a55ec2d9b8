from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from py_finance.backtest import BacktestConfig, buy_and_hold, run_backtest
from py_finance.errors import ConfigError, DataError
from py_finance.risk import RiskConfig, check_weights, gross_bound

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


def _every(n: int, rows: list[int], weight: list[float]) -> list[list[float]]:
    """Weights only on ``rows`` (rebalances), NaN rows (hold) in between."""
    return [list(weight) if t in rows else [nan] * len(weight) for t in range(n)]


@pytest.mark.parametrize("lag", [1, 2])
def test_drawdown_between_rebalances_cuts_exposure_on_the_next_fill(lag: int) -> None:
    # Rebalances at rows 0 and 5 only. Row 3 closes 20% down: the throttle trips at that
    # close, on a session without new weights, and the holding is halved at row 3 + lag,
    # not when row 5's weights fill.
    px = [[100.0], [100.0], [100.0], [80.0], [80.0], [80.0], [80.0], [80.0], [80.0]]
    prices, weights = _frames(px, _every(9, [0, 5], [1.0]), cols="A")
    risk = RiskConfig(drawdown_throttle=0.15, throttle_exposure=0.5, reset_after_sessions=None)
    cfg = BacktestConfig(execution_lag=lag, cost_bps=0.0, initial_cash=1000.0)
    res = run_backtest(prices, weights, cfg, risk=risk)
    assert list(res.states) == ["ACTIVE"] * 3 + ["REDUCING"] * 6
    expected = [0.0] * lag + [1.0] * 3 + [0.5] * (9 - 3 - lag)
    np.testing.assert_allclose(res.exposure.to_numpy(), expected, rtol=1e-13, atol=1e-15)
    shares = res.weights["A"].to_numpy() * res.equity.to_numpy() / prices["A"].to_numpy()
    assert shares[3 + lag] == pytest.approx(5.0, rel=1e-13)
    none = run_backtest(prices, weights, cfg)
    assert none.exposure.iloc[3 + lag] == pytest.approx(1.0)


def test_halt_between_rebalances_sells_at_once_and_the_empty_book_waits_for_weights() -> None:
    # Rebalances at rows 0 and 6. Row 2 closes 30% down: HALTED, so row 3 sells everything
    # (a NaN row). After two halted sessions the high-water mark resets (ACTIVE after the
    # close of row 4), but nothing is left to scale back up: the book stays in cash until
    # row 6's weights fill at row 7.
    px = [[100.0], [100.0], [70.0], [70.0], [70.0], [70.0], [70.0], [70.0], [70.0]]
    prices, weights = _frames(px, _every(9, [0, 6], [1.0]), cols="A")
    risk = RiskConfig(drawdown_throttle=0.15, halt_drawdown=0.25, reset_after_sessions=2)
    res = run_backtest(
        prices, weights, BacktestConfig(cost_bps=0.0, initial_cash=1000.0), risk=risk
    )
    assert list(res.states) == ["ACTIVE"] * 2 + ["HALTED"] * 2 + ["ACTIVE"] * 5
    np.testing.assert_allclose(
        res.exposure.to_numpy(), [0, 1, 1, 0, 0, 0, 0, 1, 1], rtol=1e-13, atol=1e-15
    )
    np.testing.assert_allclose(res.cash.to_numpy()[3:7], 700.0, rtol=1e-13)


def test_throttle_lifting_between_rebalances_scales_the_drifted_holdings_back_up() -> None:
    # REDUCING after row 2 (20% down): row 3 halves both names as they stand (drift kept:
    # 1:3 by value). After two sessions throttled the high-water mark resets (ACTIVE after
    # the close of row 4): row 5 doubles them again as they stand (250:550), with no new
    # weights, using the cash the cut left.
    px = [
        [100.0, 100.0],
        [100.0, 100.0],
        [40.0, 120.0],
        [40.0, 120.0],
        [50.0, 110.0],
        [50.0, 110.0],
        [50.0, 110.0],
    ]
    prices, weights = _frames(px, _every(7, [0], [0.5, 0.5]), cols="AB")
    risk = RiskConfig(drawdown_throttle=0.15, reset_after_sessions=2)
    res = run_backtest(
        prices, weights, BacktestConfig(cost_bps=0.0, initial_cash=1000.0), risk=risk
    )
    assert list(res.states) == ["ACTIVE"] * 2 + ["REDUCING"] * 2 + ["ACTIVE"] * 3
    value = res.weights.to_numpy() * res.equity.to_numpy()[:, None]
    np.testing.assert_allclose(value[1], [500, 500], rtol=1e-13)
    np.testing.assert_allclose(value[3], [100, 300], rtol=1e-13)
    np.testing.assert_allclose(value[4], [125, 275], rtol=1e-13)
    np.testing.assert_allclose(value[5:], [[250, 550]] * 2, rtol=1e-13)
    np.testing.assert_allclose(res.equity.to_numpy()[2:], 800.0, rtol=1e-13)


@pytest.mark.parametrize(
    ("row", "col", "value", "match"),
    [
        (1, "B", np.inf, "B on session 2024-01-03 is inf"),
        (2, "C", -0.1, "C on session 2024-01-04 is -0.1.*long-only"),
        (3, "A", np.inf, "A on session 2024-01-05 is inf"),  # never trades (lag 1)
    ],
)
def test_invalid_weights_name_session_and_symbol(
    row: int, col: str, value: float, match: str
) -> None:
    prices, weights = _frames([[10.0, 20.0, 30.0]] * 4, [[0.3, 0.3, 0.3]] * 4)
    weights.iloc[row, "ABC".index(col)] = value
    with pytest.raises(DataError, match=match):
        run_backtest(prices, weights, BacktestConfig())


def test_rows_above_the_gross_limit_are_an_error_unless_leverage_is_set() -> None:
    # [0.8, 0.8] used to be held as [0.8, 0.2]: now it is an error naming the session.
    prices, weights = _frames([[10.0, 20.0]] * 3, [[0.5, 0.5], [0.8, 0.8], [0.5, 0.5]])
    with pytest.raises(DataError, match=r"session 2024-01-03 sum to 1\.6.*at symbol B"):
        run_backtest(prices, weights, BacktestConfig())
    with pytest.raises(DataError, match=r"risk\.max_leverage"):
        run_backtest(prices, weights, BacktestConfig(), risk=RiskConfig())
    lever = RiskConfig(drawdown_throttle=None, recovery_drawdown=0.0, max_leverage=1.6)
    res = run_backtest(prices, weights, BacktestConfig(cost_bps=0.0), risk=lever)
    assert res.exposure.iloc[2] == pytest.approx(1.0)
    assert (res.cash >= 0).all()


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(-4, 4), st.integers(1, 2))
def test_engine_and_check_weights_agree_at_the_gross_bound(seed: int, ulps: int, lag: int) -> None:
    # Rows landing within a few ulps of the bound: the compiled loop's check and
    # check_weights add up alike, so the engine fails exactly when check_weights does, on
    # the same session.
    rng = np.random.default_rng(seed)
    n, m = 6, int(rng.integers(2, 30))
    w = rng.dirichlet(np.ones(m), n) * gross_bound(1.0)
    for _ in range(abs(ulps)):
        w[:, -1] = np.nextafter(w[:, -1], np.inf if ulps > 0 else -np.inf)
    idx = pd.date_range("2024-01-02", periods=n, freq="B")
    prices = pd.DataFrame(np.full((n, m), 10.0), index=idx)
    weights = pd.DataFrame(w, index=idx)
    try:
        check_weights(w, sessions=idx, symbols=weights.columns)
    except DataError as exc:
        with pytest.raises(DataError) as err:
            run_backtest(prices, weights, BacktestConfig(execution_lag=lag))
        assert str(err.value) == str(exc)
    else:
        run_backtest(prices, weights, BacktestConfig(execution_lag=lag))


def test_throttle_lift_beyond_full_investment_scales_the_book_in_proportion() -> None:
    # As above, but A rallies while throttled (row 4: 150:300 held, 400 cash, equity 850):
    # doubling both at row 5 would need 900. The book is scaled to be worth the equity in
    # the proportions it had (1:2), as the live loop resizes it; filling the buys in key
    # order until cash ran out gave 300:550 (A doubled, B short by 50).
    px = [
        [100.0, 100.0],
        [100.0, 100.0],
        [40.0, 120.0],
        [40.0, 120.0],
        [60.0, 120.0],
        [60.0, 120.0],
        [60.0, 120.0],
    ]
    prices, weights = _frames(px, _every(7, [0], [0.5, 0.5]), cols="AB")
    risk = RiskConfig(drawdown_throttle=0.15, reset_after_sessions=2)
    res = run_backtest(
        prices, weights, BacktestConfig(cost_bps=0.0, initial_cash=1000.0), risk=risk
    )
    assert list(res.states) == ["ACTIVE"] * 2 + ["REDUCING"] * 2 + ["ACTIVE"] * 3
    value = res.weights.to_numpy() * res.equity.to_numpy()[:, None]
    np.testing.assert_allclose(value[4], [150, 300], rtol=1e-13)
    np.testing.assert_allclose(res.weights.to_numpy()[5:], [[1 / 3, 2 / 3]] * 2, rtol=1e-13)
    np.testing.assert_allclose(res.cash.to_numpy()[5:], 0.0, atol=1e-9)


def test_fills_at_the_open_value_the_book_there_and_mark_it_at_the_close() -> None:
    # All in A at row 1's open (100), which closes at 110: 10 shares, equity 1100 at the
    # close. Row 2 moves half to B at the open (A 120, B 50: V = 1200) and closes at A 100,
    # B 60: 5 x 100 + 12 x 60 = 1220. 10 bps of each traded notional leaves cash.
    closes = [[100.0, 50.0], [110.0, 50.0], [100.0, 60.0], [100.0, 60.0]]
    opens = [[90.0, 40.0], [100.0, 50.0], [120.0, 50.0], [100.0, 60.0]]
    prices, weights = _frames(closes, [[1.0, 0.0], [0.5, 0.5], [nan, nan], [nan, nan]], "AB")
    open_frame = pd.DataFrame(opens, index=prices.index, columns=prices.columns)
    cfg = BacktestConfig(cost_bps=0.0, initial_cash=1000.0, fill="next_open")
    res = run_backtest(prices, weights, cfg, opens=open_frame)
    np.testing.assert_allclose(res.equity.to_numpy(), [1000, 1100, 1220, 1220], rtol=1e-14)
    np.testing.assert_allclose(res.turnover.to_numpy(), [0, 1, 1.0, 0], rtol=1e-14)
    fees = BacktestConfig(cost_bps=10.0, initial_cash=1000.0, fill="next_open")
    paid = run_backtest(prices, weights, fees, opens=open_frame)
    assert paid.fees.iloc[1] == pytest.approx(1000 / 1.001 * 0.001, rel=1e-12)
    # The same weights filled at the closes: A bought at 110, the book halved at 100 / 60.
    at_close = run_backtest(prices, weights, BacktestConfig(cost_bps=0.0, initial_cash=1000.0))
    np.testing.assert_allclose(at_close.equity.to_numpy()[2:], 1000 / 110 * 100, rtol=1e-14)


def test_fills_at_the_open_without_opens_is_one_clear_error() -> None:
    prices, weights = _frames([[100.0], [101.0]], [[1.0], [1.0]], cols="A")
    cfg = BacktestConfig(fill="next_open")
    with pytest.raises(ConfigError, match=r"backtest.fill=next_open needs open prices.*bundled"):
        run_backtest(prices, weights, cfg)
    all_nan = pd.DataFrame(np.nan, index=prices.index, columns=prices.columns)
    with pytest.raises(ConfigError, match="needs open prices"):
        run_backtest(prices, weights, cfg, opens=all_nan)
    with pytest.raises(ConfigError, match=r"backtest\.fill must be one of next_close, next_open"):
        BacktestConfig(fill="open")
