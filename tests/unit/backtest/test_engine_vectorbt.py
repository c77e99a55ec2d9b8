"""The engine against vectorbt itself (a benchmark-only extra)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from py_finance.backtest import BacktestConfig, run_backtest


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["numba", "rust"])
def test_equity_equals_vectorbt_from_orders(engine: str) -> None:
    vbt = pytest.importorskip("vectorbt")
    if engine == "rust":
        pytest.importorskip("vectorbt_rust")
    rng = np.random.default_rng(11)
    n, m = 400, 30
    idx = pd.date_range("2015-01-02", periods=n, freq="B", tz="UTC")
    prices = pd.DataFrame(100 * np.exp(np.cumsum(rng.normal(0, 0.02, (n, m)), axis=0)), index=idx)
    w = rng.dirichlet(np.ones(m), n)
    w[np.arange(n) % 5 != 0] = np.nan  # rebalance every 5 sessions, drift in between
    weights = pd.DataFrame(w, index=idx)
    res = run_backtest(prices, weights, BacktestConfig(cost_bps=10.0, initial_cash=1e6))
    pf = vbt.Portfolio.from_orders(
        close=prices,
        size=weights.shift(1),
        size_type="targetpercent",
        fees=0.001,
        init_cash=1e6,
        cash_sharing=True,
        group_by=True,
        call_seq="auto",
        min_size=0.0,
        freq="1D",
        engine=engine,
    )
    np.testing.assert_allclose(res.equity.to_numpy(), pf.value().to_numpy(), rtol=1e-9, atol=0)
    np.testing.assert_allclose(res.cash.to_numpy(), pf.cash().to_numpy(), rtol=1e-9, atol=1e-6)
