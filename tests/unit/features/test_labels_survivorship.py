"""Labels of names that delist inside their window, and labels of members only."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from py_finance.features.labels import LabelConfig, forward_returns

SESSIONS = pd.bdate_range("2020-01-01", periods=8)


def _prices():
    return pd.DataFrame(
        {
            "A": np.linspace(100.0, 107.0, 8),
            "B": [10.0, 11.0, 12.0, 13.0, np.nan, np.nan, np.nan, np.nan],
            "C": np.linspace(20.0, 27.0, 8),
        },
        index=SESSIONS,
    )


def test_a_delisting_inside_the_window_is_the_labels_exit():
    cfg = LabelConfig(horizon=2)
    delist = pd.DataFrame({"symbol": ["B"], "date": [SESSIONS[4]], "delisting_return": [-1.0]})
    with_d = forward_returns(_prices(), cfg, 1, delistings=delist)
    without = forward_returns(_prices(), cfg, 1)
    # decided at t=1: entry at t=2 (12), exit at t=4 = the delisting: 13 x 0 -> -100%
    assert with_d.loc[(SESSIONS[1], "B"), "fwd_ret_2"] == pytest.approx(-1.0)
    assert with_d.loc[(SESSIONS[2], "B"), "fwd_ret_2"] == pytest.approx(-1.0)
    # without the delisting those rows vanish: the dying name is left out of training
    assert (SESSIONS[1], "B") not in without.index
    # a decision at t=3 cannot enter (the fill session is the delisting): no label
    assert (SESSIONS[3], "B") not in with_d.index
    # the other names are untouched
    pd.testing.assert_series_equal(
        with_d.xs("A", level="symbol")["fwd_ret_2"], without.xs("A", level="symbol")["fwd_ret_2"]
    )


def test_ranks_are_taken_among_members_only():
    cfg = LabelConfig(horizon=1)
    members = pd.DataFrame(True, index=SESSIONS, columns=["A", "B", "C"])
    members.loc[:, "C"] = False
    labels = forward_returns(_prices(), cfg, 1, members=members)
    assert "C" not in labels.index.get_level_values("symbol")
    ranks = labels["fwd_rank_1"].unstack("symbol")
    assert set(ranks.loc[SESSIONS[0]].dropna()) == {0.5, 1.0}  # two members ranked
