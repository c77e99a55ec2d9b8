"""Scores -> target weights, the one path shared by the backtester and the live loop."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from py_finance.errors import ConfigError
from py_finance.portfolio.config import PortfolioConfig
from py_finance.portfolio.topk import topk_weights, trailing_volatility
from py_finance.risk.config import RegimePolicy, RiskConfig
from py_finance.risk.overlays import apply_static_overlays, check_weights

NO_RISK = RiskConfig(
    max_position=None,
    max_sector=None,
    drawdown_throttle=None,
    throttle_exposure=1.0,
    recovery_drawdown=0.0,
    reset_after_sessions=None,
)


def strategy_returns(raw_weights: pd.DataFrame, returns: pd.DataFrame) -> np.ndarray:
    """Gross returns of holding the pre-overlay target weights (for data-driven policies).

    ``out[t] = sum_i w[t - 1, i] * r[t, i]`` where ``w`` is the last rebalance's weights
    carried forward (NaN rows hold) and ``r[t]`` the names' returns into the close of t; so
    ``out[t]`` is known at the close of t. ``out[0]`` is NaN.
    """
    w = raw_weights.ffill().fillna(0.0).to_numpy(dtype=np.float64)
    r = returns.reindex(index=raw_weights.index, columns=raw_weights.columns)
    r_arr = np.nan_to_num(r.to_numpy(dtype=np.float64), nan=0.0)
    out = np.full(len(w), np.nan)
    if len(w) > 1:
        out[1:] = (w[:-1] * r_arr[1:]).sum(axis=1)
    return out


def target_weights(
    scores: pd.DataFrame,
    *,
    portfolio: PortfolioConfig,
    risk: RiskConfig,
    sectors: pd.Series | pd.DataFrame | Sequence[str] | None = None,
    regimes: pd.Series | None = None,
    policy: RegimePolicy | None = None,
    returns: pd.DataFrame | None = None,
    uncertainty: pd.DataFrame | None = None,
    previous: Sequence[str] | None = None,
    periods_per_year: int = 252,
) -> pd.DataFrame:
    """Target weights decided at the close of each session of ``scores``.

    Top-k construction on the rebalance sessions (every ``portfolio.rebalance_every``-th
    row, counted from the first), then the static overlays in ``risk.order`` (the drawdown
    throttle depends on the equity path and is applied by the engine or the live loop).
    Other sessions get NaN rows: no orders, positions are held. The constructed weights are
    checked before any overlay: an infinite or negative weight, or a row above
    ``risk.max_leverage``, is a :class:`~py_finance.errors.DataError` naming the session and
    symbol (:func:`~py_finance.risk.overlays.check_weights`).

    Parameters
    ----------
    scores
        ``session x symbol`` model scores known at the close of each session.
    portfolio, risk, policy
        Construction, overlays and the regime exposure policy (``None``: no regime scaling).
    sectors
        Sector per column (a Series indexed by symbol, or a sequence in column order), or a
        ``session x symbol`` frame of point-in-time labels (each rebalance uses its own).
    regimes
        Regime per session (known at that session's close); required with ``policy`` or
        sector tilts.
    returns
        ``session x symbol`` simple returns into each close (known at that close); needed
        by ``inverse_vol`` weighting, vol targeting and the data-driven policy. It may start
        before ``scores`` (the extra history feeds the lookbacks).
    uncertainty
        ``session x symbol`` standard deviation of the scores (``uncertainty`` weighting).
    previous
        Names held before the first session (hold buffer / n-drop).
    periods_per_year
        Annualisation for vol targeting and the data-driven policy.
    """
    every = portfolio.rebalance_every
    mask = rebalance_mask(len(scores), every)
    rows = scores.index[mask]
    vol = None
    if returns is not None:
        returns = returns.reindex(columns=scores.columns)
        if portfolio.weighting == "inverse_vol":
            vol = trailing_volatility(returns, portfolio.vol_lookback).reindex(rows)
    elif portfolio.weighting == "inverse_vol" or risk.vol_target is not None:
        raise ConfigError(
            "inverse_vol weighting and risk.vol_target need the names' returns; pass returns"
        )
    raw = topk_weights(
        scores.loc[rows],
        portfolio,
        volatility=vol,
        uncertainty=None if uncertainty is None else uncertainty.reindex(rows),
        previous=previous,
    )
    check_weights(raw.to_numpy(), risk.max_leverage, sessions=raw.index, symbols=raw.columns)
    # One sector list per rebalance row: point-in-time labels (a frame) change over time.
    n_rows = int(mask.sum())
    if isinstance(sectors, pd.DataFrame):
        labels = (
            sectors.reindex(index=rows, columns=scores.columns).fillna("Unknown").astype(str)
        ).to_numpy()
        sector_rows: list[Sequence[str] | None] = [list(r) for r in labels]
    elif isinstance(sectors, pd.Series):
        one = [str(x) for x in sectors.reindex(scores.columns).fillna("Unknown")]
        sector_rows = [one] * n_rows
    else:
        one_or_none = list(sectors) if sectors is not None else None
        sector_rows = [one_or_none] * n_rows
    needs_regimes = policy is not None or risk.sector_tilts is not None
    regime_all: list[str] | None = None
    if needs_regimes:
        if regimes is None:
            regime_all = ["unknown"] * len(scores)
        else:
            regime_all = [str(r) for r in regimes.reindex(scores.index).fillna("unknown")]
    regime_rows = None if regime_all is None else [regime_all[i] for i in np.flatnonzero(mask)]

    multipliers = None
    if policy is not None and policy.needs_history:
        if returns is None:
            raise ConfigError(
                f"regime policy {policy.name!r} needs the names' returns to measure the "
                "strategy's past performance; pass returns"
            )
        full_raw = raw.reindex(scores.index)
        strat = strategy_returns(full_raw, returns.reindex(scores.index))
        assert regime_all is not None
        multipliers = policy.row_multipliers(regime_all, strat)[mask]

    if risk.vol_target is not None and returns is not None:
        # Row t of the lookback matrix holds returns through the close of t.
        hist = returns.to_numpy(dtype=np.float64)
        pos = returns.index.get_indexer(rows)
        if (pos < 0).any():
            raise ConfigError("returns must cover every session of scores")
        look = risk.vol_lookback
        shaped_rows = []
        for k, p in enumerate(pos):
            shaped_rows.append(
                apply_static_overlays(
                    raw.to_numpy()[k],
                    sector_rows[k],
                    None if regime_rows is None else regime_rows[k],
                    risk,
                    policy,
                    returns=hist[max(p - look + 1, 0) : p + 1],
                    regime_multipliers=None if multipliers is None else multipliers[k : k + 1],
                    periods_per_year=periods_per_year,
                )
            )
        shaped = np.vstack(shaped_rows) if shaped_rows else raw.to_numpy()
    else:
        # Rows that share a sector map are shaped together (a map changes rarely).
        values = raw.to_numpy()
        parts = []
        a = 0
        while a < n_rows:
            b = a + 1
            while b < n_rows and sector_rows[b] == sector_rows[a]:
                b += 1
            parts.append(
                apply_static_overlays(
                    values[a:b],
                    sector_rows[a],
                    None if regime_rows is None else regime_rows[a:b],
                    risk,
                    policy,
                    regime_multipliers=None if multipliers is None else multipliers[a:b],
                    periods_per_year=periods_per_year,
                )
            )
            a = b
        shaped = np.vstack(parts) if parts else values
    out = np.full((len(scores), len(scores.columns)), np.nan)
    out[mask] = shaped
    return pd.DataFrame(out, index=scores.index, columns=scores.columns)


def rebalance_mask(n_sessions: int, every: int) -> np.ndarray:
    """True on rebalance sessions: rows ``0, every, 2 * every, ...``."""
    return np.arange(n_sessions) % every == 0
