"""The sector cap uses each rebalance's own point-in-time sector labels."""

from __future__ import annotations

import numpy as np
import pandas as pd

from py_finance.pipeline.evaluation import sectors_by_session
from py_finance.portfolio.config import PortfolioConfig
from py_finance.risk.config import RiskConfig
from py_finance.risk.targets import target_weights

SESSIONS = pd.bdate_range("2021-01-04", periods=4)


def test_a_sector_change_moves_the_cap_on_its_session():
    scores = pd.DataFrame([[3.0, 2.0, 1.0, 0.5]] * 4, index=SESSIONS, columns=["A", "B", "C", "D"])
    history = pd.DataFrame(
        {
            "symbol": ["A", "B", "B", "C", "D"],
            "name": ["A", "B", "B", "C", "D"],
            "sector": ["Tech", "Tech", "Energy", "Tech", "Energy"],
            "from": [pd.NaT, pd.NaT, SESSIONS[2], pd.NaT, pd.NaT],
        }
    )
    sectors = sectors_by_session(history, SESSIONS, scores.columns)
    assert isinstance(sectors, pd.DataFrame)
    assert sectors["B"].tolist() == ["Tech", "Tech", "Energy", "Energy"]
    risk = RiskConfig(max_position=0.5, max_sector=0.4, drawdown_throttle=None)
    w = target_weights(
        scores, portfolio=PortfolioConfig(top_k=4, rebalance_every=1), risk=risk, sectors=sectors
    )
    tech = w[["A", "B", "C"]].where(sectors[["A", "B", "C"]] == "Tech", 0.0).sum(axis=1)
    assert np.all(tech <= 0.4 + 1e-12)
    # before the change three names share Tech's 40%; after it only two do
    assert w.loc[SESSIONS[0], "B"] < w.loc[SESSIONS[3], "B"]


def test_labels_that_do_not_change_inside_the_range_are_one_map():
    history = pd.DataFrame(
        {
            "symbol": ["A", "B"],
            "name": ["A", "B"],
            "sector": ["X", "Y"],
            "from": [pd.NaT, SESSIONS[0]],
        }
    )
    sectors = sectors_by_session(history, SESSIONS, pd.Index(["A", "B", "C"]))
    assert isinstance(sectors, pd.Series)
    assert sectors.to_dict() == {"A": "X", "B": "Y", "C": "Unknown"}
