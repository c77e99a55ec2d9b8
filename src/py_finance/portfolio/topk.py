"""Scores -> long-only top-k target weights."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd

from py_finance.errors import ConfigError, DataError
from py_finance.portfolio.config import PortfolioConfig

log = logging.getLogger(__name__)


def _order(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row: column order best first (ineligible last, ties by column) and eligibility."""
    eligible = ~np.isnan(values)
    neg = np.where(eligible, -values, 0.0)
    # Primary key: ineligible last; secondary: descending score. np.lexsort is stable, so
    # equal keys keep column order, which is the documented tie-break.
    return np.lexsort((neg, ~eligible), axis=-1), eligible


def _select_free(values: np.ndarray, top_k: int) -> np.ndarray:
    """The top ``top_k`` eligible names of every row (boolean mask)."""
    n_rows, n_cols = values.shape
    order, eligible = _order(values)
    rows = np.arange(n_rows)[:, None]
    position = np.empty_like(order)
    position[rows, order] = np.arange(n_cols)[None, :]
    n_sel = np.minimum(eligible.sum(axis=1), top_k)
    return position < n_sel[:, None]


def _select_sticky(
    values: np.ndarray, cfg: PortfolioConfig, previous: np.ndarray | None
) -> np.ndarray:
    """Row by row selection that keeps held names (TopkDropout or a hold buffer)."""
    n_rows, n_cols = values.shape
    order, eligible = _order(values)
    out = np.zeros((n_rows, n_cols), dtype=bool)
    held = np.zeros(n_cols, dtype=bool) if previous is None else previous.copy()
    k = cfg.top_k
    for t in range(n_rows):
        ranked = [int(c) for c in order[t] if eligible[t, c]]  # best first
        rank = {c: i for i, c in enumerate(ranked)}
        kept = [c for c in ranked if held[c]]  # held and still eligible, best first
        if cfg.n_drop is not None:
            fresh = [c for c in ranked if not held[c]]
            cand = fresh[: max(cfg.n_drop + k - len(kept), 0)]
            comb = sorted(kept + cand, key=rank.__getitem__)
            worst = set(comb[len(comb) - cfg.n_drop :]) if cfg.n_drop else set()
            keep = [c for c in kept if c not in worst][:k]
            sel = keep + cand[: k - len(keep)]
        else:
            keep = [c for c in kept if rank[c] < k + cfg.hold_buffer][:k]
            fresh = [c for c in ranked if c not in set(keep)]
            sel = keep + fresh[: k - len(keep)]
        row = np.zeros(n_cols, dtype=bool)
        row[sel] = True
        out[t] = row
        held = row
    return out


def _proportional(selected: np.ndarray, raw: np.ndarray, top_k: int) -> np.ndarray:
    """Weights proportional to ``raw`` over the selected names, summing to min(1, n/k).

    A selected name with a missing or non-positive ``raw`` gets the median of the others
    in its row (all equal when none is valid).
    """
    raw = np.where(selected & np.isfinite(raw) & (raw > 0.0), raw, np.nan)
    with np.errstate(all="ignore"):
        fill = np.nanmedian(np.where(np.isnan(raw).all(axis=1, keepdims=True), 1.0, raw), axis=1)
    raw = np.where(selected & np.isnan(raw), fill[:, None], raw)
    raw = np.where(selected, raw, 0.0)
    total = raw.sum(axis=1, keepdims=True)
    n_sel = selected.sum(axis=1)
    target = np.minimum(1.0, n_sel / top_k)[:, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0.0, raw / total * target, 0.0)


def topk_weights(
    scores: pd.DataFrame,
    cfg: PortfolioConfig,
    *,
    volatility: pd.DataFrame | None = None,
    uncertainty: pd.DataFrame | None = None,
    previous: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Turn a ``session x symbol`` score matrix into long-only top-k target weights.

    Parameters
    ----------
    scores
        Scores decided at the close of session t (higher is better). NaN means the name is
        not eligible that session. ``+inf``/``-inf`` are valid (best/worst) scores. With
        ``cfg.n_drop`` or ``cfg.hold_buffer`` the rows are taken as consecutive rebalances
        (each row's selection depends on the row before).
    cfg
        ``top_k``, ``weighting``, ``n_drop``, ``hold_buffer``.
    volatility
        Same shape: trailing volatility of each name known at t (``inverse_vol``).
    uncertainty
        Same shape: standard deviation of each score (``uncertainty``), e.g. from MC
        dropout.
    previous
        Names held before the first row (for ``n_drop`` / ``hold_buffer``), e.g. the live
        account's positions.

    Returns
    -------
    pd.DataFrame
        Same index and columns as ``scores``, float64 target weights for the decision taken
        at the close of t (they fill at t + execution_lag). Each row sums to at most 1; the
        remainder is cash.

        * ``equal``: each selected name gets ``1 / top_k``; a session with fewer eligible
          names leaves the rest in cash.
        * ``score``: weights proportional to the rank among the selected (best ``n``,
          worst ``1``; equal scores share the average rank), summing to
          ``min(1, n / top_k)``.
        * ``inverse_vol`` / ``uncertainty``: proportional to ``1 / volatility`` or
          ``1 / uncertainty``, same total.

    Notes
    -----
    Ties are broken by column order (the left-most column wins a place in the top k), so
    the result is deterministic.
    """
    values = scores.to_numpy(dtype=np.float64, copy=True)
    n_rows, n_cols = values.shape
    out = np.zeros((n_rows, n_cols), dtype=np.float64)
    if n_rows == 0 or n_cols == 0:
        return pd.DataFrame(out, index=scores.index, columns=scores.columns)

    if cfg.path_dependent:
        prev = None
        if previous is not None:
            prev = scores.columns.isin(list(previous))
        selected = _select_sticky(values, cfg, prev)
    else:
        selected = _select_free(values, cfg.top_k)

    if cfg.weighting == "equal":
        out[selected] = 1.0 / cfg.top_k
    elif cfg.weighting == "score":
        masked = pd.DataFrame(np.where(selected, values, np.nan))
        ranks = masked.rank(axis=1, method="average").to_numpy()
        out = _proportional(selected, ranks, cfg.top_k)
    else:
        frame = volatility if cfg.weighting == "inverse_vol" else uncertainty
        if frame is None:
            what = (
                "volatility" if cfg.weighting == "inverse_vol" else "uncertainty (prediction std)"
            )
            raise ConfigError(
                f"portfolio.weighting={cfg.weighting} needs a {what} frame; pass it or choose "
                "another weighting"
            )
        if not frame.index.equals(scores.index):
            raise DataError(f"the {cfg.weighting} frame must have the scores' sessions")
        inv = 1.0 / frame.reindex(columns=scores.columns).to_numpy(dtype=np.float64)
        out = _proportional(selected, inv, cfg.top_k)

    return pd.DataFrame(out, index=scores.index, columns=scores.columns)


def trailing_volatility(returns: pd.DataFrame, lookback: int) -> pd.DataFrame:
    """Standard deviation of each name's returns over the ``lookback`` sessions up to t.

    Known at the close of t (it uses returns through t). NaN until ``lookback // 2``
    returns are available.
    """
    return returns.rolling(lookback, min_periods=max(lookback // 2, 2)).std()
