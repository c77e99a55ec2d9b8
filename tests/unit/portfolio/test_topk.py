from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from py_finance.portfolio import PortfolioConfig, topk_weights


def _frame(rows: list[list[float]]) -> pd.DataFrame:
    cols = [f"S{i}" for i in range(len(rows[0]))]
    idx = pd.date_range("2024-01-02", periods=len(rows), freq="B")
    return pd.DataFrame(rows, index=idx, columns=cols, dtype=float)


def test_equal_weighting_picks_top_k_highest_scores() -> None:
    scores = _frame([[0.1, 0.9, 0.5, 0.3], [4.0, 1.0, 3.0, 2.0]])
    w = topk_weights(scores, PortfolioConfig(top_k=2, weighting="equal"))
    np.testing.assert_array_equal(w.to_numpy(), [[0, 0.5, 0.5, 0], [0.5, 0, 0.5, 0]])
    assert w.index.equals(scores.index)
    assert w.columns.equals(scores.columns)
    assert (w.dtypes == np.float64).all()


def test_fewer_eligible_names_than_k_leaves_cash() -> None:
    nan = np.nan
    scores = _frame([[nan, 2.0, nan, 1.0], [nan, nan, nan, nan]])
    w = topk_weights(scores, PortfolioConfig(top_k=4, weighting="equal"))
    np.testing.assert_array_equal(w.to_numpy(), [[0, 0.25, 0, 0.25], [0, 0, 0, 0]])


def test_ties_broken_by_column_order() -> None:
    scores = _frame([[1.0, 5.0, 5.0, 5.0, 0.0]])
    w = topk_weights(scores, PortfolioConfig(top_k=2, weighting="equal"))
    np.testing.assert_array_equal(w.to_numpy(), [[0, 0.5, 0.5, 0, 0]])


def test_nan_is_never_selected_even_over_negative_infinity() -> None:
    scores = _frame([[np.nan, -np.inf, np.nan]])
    w = topk_weights(scores, PortfolioConfig(top_k=2, weighting="equal"))
    np.testing.assert_array_equal(w.to_numpy(), [[0, 0.5, 0]])


def test_score_weighting_proportional_to_rank_among_selected() -> None:
    scores = _frame([[0.3, 0.1, 0.9, 0.5, -1.0]])
    w = topk_weights(scores, PortfolioConfig(top_k=3, weighting="score"))
    # Selected: S2 (rank 3), S3 (rank 2), S0 (rank 1); ranks sum to 6.
    np.testing.assert_allclose(w.to_numpy(), [[1 / 6, 0, 3 / 6, 2 / 6, 0]], rtol=0, atol=1e-15)


def test_score_weighting_with_fewer_names_sums_to_n_over_k() -> None:
    nan = np.nan
    scores = _frame([[nan, 2.0, nan, 1.0, nan]])
    w = topk_weights(scores, PortfolioConfig(top_k=4, weighting="score"))
    # Two names of four slots: total 0.5, split 2:1 by rank.
    np.testing.assert_allclose(w.to_numpy(), [[0, 1 / 3, 0, 1 / 6, 0]], rtol=0, atol=1e-15)


def test_score_weighting_equal_scores_get_equal_weight() -> None:
    scores = _frame([[2.0, 2.0, 1.0, 0.0]])
    w = topk_weights(scores, PortfolioConfig(top_k=3, weighting="score"))
    # Ranks 3 and 2 averaged for the tie -> 2.5, 2.5, 1 (sum 6).
    np.testing.assert_allclose(w.to_numpy(), [[2.5 / 6, 2.5 / 6, 1 / 6, 0]], rtol=0, atol=1e-15)


def test_score_weighting_tie_straddling_the_cut_shares_selected_ranks() -> None:
    scores = _frame([[3.0, 1.0, 1.0, 1.0]])
    w = topk_weights(scores, PortfolioConfig(top_k=3, weighting="score"))
    # S0 rank 3; S1, S2 selected by column order, share ranks (2 + 1) / 2.
    np.testing.assert_allclose(w.to_numpy(), [[3 / 6, 1.5 / 6, 1.5 / 6, 0]], rtol=0, atol=1e-15)


def _reference(row: np.ndarray, cfg: PortfolioConfig) -> np.ndarray:
    """Slow per-row top-k: sort eligible (score desc, column asc)."""
    elig = [j for j in range(row.size) if not np.isnan(row[j])]
    ranked = sorted(elig, key=lambda j: (-row[j], j))[: cfg.top_k]
    out = np.zeros(row.size)
    for j in ranked:
        out[j] = 1.0 / cfg.top_k
    return out


scores_matrix = arrays(
    np.float64,
    st.tuples(st.integers(1, 6), st.integers(1, 8)),
    elements=st.one_of(
        st.just(np.nan), st.integers(-3, 3).map(float), st.floats(-1e6, 1e6, allow_nan=False)
    ),
)


@settings(max_examples=200, deadline=None)
@given(values=scores_matrix, top_k=st.integers(1, 10))
def test_equal_weights_match_slow_reference(values: np.ndarray, top_k: int) -> None:
    cfg = PortfolioConfig(top_k=top_k, weighting="equal")
    w = topk_weights(pd.DataFrame(values), cfg).to_numpy()
    expected = np.vstack([_reference(row, cfg) for row in values])
    np.testing.assert_array_equal(w, expected)


@settings(max_examples=200, deadline=None)
@given(values=scores_matrix, top_k=st.integers(1, 10))
def test_score_weights_invariants(values: np.ndarray, top_k: int) -> None:
    cfg = PortfolioConfig(top_k=top_k, weighting="score")
    w = topk_weights(pd.DataFrame(values), cfg).to_numpy()
    equal = topk_weights(pd.DataFrame(values), PortfolioConfig(top_k=top_k)).to_numpy()
    n_sel = np.minimum((~np.isnan(values)).sum(axis=1), top_k)
    # Same names as equal weighting, all strictly positive, summing to min(1, n / k).
    np.testing.assert_array_equal(w > 0, equal > 0)
    np.testing.assert_allclose(w.sum(axis=1), np.minimum(1.0, n_sel / top_k), atol=1e-12)
    assert (w >= 0).all()
    # A better score never gets less weight.
    for row_w, row_s in zip(w, values, strict=True):
        sel = np.flatnonzero(row_w > 0)
        for a in sel:
            for b in sel:
                if row_s[a] > row_s[b]:
                    assert row_w[a] > row_w[b]
                if row_s[a] == row_s[b]:
                    assert row_w[a] == pytest.approx(row_w[b], abs=1e-15)
