from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from py_finance.backtest import (
    METRIC_KEYS,
    compute_metrics,
    deflated_sharpe_ratio,
    max_drawdown,
    probabilistic_sharpe_ratio,
    score_ic,
)


def test_constant_daily_return() -> None:
    r = 0.001
    m = compute_metrics(pd.Series([r] * 504))
    assert m["cagr"] == pytest.approx((1 + r) ** 252 - 1, rel=1e-12)
    assert m["total_return"] == pytest.approx((1 + r) ** 504 - 1, rel=1e-12)
    assert m["volatility"] == 0.0
    assert math.isnan(m["sharpe"])
    assert math.isnan(m["sortino"])
    assert m["max_drawdown"] == 0.0
    assert math.isnan(m["calmar"])
    assert m["hit_rate"] == 1.0
    assert m["n_sessions"] == 504.0
    assert set(m) == set(METRIC_KEYS)


def test_max_drawdown_of_known_path() -> None:
    equity = pd.Series([1.0, 1.2, 0.9, 1.1, 0.6, 0.8, 1.3])
    assert max_drawdown(equity) == pytest.approx(0.6 / 1.2 - 1)
    assert max_drawdown(np.array([1.0, 2.0, 3.0])) == 0.0
    assert math.isnan(max_drawdown(np.array([])))


def test_drawdown_counts_a_loss_on_the_first_session() -> None:
    m = compute_metrics(pd.Series([-0.1, 0.05]))
    assert m["max_drawdown"] == pytest.approx(-0.1)


def test_sharpe_sortino_volatility_by_hand() -> None:
    r = np.array([0.01, -0.02, 0.03, 0.0, -0.01, 0.02])
    m = compute_metrics(pd.Series(r), periods_per_year=252)
    mean, std = r.mean(), r.std(ddof=1)
    downside = math.sqrt(np.mean(np.minimum(r, 0) ** 2))
    assert m["volatility"] == pytest.approx(std * math.sqrt(252))
    assert m["sharpe"] == pytest.approx(mean / std * math.sqrt(252))
    assert m["sortino"] == pytest.approx(mean / downside * math.sqrt(252))
    growth = np.prod(1 + r)
    assert m["cagr"] == pytest.approx(growth ** (252 / 6) - 1)
    curve = np.cumprod(np.concatenate(([1.0], 1 + r)))
    mdd = (curve / np.maximum.accumulate(curve) - 1).min()
    assert m["max_drawdown"] == pytest.approx(mdd)
    assert m["calmar"] == pytest.approx(m["cagr"] / abs(mdd))
    # Flat session not counted: 3 up of 5 that moved.
    assert m["hit_rate"] == pytest.approx(3 / 5)


def test_turnover_is_annualised_one_way() -> None:
    m = compute_metrics(pd.Series([0.0, 0.01, -0.01]), turnover=pd.Series([0.0, 0.04, 0.02]))
    assert m["turnover"] == pytest.approx(0.02 / 2 * 252)
    assert math.isnan(compute_metrics(pd.Series([0.01]))["turnover"])


def test_empty_and_nan_series_do_not_raise() -> None:
    m = compute_metrics(pd.Series([], dtype=float))
    assert m["n_sessions"] == 0.0
    assert all(math.isnan(v) for k, v in m.items() if k != "n_sessions")
    m = compute_metrics(pd.Series([np.nan, 0.01]))
    assert m["n_sessions"] == 1.0
    assert math.isnan(m["volatility"])
    assert m["total_return"] == pytest.approx(0.01)


def test_total_loss_gives_cagr_minus_one() -> None:
    m = compute_metrics(pd.Series([0.1, -1.0]))
    assert m["cagr"] == -1.0
    assert m["max_drawdown"] == -1.0


def _returns(seed: int = 5, n: int = 1500) -> pd.Series:
    rng = np.random.default_rng(seed)
    idx = pd.date_range("2010-01-04", periods=n, freq="B", tz="UTC")
    return pd.Series(rng.standard_t(4, n) * 0.01 + 0.0004, index=idx)


def test_metrics_equal_empyrical_on_the_same_returns() -> None:
    emp = pytest.importorskip("empyrical")
    r = _returns()
    bench = 0.6 * r + pd.Series(np.random.default_rng(9).normal(0, 0.008, len(r)), index=r.index)
    m = compute_metrics(r, benchmark=bench)
    assert m["cagr"] == pytest.approx(emp.annual_return(r), rel=1e-10)
    assert m["volatility"] == pytest.approx(emp.annual_volatility(r), rel=1e-10)
    assert m["sharpe"] == pytest.approx(emp.sharpe_ratio(r), rel=1e-10)
    assert m["sortino"] == pytest.approx(emp.sortino_ratio(r), rel=1e-10)
    assert m["max_drawdown"] == pytest.approx(emp.max_drawdown(r), rel=1e-10)
    assert m["calmar"] == pytest.approx(emp.calmar_ratio(r), rel=1e-10)
    assert m["beta"] == pytest.approx(emp.beta(r, bench), rel=1e-8)
    assert m["total_return"] == pytest.approx(emp.cum_returns_final(r), rel=1e-10)


def test_psr_and_dsr_follow_bailey_lopez_de_prado() -> None:
    from scipy.stats import kurtosis, norm, skew

    r = _returns(8, 750).to_numpy()
    sr = r.mean() / r.std(ddof=1)
    g3, g4 = skew(r), kurtosis(r, fisher=False)
    denom = math.sqrt(1 - g3 * sr + (g4 - 1) / 4 * sr**2)
    expected = norm.cdf(sr * math.sqrt(len(r) - 1) / denom)
    assert probabilistic_sharpe_ratio(r) == pytest.approx(expected, rel=1e-12)
    assert deflated_sharpe_ratio(r, 1) == pytest.approx(expected, rel=1e-12)
    # More trials raise the bar: the deflated ratio falls.
    d10, d100 = deflated_sharpe_ratio(r, 10), deflated_sharpe_ratio(r, 100)
    assert d100 < d10 < expected
    var = 0.02**2
    g = 0.5772156649015329
    star = math.sqrt(var) * ((1 - g) * norm.ppf(1 - 1 / 10) + g * norm.ppf(1 - 1 / (10 * math.e)))
    assert deflated_sharpe_ratio(r, 10, var) == pytest.approx(
        norm.cdf((sr - star) * math.sqrt(len(r) - 1) / denom), rel=1e-12
    )


def test_score_ic_of_perfect_and_reversed_scores() -> None:
    rng = np.random.default_rng(2)
    fwd = pd.DataFrame(rng.normal(size=(50, 8)))
    assert score_ic(fwd, fwd)["rank_ic"] == pytest.approx(1.0)
    assert score_ic(-fwd, fwd)["ic"] == pytest.approx(-1.0)
    noisy = score_ic(fwd + rng.normal(size=fwd.shape), fwd)
    assert 0.2 < noisy["rank_ic"] < 0.95
    assert math.isnan(score_ic(fwd.iloc[:, :2], fwd.iloc[:, :2])["ic"])


def test_exposure_is_the_mean_gross_exposure() -> None:
    m = compute_metrics(pd.Series([0.0, 0.01]), exposure=pd.Series([0.0, 0.5, 1.0]))
    assert m["exposure"] == pytest.approx(0.5)
