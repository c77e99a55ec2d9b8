"""Performance metrics of a return series (the numbers logged to MLflow)."""

from __future__ import annotations

import logging
import math

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
)


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


def compute_metrics(
    returns: pd.Series,
    *,
    turnover: pd.Series | None = None,
    periods_per_year: int = 252,
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
    return out
