from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from py_finance.backtest import BacktestConfig, run_backtest
from py_finance.features.labels import LabelConfig, forward_returns, target_column

SESSIONS = pd.bdate_range("2021-01-04", periods=12)
# A hand-made series: prices chosen so every return differs.
PRICES = pd.DataFrame(
    {
        "A": [100, 101, 103, 102, 106, 110, 108, 111, 115, 117, 116, 120],
        "B": [50, 49, 48, 50, 51, 50, 52, 53, 51, 54, 55, 56],
    },
    index=SESSIONS,
    dtype="float64",
)


@pytest.mark.parametrize("horizon", [1, 5])
def test_label_of_t_is_the_return_from_the_fill_at_t_plus_1(horizon):
    labels = forward_returns(PRICES, LabelConfig(horizon=horizon))
    t = SESSIONS[2]
    got = labels.loc[(t, "A"), f"fwd_ret_{horizon}"]
    expected = PRICES["A"].iloc[2 + 1 + horizon] / PRICES["A"].iloc[2 + 1] - 1
    assert got == pytest.approx(expected, rel=1e-12)
    assert labels.loc[(t, "A"), "label_end"] == SESSIONS[2 + 1 + horizon]


def test_label_excludes_the_decision_day_return():
    # The close-to-close return from t to t+1 happens before the fill: it is not in the label.
    labels = forward_returns(PRICES, LabelConfig(horizon=1))
    t = SESSIONS[0]
    wrong = PRICES["A"].iloc[1] / PRICES["A"].iloc[0] - 1
    assert labels.loc[(t, "A"), "fwd_ret_1"] != pytest.approx(wrong)


def test_rows_without_a_complete_window_are_dropped():
    labels = forward_returns(PRICES, LabelConfig(horizon=5))
    last = labels.index.get_level_values("session").max()
    assert last == SESSIONS[len(SESSIONS) - 1 - 1 - 5]


def test_rank_target_is_cross_sectional():
    labels = forward_returns(PRICES, LabelConfig(horizon=1))
    ranks = labels[target_column(LabelConfig(horizon=1))].groupby(level="session")
    assert (ranks.max() == 1.0).all()


def test_backtest_earns_exactly_the_label_when_holding_for_the_horizon():
    """Label and fill line up: a weight decided at t earns fwd_ret_h of t, cost-free."""
    h, t = 3, 2
    labels = forward_returns(PRICES, LabelConfig(horizon=h))
    weights = pd.DataFrame(np.nan, index=SESSIONS, columns=PRICES.columns)
    weights.iloc[:t] = 0.0
    weights.iloc[t] = [1.0, 0.0]  # decided at the close of t, fills at the close of t+1
    weights.iloc[t + h] = [0.0, 0.0]  # decided at t+h, sells at the close of t+h+1
    result = run_backtest(PRICES, weights, BacktestConfig(cost_bps=0.0, initial_cash=1000.0))
    earned = result.equity.iloc[t + 1 + h] / result.equity.iloc[t + 1] - 1
    assert earned == pytest.approx(labels.loc[(SESSIONS[t], "A"), f"fwd_ret_{h}"], rel=1e-12)
    # Nothing is earned between the decision and the fill.
    assert result.equity.iloc[t + 1] == pytest.approx(1000.0)


def test_multi_horizon_labels_carry_their_own_label_end():
    from py_finance.features.labels import multi_horizon_labels

    labels = multi_horizon_labels(PRICES, horizons=(1, 5))
    t = SESSIONS[2]
    assert labels.loc[(t, "A"), "label_end_1"] == SESSIONS[2 + 1 + 1]
    assert labels.loc[(t, "A"), "label_end_5"] == SESSIONS[2 + 1 + 5]
    assert labels.loc[(t, "A"), "fwd_ret_5"] == pytest.approx(
        PRICES["A"].iloc[8] / PRICES["A"].iloc[3] - 1
    )
    late = SESSIONS[len(SESSIONS) - 3]  # h=1 known, h=5 not
    assert not np.isnan(labels.loc[(late, "A"), "fwd_ret_1"])
    assert np.isnan(labels.loc[(late, "A"), "fwd_ret_5"])
    assert pd.isna(labels.loc[(late, "A"), "label_end_5"])
