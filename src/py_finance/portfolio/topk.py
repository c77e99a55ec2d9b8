"""Scores -> long-only top-k target weights."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from py_finance.portfolio.config import PortfolioConfig

log = logging.getLogger(__name__)


def topk_weights(scores: pd.DataFrame, cfg: PortfolioConfig) -> pd.DataFrame:
    """Turn a ``session x symbol`` score matrix into long-only top-k target weights.

    Parameters
    ----------
    scores
        Scores decided at the close of session t (higher is better). NaN means the name is
        not eligible that session. ``+inf``/``-inf`` are valid (best/worst) scores.
    cfg
        ``top_k`` and ``weighting``.

    Returns
    -------
    pd.DataFrame
        Same index and columns as ``scores``, float64 target weights for the decision taken
        at the close of t (they fill at t + execution_lag). Each row sums to at most 1; the
        remainder is cash.

        * ``equal``: each of the ``top_k`` best names gets ``1 / top_k``; a session with
          fewer eligible names leaves the rest in cash.
        * ``score``: the ``n`` selected names get weights proportional to their rank among
          the selected (best ``n``, worst ``1``; equal scores share the average rank), scaled
          so the row sums to ``min(1, n / top_k)``.

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

    eligible = ~np.isnan(values)
    neg = np.where(eligible, -values, 0.0)
    # Primary key: ineligible last; secondary: descending score. np.lexsort is stable, so
    # equal keys keep column order, which is the documented tie-break.
    order = np.lexsort((neg, ~eligible), axis=-1)
    rows = np.arange(n_rows)[:, None]
    position = np.empty_like(order)
    position[rows, order] = np.arange(n_cols)[None, :]

    n_eligible = eligible.sum(axis=1)
    n_sel = np.minimum(n_eligible, cfg.top_k)
    selected = position < n_sel[:, None]

    if cfg.weighting == "equal":
        out[selected] = 1.0 / cfg.top_k
    else:
        out = _rank_weights(values, order, n_sel, cfg.top_k)
        out[~selected] = 0.0

    return pd.DataFrame(out, index=scores.index, columns=scores.columns)


def _rank_weights(
    values: np.ndarray, order: np.ndarray, n_sel: np.ndarray, top_k: int
) -> np.ndarray:
    """Rank weights of the selected names (in sorted order), scattered back to columns."""
    n_rows, n_cols = values.shape
    rows = np.arange(n_rows)[:, None]
    sorted_vals = values[rows, order]
    idx = np.broadcast_to(np.arange(n_cols), (n_rows, n_cols))
    sel_sorted = idx < n_sel[:, None]

    # Tie groups among the sorted scores; average positions inside each group (restricted
    # to the selected prefix) so equal scores get equal weight.
    new_group = np.ones((n_rows, n_cols), dtype=bool)
    new_group[:, 1:] = sorted_vals[:, 1:] != sorted_vals[:, :-1]
    start = np.maximum.accumulate(np.where(new_group, idx, 0), axis=1)
    end_group = np.ones((n_rows, n_cols), dtype=bool)
    end_group[:, :-1] = new_group[:, 1:]
    rev_idx = np.where(end_group, idx, n_cols)[:, ::-1]
    end = np.minimum.accumulate(rev_idx, axis=1)[:, ::-1]
    end = np.minimum(end, np.maximum(n_sel[:, None] - 1, 0))
    avg_pos = 0.5 * (start + end)

    rank = np.where(sel_sorted, n_sel[:, None] - avg_pos, 0.0)
    total = rank.sum(axis=1, keepdims=True)
    target = np.minimum(1.0, n_sel / top_k)[:, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        w_sorted = np.where(total > 0, rank / total * target, 0.0)
    out = np.zeros((n_rows, n_cols), dtype=np.float64)
    out[rows, order] = w_sorted
    return out
