"""Performance metrics of a return series (the numbers logged to MLflow)."""

from __future__ import annotations

import logging
import math
from statistics import NormalDist

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

METRIC_KEYS = (
    "cagr",
    "sharpe",
    "sortino",
    "volatility",
    "max_drawdown",
    "calmar",
    "turnover",
    "hit_rate",
    "n_sessions",
    "total_return",
    "exposure",
    "beta",
    "psr",
    "dsr",
)

_EULER_GAMMA = 0.5772156649015329
_NORMAL = NormalDist()  # the standard normal (stdlib: no scipy import per stage)


def max_drawdown(equity: pd.Series | np.ndarray) -> float:
    """Largest fall from a running peak of ``equity``, as a negative fraction.

    Parameters
    ----------
    equity
        Equity curve (any positive scale); NaNs are dropped.

    Returns
    -------
    float
        ``min(equity / running_max - 1)``, e.g. ``-0.33`` for a 33% fall; ``0.0`` for a
        curve that never falls; NaN for an empty curve.
    """
    eq = np.asarray(equity, dtype=np.float64)
    eq = eq[~np.isnan(eq)]
    if eq.size == 0:
        return math.nan
    peak = np.maximum.accumulate(eq)
    with np.errstate(divide="ignore", invalid="ignore"):
        dd = np.where(peak > 0.0, eq / peak - 1.0, 0.0)
    return float(dd.min())


def _covariance(x: np.ndarray, y: np.ndarray) -> float:
    """Sample covariance (``ddof=1``) of two equal-length series, without BLAS.

    ``np.cov`` goes through BLAS, whose kernel (chosen per CPU, ``OPENBLAS_CORETYPE``)
    changes the last bits; exactly rounded sums (``math.fsum``) give the same bits on every
    machine, so the metrics file (and ``dvc.lock``) does not depend on the CPU.
    """
    n = x.size
    dx = x - math.fsum(x) / n
    dy = y - math.fsum(y) / n
    return math.fsum(dx * dy) / (n - 1)


def _moments(r: np.ndarray) -> tuple[float, float, float]:
    """Per-period Sharpe (ddof=1), skewness and (non-excess) kurtosis of ``r``."""
    std = float(r.std(ddof=1))
    z = (r - r.mean()) / r.std(ddof=0)
    return float(r.mean()) / std, float(np.mean(z**3)), float(np.mean(z**4))


def probabilistic_sharpe_ratio(returns: pd.Series | np.ndarray, sr_benchmark: float = 0.0) -> float:
    """Probability that the true per-period Sharpe ratio exceeds ``sr_benchmark``.

    Bailey and López de Prado (2012): ``Phi((SR - SR*) sqrt(n - 1) / sqrt(1 - g3 SR +
    (g4 - 1) / 4 SR^2))`` with the per-period (not annualised) Sharpe ``SR``, skewness ``g3``
    and kurtosis ``g4`` of the returns. NaN for fewer than 3 returns or zero volatility.
    """
    r = np.asarray(pd.Series(returns, dtype=np.float64).dropna())
    if r.size < 3 or float(np.ptp(r)) == 0.0:
        return math.nan
    sr, g3, g4 = _moments(r)
    denom = 1.0 - g3 * sr + (g4 - 1.0) / 4.0 * sr**2
    if denom <= 0.0:
        return math.nan
    return float(_NORMAL.cdf((sr - sr_benchmark) * math.sqrt(r.size - 1) / math.sqrt(denom)))


def deflated_sharpe_ratio(
    returns: pd.Series | np.ndarray, n_trials: int, sr_variance: float | None = None
) -> float:
    """Probabilistic Sharpe ratio against the best Sharpe expected from ``n_trials`` tries.

    Bailey and López de Prado (2014): the benchmark is ``sqrt(V) ((1 - gamma)
    Phi^-1(1 - 1/N) + gamma Phi^-1(1 - 1/(N e)))``, ``gamma`` the Euler-Mascheroni constant
    and ``V`` the variance of the per-period Sharpe ratios across the trials
    (``sr_variance``; by default the sampling variance of this series' Sharpe estimate).
    With ``n_trials == 1`` it equals :func:`probabilistic_sharpe_ratio` against 0.
    """
    if n_trials < 1:
        raise ValueError(f"n_trials must be >= 1, got {n_trials}")
    r = np.asarray(pd.Series(returns, dtype=np.float64).dropna())
    if r.size < 3 or float(np.ptp(r)) == 0.0:
        return math.nan
    if n_trials == 1:
        return probabilistic_sharpe_ratio(r, 0.0)
    sr, g3, g4 = _moments(r)
    var = sr_variance
    if var is None:
        var = (1.0 - g3 * sr + (g4 - 1.0) / 4.0 * sr**2) / (r.size - 1)
    sr_star = math.sqrt(max(var, 0.0)) * (
        (1.0 - _EULER_GAMMA) * _NORMAL.inv_cdf(1.0 - 1.0 / n_trials)
        + _EULER_GAMMA * _NORMAL.inv_cdf(1.0 - 1.0 / (n_trials * math.e))
    )
    return probabilistic_sharpe_ratio(r, sr_star)


def score_ic(scores: pd.DataFrame, forward_returns: pd.DataFrame) -> dict[str, float]:
    """Mean cross-sectional information coefficient of scores against forward returns.

    Parameters
    ----------
    scores
        ``session x symbol`` scores known at the close of each session.
    forward_returns
        Same shape: the return each score is about (e.g. the label ``fwd_ret_h``).

    Returns
    -------
    dict[str, float]
        ``ic`` (Pearson) and ``rank_ic`` (Spearman), averaged over sessions with at least
        three names scored; ``icir``: mean / std of the per-session rank IC.
    """
    s, f = scores.align(forward_returns, join="inner")
    valid = s.notna() & f.notna()
    s, f = s.where(valid), f.where(valid)
    keep = valid.sum(axis=1) >= 3
    s, f = s[keep], f[keep]
    out = {"ic": math.nan, "rank_ic": math.nan, "icir": math.nan}
    if s.empty:
        return out
    ic = s.corrwith(f, axis=1)
    ric = s.rank(axis=1).corrwith(f.rank(axis=1), axis=1)
    out["ic"] = float(ic.mean())
    out["rank_ic"] = float(ric.mean())
    sd = float(ric.std(ddof=1)) if ric.notna().sum() > 1 else math.nan
    out["icir"] = out["rank_ic"] / sd if sd and not math.isnan(sd) else math.nan
    return out


def compute_metrics(
    returns: pd.Series,
    *,
    turnover: pd.Series | None = None,
    periods_per_year: int = 252,
    exposure: pd.Series | None = None,
    benchmark: pd.Series | None = None,
    n_trials: int = 1,
) -> dict[str, float]:
    """Summary statistics of simple per-session returns.

    Parameters
    ----------
    returns
        Simple returns per session (NaNs are dropped), e.g. ``BacktestResult.returns``.
    turnover
        Per-session traded notional / equity (buys plus sells, as in
        ``BacktestResult.turnover``); ``None`` gives a NaN turnover.
    periods_per_year
        Sessions per year used to annualise.
    exposure
        Per-session gross invested fraction (``BacktestResult.exposure``); its mean is
        reported.
    benchmark
        Benchmark simple returns on the same sessions, for ``beta``.
    n_trials
        Number of strategy variants tried, for the deflated Sharpe ratio.

    Returns
    -------
    dict[str, float]
        ``cagr``: ``prod(1 + r) ** (periods / n) - 1``.
        ``sharpe``: ``mean / std * sqrt(periods)`` (zero risk-free rate, ``ddof=1``).
        ``sortino``: ``mean / downside * sqrt(periods)`` with
        ``downside = sqrt(mean(min(r, 0) ** 2))`` over all sessions.
        ``volatility``: ``std * sqrt(periods)``.
        ``max_drawdown``: of the compounded curve starting at 1 (negative, e.g. -0.33).
        ``calmar``: ``cagr / |max_drawdown|``.
        ``turnover``: annualised mean one-way turnover, ``mean(turnover) / 2 * periods``.
        ``hit_rate``: share of sessions with a positive return among sessions with a
        non-zero return (flat sessions, e.g. in cash, are not counted).
        ``n_sessions``: number of returns used. ``total_return``: ``prod(1 + r) - 1``.
        ``exposure``: mean gross exposure. ``beta``: ``cov(r, b) / var(b)`` on the sessions
        both have (exactly rounded sums, no BLAS: the same bits on every machine).
        ``psr``: probabilistic Sharpe ratio against 0; ``dsr``: deflated Sharpe ratio given
        ``n_trials``.
        Anything undefined (empty series, zero volatility, no drawdown, ...) is NaN; nothing
        raises.
    """
    r = pd.Series(returns, dtype=np.float64).dropna().to_numpy()
    n = int(r.size)
    out: dict[str, float] = dict.fromkeys(METRIC_KEYS, math.nan)
    out["n_sessions"] = float(n)
    ann = math.sqrt(periods_per_year)

    if turnover is not None:
        t = pd.Series(turnover, dtype=np.float64).dropna().to_numpy()
        if t.size:
            out["turnover"] = float(t.mean()) / 2.0 * periods_per_year

    if exposure is not None:
        e = pd.Series(exposure, dtype=np.float64).dropna().to_numpy()
        if e.size:
            out["exposure"] = float(e.mean())

    if n == 0:
        return out

    curve = np.concatenate(([1.0], np.cumprod(1.0 + r)))
    growth = float(curve[-1])
    out["total_return"] = growth - 1.0
    if growth > 0.0:
        out["cagr"] = growth ** (periods_per_year / n) - 1.0
    elif growth == 0.0:
        out["cagr"] = -1.0

    mean = float(r.mean())
    if n >= 2:
        # An exactly constant series has zero volatility; np.std may return float dust.
        std = 0.0 if float(np.ptp(r)) == 0.0 else float(r.std(ddof=1))
        out["volatility"] = std * ann
        if std > 0.0:
            out["sharpe"] = mean / std * ann
    downside = math.sqrt(float(np.mean(np.minimum(r, 0.0) ** 2)))
    if downside > 0.0:
        out["sortino"] = mean / downside * ann

    mdd = max_drawdown(curve)
    out["max_drawdown"] = mdd
    if mdd < 0.0 and not math.isnan(out["cagr"]):
        out["calmar"] = out["cagr"] / abs(mdd)

    moved = r[r != 0.0]
    if moved.size:
        out["hit_rate"] = float((moved > 0.0).mean())

    if benchmark is not None:
        both = pd.concat([pd.Series(returns, dtype=np.float64), benchmark], axis=1).dropna()
        if len(both) >= 2:
            a = both.iloc[:, 0].to_numpy(dtype=np.float64)
            b = both.iloc[:, 1].to_numpy(dtype=np.float64)
            var_b = _covariance(b, b)
            if var_b > 0.0:
                out["beta"] = _covariance(a, b) / var_b
    out["psr"] = probabilistic_sharpe_ratio(r)
    out["dsr"] = deflated_sharpe_ratio(r, max(int(n_trials), 1))
    return out
