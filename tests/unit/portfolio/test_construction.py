from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from py_finance.errors import ConfigError
from py_finance.portfolio import PortfolioConfig, topk_weights, trailing_volatility


def _frame(rows: list[list[float]]) -> pd.DataFrame:
    cols = [f"S{i}" for i in range(len(rows[0]))]
    idx = pd.date_range("2024-01-02", periods=len(rows), freq="B", tz="UTC")
    return pd.DataFrame(rows, index=idx, columns=cols, dtype=float)


def _held(w: pd.DataFrame) -> list[set[str]]:
    return [set(w.columns[row > 0]) for row in w.to_numpy()]


def test_n_drop_replaces_at_most_n_names_per_rebalance() -> None:
    scores = _frame(
        [
            [5, 4, 3, 2, 1, 0],
            [0, 1, 2, 3, 4, 5],  # ranking fully reversed
            [0, 1, 2, 3, 4, 5],
        ]
    )
    free = topk_weights(scores, PortfolioConfig(top_k=3))
    drop1 = topk_weights(scores, PortfolioConfig(top_k=3, n_drop=1))
    assert _held(free) == [{"S0", "S1", "S2"}, {"S3", "S4", "S5"}, {"S3", "S4", "S5"}]
    # TopkDropout: the worst held name (S0, then S1) goes, the best candidate comes in.
    assert _held(drop1) == [{"S0", "S1", "S2"}, {"S1", "S2", "S5"}, {"S2", "S4", "S5"}]
    np.testing.assert_allclose(drop1.sum(axis=1), 1.0)


def test_n_drop_cuts_turnover() -> None:
    rng = np.random.default_rng(4)
    scores = pd.DataFrame(rng.normal(size=(200, 30)))
    free = topk_weights(scores, PortfolioConfig(top_k=5))
    sticky = topk_weights(scores, PortfolioConfig(top_k=5, n_drop=1))
    turn = lambda w: np.abs(np.diff(w.to_numpy(), axis=0)).sum()  # noqa: E731
    assert turn(sticky) < 0.5 * turn(free)
    assert ((sticky > 0).sum(axis=1) == 5).all()


def test_hold_buffer_keeps_a_name_until_it_leaves_the_buffer() -> None:
    scores = _frame([[5, 4, 3, 2, 1], [5, 3, 2, 4, 1], [5, 1, 2, 4, 3]])
    w = topk_weights(scores, PortfolioConfig(top_k=2, hold_buffer=1))
    # Row 1: S1 ranks 3rd (within 2 + 1): kept. Row 2: S1 ranks 5th: replaced by S3.
    assert _held(w) == [{"S0", "S1"}, {"S0", "S1"}, {"S0", "S3"}]


def test_previous_holdings_seed_the_first_row() -> None:
    scores = _frame([[5, 4, 3.5, 3, 1]])
    w = topk_weights(scores, PortfolioConfig(top_k=2, hold_buffer=2), previous=["S3"])
    assert _held(w) == [{"S0", "S3"}]


def test_inverse_vol_weights() -> None:
    scores = _frame([[3, 2, 1, 0]])
    vol = _frame([[0.1, 0.2, 0.4, 0.3]])
    w = topk_weights(scores, PortfolioConfig(top_k=3, weighting="inverse_vol"), volatility=vol)
    inv = np.array([10, 5, 2.5])
    np.testing.assert_allclose(w.to_numpy()[0, :3], inv / inv.sum())
    assert w.iloc[0, 3] == 0.0


def test_uncertainty_weights_and_missing_std_gets_the_median() -> None:
    scores = _frame([[3, 2, 1, 0]])
    std = _frame([[0.5, np.nan, 0.25, 1.0]])
    w = topk_weights(scores, PortfolioConfig(top_k=4, weighting="uncertainty"), uncertainty=std)
    # S1 has no std: it gets the median of the others' 1/std (2, 4, 1) = 2.
    raw = np.array([2.0, 2.0, 4.0, 1.0])
    np.testing.assert_allclose(w.to_numpy()[0], raw / raw.sum())
    with pytest.raises(ConfigError, match="uncertainty"):
        topk_weights(scores, PortfolioConfig(top_k=2, weighting="uncertainty"))


def test_trailing_volatility_uses_only_the_past() -> None:
    rng = np.random.default_rng(1)
    rets = pd.DataFrame(rng.normal(0, 0.01, (60, 3)))
    full = trailing_volatility(rets, 20)
    cut = trailing_volatility(rets.iloc[:40], 20)
    pd.testing.assert_frame_equal(full.iloc[:40], cut)


def test_bad_settings_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="n_drop"):
        PortfolioConfig(top_k=3, n_drop=4)
    with pytest.raises(ConfigError, match="hold_buffer"):
        PortfolioConfig(hold_buffer=-1)
    with pytest.raises(ConfigError, match="weighting"):
        PortfolioConfig(weighting="magic")
