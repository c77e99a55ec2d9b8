"""Scores -> target weights, the one path shared by the backtester and the live loop."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from py_finance.portfolio.config import PortfolioConfig
from py_finance.portfolio.topk import topk_weights
from py_finance.risk.config import RegimePolicyConfig, RiskConfig
from py_finance.risk.overlays import apply_static_overlays

NO_RISK = RiskConfig(
    max_position=None,
    max_sector=None,
    drawdown_throttle=None,
    throttle_exposure=1.0,
    recovery_drawdown=0.0,
    reset_after_sessions=None,
)


def target_weights(
    scores: pd.DataFrame,
    *,
    portfolio: PortfolioConfig,
    risk: RiskConfig,
    sectors: pd.Series | Sequence[str] | None = None,
    regimes: pd.Series | None = None,
    policy: RegimePolicyConfig | None = None,
) -> pd.DataFrame:
    """Target weights decided at the close of each session of ``scores``.

    Top-k construction, then position cap, sector cap and regime exposure (the drawdown
    throttle depends on the equity path and is applied by the engine or the live loop).
    Sessions that are not rebalance sessions (every ``portfolio.rebalance_every``-th row,
    counted from the first) get NaN rows: no orders, positions are held.

    Parameters
    ----------
    scores
        ``session x symbol`` model scores known at the close of each session.
    portfolio, risk, policy
        Construction, caps and the regime exposure policy (``None``: no regime scaling).
    sectors
        Sector per column (a Series indexed by symbol, or a sequence in column order).
    regimes
        Regime per session (known at that session's close); required with ``policy``.
    """
    raw = topk_weights(scores, portfolio)
    if isinstance(sectors, pd.Series):
        sector_list: Sequence[str] | None = [
            str(x) for x in sectors.reindex(scores.columns).fillna("Unknown")
        ]
    else:
        sector_list = list(sectors) if sectors is not None else None
    regime_list = None
    if policy is not None:
        if regimes is None:
            regime_list = ["unknown"] * len(scores)
        else:
            regime_list = [str(r) for r in regimes.reindex(scores.index).fillna("unknown")]
    shaped = apply_static_overlays(raw.to_numpy(), sector_list, regime_list, risk, policy)
    shaped[~rebalance_mask(len(scores), portfolio.rebalance_every)] = np.nan
    return pd.DataFrame(shaped, index=scores.index, columns=scores.columns)


def rebalance_mask(n_sessions: int, every: int) -> np.ndarray:
    """True on rebalance sessions: rows ``0, every, 2 * every, ...``."""
    return np.arange(n_sessions) % every == 0
