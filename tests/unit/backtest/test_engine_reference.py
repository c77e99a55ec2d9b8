"""The compiled engine against an independent, straightforward per-order loop."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from py_finance.backtest import BacktestConfig, run_backtest
from py_finance.risk import RiskConfig, ThrottleState, throttle_multiplier, throttle_step


def reference_backtest(
    px: np.ndarray,
    w: np.ndarray,
    *,
    lag: int,
    fee: float,
    cash: float,
    risk: RiskConfig | None = None,
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Order by order, as a broker would: value once, sells, then buys smallest first."""
    n, m = px.shape
    shares = [0.0] * m
    last = [math.nan] * m
    mult = [1.0] * n
    equity, fees, states = [], [], []
    throttle: ThrottleState | None = None
    for s in range(n):
        for j in range(m):
            if math.isfinite(px[s, j]) and px[s, j] > 0:
                last[j] = px[s, j]
        value = cash + sum(shares[j] * last[j] for j in range(m) if shares[j] != 0.0)
        paid = 0.0
        if s >= lag:
            orders = []
            for j in range(m):
                target_w = w[s - lag, j]
                price = px[s, j]
                if math.isnan(target_w) or not (math.isfinite(price) and price > 0):
                    continue
                target = target_w * mult[s - lag] * value / price
                orders.append(((target - shares[j]) * price, j, target))
            orders.sort(key=lambda o: o[0])  # stable: sells first, then buys smallest first
            for notional, j, target in orders:
                if notional < 0:
                    cash += -notional * (1 - fee)
                    paid += -notional * fee
                    shares[j] = target
                elif notional > 0:
                    if notional * (1 + fee) <= cash:
                        cash -= notional * (1 + fee)
                        paid += notional * fee
                        shares[j] = target
                    elif cash > 0:
                        spend = cash / (1 + fee)
                        shares[j] += spend / px[s, j]
                        paid += cash - spend
                        cash = 0.0
        eq = cash + sum(shares[j] * last[j] for j in range(m) if shares[j] != 0.0)
        equity.append(eq)
        fees.append(paid)
        if risk is not None:
            throttle = throttle_step(throttle, eq, risk)
            mult[s] = throttle_multiplier(throttle, risk)
            states.append(throttle.state)
        else:
            states.append("ACTIVE")
    return np.array(equity), np.array(fees), states


def _random_case(seed: int, n: int = 160, m: int = 12) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    px = 50 * np.exp(np.cumsum(rng.normal(0, 0.03, (n, m)), axis=0))
    # Names listed late, a delisting and missing bars.
    px[: rng.integers(5, 40), 0] = np.nan
    px[rng.integers(100, 150) :, 1] = np.nan
    px[rng.random((n, m)) < 0.03] = np.nan
    w = rng.dirichlet(np.ones(m), n) * rng.uniform(0.7, 1.0, (n, 1))
    w[rng.random((n, m)) < 0.3] = 0.0
    # Rebalance every 3 sessions (NaN rows in between: holdings drift with prices) and
    # a few NaN targets (no order for that name).
    w[np.arange(n) % 3 != 0] = np.nan
    w[rng.random((n, m)) < 0.05] = np.nan
    idx = pd.date_range("2020-01-02", periods=n, freq="B", tz="UTC")
    return pd.DataFrame(px, index=idx), pd.DataFrame(w, index=idx)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("lag", [1, 2])
def test_engine_equals_reference_loop(seed: int, lag: int) -> None:
    prices, weights = _random_case(seed)
    cfg = BacktestConfig(execution_lag=lag, cost_bps=25.0, initial_cash=100_000.0)
    res = run_backtest(prices, weights, cfg)
    eq, fees, _ = reference_backtest(
        prices.to_numpy(), weights.to_numpy(), lag=lag, fee=0.0025, cash=100_000.0
    )
    np.testing.assert_allclose(res.equity.to_numpy(), eq, rtol=1e-10, atol=0)
    np.testing.assert_allclose(res.fees.to_numpy(), fees, rtol=1e-9, atol=1e-9)
    assert (res.cash >= 0).all()


@pytest.mark.parametrize("seed", range(4))
def test_compiled_throttle_equals_python_throttle(seed: int) -> None:
    prices, weights = _random_case(seed + 10, n=250)
    # A crash in the middle so the throttle engages, recovers or resets.
    crash = np.ones(len(prices))
    crash[80:95] = 0.97
    crash[150:160] = 1.03
    prices = prices * np.cumprod(crash)[:, None]
    risk = RiskConfig(
        drawdown_throttle=0.1,
        throttle_exposure=0.4,
        halt_drawdown=0.3,
        recovery_drawdown=0.05,
        reset_after_sessions=20,
    )
    cfg = BacktestConfig(cost_bps=10.0, initial_cash=1_000.0)
    res = run_backtest(prices, weights, cfg, risk=risk)
    eq, _, states = reference_backtest(
        prices.to_numpy(), weights.to_numpy(), lag=1, fee=0.001, cash=1_000.0, risk=risk
    )
    assert list(res.states) == states
    assert set(states) > {"ACTIVE"}
    np.testing.assert_allclose(res.equity.to_numpy(), eq, rtol=1e-10, atol=0)


def test_rows_summing_above_one_drop_several_buys() -> None:
    # Targets of 1.6x equity: many buys cannot be paid; the smallest fill, one is partial.
    rng = np.random.default_rng(3)
    n, m = 30, 8
    px = 20 * np.exp(np.cumsum(rng.normal(0, 0.02, (n, m)), axis=0))
    w = rng.dirichlet(np.ones(m), n) * 1.6
    idx = pd.RangeIndex(n)
    cfg = BacktestConfig(cost_bps=10.0, initial_cash=1_000.0)
    res = run_backtest(pd.DataFrame(px, index=idx), pd.DataFrame(w, index=idx), cfg)
    eq, _, _ = reference_backtest(px, w, lag=1, fee=0.001, cash=1_000.0)
    np.testing.assert_allclose(res.equity.to_numpy(), eq, rtol=1e-10, atol=0)
    assert (res.cash >= 0).all()
