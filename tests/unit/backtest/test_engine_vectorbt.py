"""The engine (and the order-by-order reference) against vectorbt itself (a benchmark-only extra).

Every test here skips when vectorbt is not importable, and only then.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from py_finance.backtest import BacktestConfig, run_backtest

from .test_engine_reference import equal_weight_topk, near_tie_book, reference_backtest


def _vbt_equity(
    prices: pd.DataFrame,
    weights: pd.DataFrame,
    *,
    fee: float,
    cash: float,
    lag: int = 1,
    engine: str = "numba",
    opens: pd.DataFrame | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Equity and cash of vectorbt's ``from_orders`` with the engine's documented settings.

    ``opens``: orders fill (and the group is valued before them) at the opens.
    """
    vbt = pytest.importorskip("vectorbt")
    extra = {} if opens is None else {"price": opens}
    pf = vbt.Portfolio.from_orders(
        close=prices,
        size=weights.shift(lag),
        size_type="targetpercent",
        fees=fee,
        init_cash=cash,
        cash_sharing=True,
        group_by=True,
        call_seq="auto",
        min_size=0.0,
        freq="1D",
        engine=engine,
        **extra,
    )
    return pf.value().to_numpy(), pf.cash().to_numpy()


def topk_book(n: int, m: int, k: int, seed: int = 5) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Closes in cents and a daily equal-weight top-k book on persistent random scores.

    Weights are exactly 1/k on the k best scores (0 elsewhere), so every session buys new
    names at tied weights, and with fees the buys need more than the cash there is.
    """
    rng = np.random.default_rng(seed)
    px = 100.0 * np.exp(np.cumsum(rng.normal(0.0003, 0.02, (n, m)), axis=0))
    px = np.round(px * 100.0) / 100.0
    scores = np.empty((n, m))
    scores[0] = rng.normal(size=m)
    noise = rng.normal(size=(n, m))
    for t in range(1, n):
        scores[t] = 0.9 * scores[t - 1] + 0.45 * noise[t]
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    w = np.zeros((n, m))
    np.put_along_axis(w, top, 1.0 / k, axis=1)
    idx = pd.date_range("2000-01-03", periods=n, freq="B", tz="UTC")
    cols = [f"A{i:03d}" for i in range(m)]
    return pd.DataFrame(px, index=idx, columns=cols), pd.DataFrame(w, index=idx, columns=cols)


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["numba", "rust"])
def test_equity_equals_vectorbt_from_orders(engine: str) -> None:
    pytest.importorskip("vectorbt")
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
    equity, cash = _vbt_equity(prices, weights, fee=0.001, cash=1e6, engine=engine)
    np.testing.assert_allclose(res.equity.to_numpy(), equity, rtol=1e-9, atol=0)
    np.testing.assert_allclose(res.cash.to_numpy(), cash, rtol=1e-9, atol=1e-6)


@pytest.mark.slow
def test_equal_weight_topk_book_equals_vectorbt_at_benchmark_size() -> None:
    # The benchmark's size (500 names x 5040 sessions), top 50 at exactly 1/50 each, daily,
    # 10 bps: every session ties new buys and runs short of cash by about the fees.
    pytest.importorskip("vectorbt")
    prices, weights = topk_book(5040, 500, 50)
    res = run_backtest(prices, weights, BacktestConfig(cost_bps=10.0, initial_cash=1e6))
    equity, cash = _vbt_equity(prices, weights, fee=0.001, cash=1e6)
    rel = np.max(np.abs(res.equity.to_numpy() / equity - 1.0))
    assert rel <= 1e-9, f"equity differs from vectorbt by {rel:.3e} relative"
    np.testing.assert_allclose(res.cash.to_numpy(), cash, rtol=1e-9, atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(8))
def test_reference_and_engine_equal_vectorbt_on_tied_books(seed: int) -> None:
    # Small books with prices in cents, equal weights, rebalances every 1-3 sessions and
    # lags 1-2: the order-by-order reference is vectorbt's model, and so is the engine.
    rng = np.random.default_rng(seed)
    n, m = 40, 9
    k = int(rng.integers(2, m + 1))
    every, lag = int(rng.integers(1, 4)), int(rng.integers(1, 3))
    fee, cash = [0.0005, 0.001, 0.0025][seed % 3], [1000.0, 1e6, 1e9 / 3][seed % 3]
    px = np.round(100 * np.exp(np.cumsum(rng.normal(0, 0.03, (n, m)), axis=0)) * 100) / 100
    w = equal_weight_topk(n, m, k, every, seed)
    idx = pd.RangeIndex(n)
    prices, weights = pd.DataFrame(px, index=idx), pd.DataFrame(w, index=idx)
    equity, vbt_cash = _vbt_equity(prices, weights, fee=fee, cash=cash, lag=lag)
    ref = reference_backtest(px, w, lag=lag, fee=fee, cash=cash)
    np.testing.assert_allclose(ref["equity"], equity, rtol=1e-12, atol=0)
    res = run_backtest(
        prices, weights, BacktestConfig(execution_lag=lag, cost_bps=fee * 1e4, initial_cash=cash)
    )
    np.testing.assert_allclose(res.equity.to_numpy(), equity, rtol=1e-12, atol=0)
    np.testing.assert_allclose(res.cash.to_numpy(), vbt_cash, rtol=0, atol=1e-9 * cash)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(4))
def test_near_ties_equal_vectorbt_up_to_the_first_and_far_ones_all_the_way(seed: int) -> None:
    # The documented boundary against vectorbt itself. Equal weights on prices that moved
    # alike: held names' buy keys a few ulps apart. vectorbt, adding cash order by order,
    # and the engine, adding it in sums, may then fill different names of a tied pair
    # partly: equal (1e-12) through the first session where the partly filled buy is in a
    # near tie, and the order-by-order reference equals vectorbt all the way.
    pytest.importorskip("vectorbt")
    px, w = near_tie_book(seed)
    idx = pd.RangeIndex(len(px))
    prices, weights = pd.DataFrame(px, index=idx), pd.DataFrame(w, index=idx)
    cfg = BacktestConfig(cost_bps=10.0, initial_cash=1e6)
    equity, _ = _vbt_equity(prices, weights, fee=0.001, cash=1e6)
    ref = reference_backtest(px, w, lag=1, fee=0.001, cash=1e6)
    np.testing.assert_allclose(ref["equity"], equity, rtol=1e-12, atol=0)
    stop = ref["first_near_tie"]
    assert stop is not None
    res = run_backtest(prices, weights, cfg)
    np.testing.assert_allclose(res.equity.to_numpy()[: stop + 1], equity[: stop + 1], rtol=1e-12)
    # Far side: weights tilted so that no two keys are within the bound.
    px, w = near_tie_book(seed, spread=1e-8)
    prices, weights = pd.DataFrame(px, index=idx), pd.DataFrame(w, index=idx)
    assert not reference_backtest(px, w, lag=1, fee=0.001, cash=1e6)["near_tie"]
    equity, _ = _vbt_equity(prices, weights, fee=0.001, cash=1e6)
    res = run_backtest(prices, weights, cfg)
    np.testing.assert_allclose(res.equity.to_numpy(), equity, rtol=1e-12, atol=0)


def gapped_opens(prices: pd.DataFrame, seed: int, gap: float = 0.01) -> pd.DataFrame:
    """Opens that differ from the closes: the previous close moved by an overnight gap."""
    rng = np.random.default_rng(seed)
    prev = prices.shift(1).fillna(prices.iloc[0])
    return prev * np.exp(rng.normal(0.0, gap, prices.shape))


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["numba", "rust"])
@pytest.mark.parametrize("lag", [1, 2])
def test_fills_at_the_open_equal_vectorbt_with_open_prices(engine: str, lag: int) -> None:
    # backtest.fill=next_open against vectorbt's from_orders(price=opens): the group valued
    # and the orders filled at the opens, the equity at the closes; rebalances every 5
    # sessions (drift between), names listed late, 10 bps.
    pytest.importorskip("vectorbt")
    if engine == "rust":
        pytest.importorskip("vectorbt_rust")
    rng = np.random.default_rng(21)
    n, m = 400, 30
    idx = pd.date_range("2015-01-02", periods=n, freq="B", tz="UTC")
    prices = pd.DataFrame(100 * np.exp(np.cumsum(rng.normal(0, 0.02, (n, m)), axis=0)), index=idx)
    opens = gapped_opens(prices, 22)
    late = rng.integers(0, n // 2, m // 3)
    for j, first in enumerate(late):
        prices.iloc[:first, j] = np.nan
        opens.iloc[:first, j] = np.nan
    w = rng.dirichlet(np.ones(m), n) * prices.notna().to_numpy()  # listed names only
    w = w / w.sum(axis=1, keepdims=True)
    w[np.arange(n) % 5 != 0] = np.nan
    weights = pd.DataFrame(w, index=idx)
    cfg = BacktestConfig(execution_lag=lag, cost_bps=10.0, initial_cash=1e6, fill="next_open")
    res = run_backtest(prices, weights, cfg, opens=opens)
    equity, cash = _vbt_equity(
        prices, weights, fee=0.001, cash=1e6, lag=lag, engine=engine, opens=opens
    )
    np.testing.assert_allclose(res.equity.to_numpy(), equity, rtol=1e-9, atol=0)
    np.testing.assert_allclose(res.cash.to_numpy(), cash, rtol=1e-9, atol=1e-6)
    # Not the closes' backtest: the fills moved.
    at_close = run_backtest(prices, weights, BacktestConfig(execution_lag=lag, cost_bps=10.0))
    assert np.max(np.abs(at_close.equity.to_numpy() / equity - 1.0)) > 1e-3


@pytest.mark.slow
def test_equal_weight_topk_book_at_the_open_equals_vectorbt_at_benchmark_size() -> None:
    # 500 names x 5040 sessions, top 50 at 1/50 daily, 10 bps, filled at the opens: every
    # session ties new buys and runs short of cash by about the fees.
    pytest.importorskip("vectorbt")
    prices, weights = topk_book(5040, 500, 50)
    opens = (gapped_opens(prices, 3) * 100.0).round() / 100.0
    cfg = BacktestConfig(cost_bps=10.0, initial_cash=1e6, fill="next_open")
    res = run_backtest(prices, weights, cfg, opens=opens)
    equity, cash = _vbt_equity(prices, weights, fee=0.001, cash=1e6, opens=opens)
    rel = np.max(np.abs(res.equity.to_numpy() / equity - 1.0))
    assert rel <= 1e-9, f"equity differs from vectorbt by {rel:.3e} relative"
    np.testing.assert_allclose(res.cash.to_numpy(), cash, rtol=1e-9, atol=1e-6)
