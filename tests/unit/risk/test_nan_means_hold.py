"""NaN target weight = "no order, keep what is held", in the overlays as in the engine."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from py_finance.backtest import BacktestConfig, run_backtest
from py_finance.risk import (
    RegimePolicyConfig,
    RiskConfig,
    SectorTiltConfig,
    ThrottleState,
    apply_overlays,
    apply_regime_exposure,
    apply_sector_tilt,
    apply_static_overlays,
    apply_vol_target,
    cap_positions,
    cap_sectors,
)

nan = np.nan
SECTORS = ["Information Technology", "Utilities", "Energy", "Utilities"]
_SIGNS = np.array([1.0, -1.0, 1.0, -1.0])


def test_static_overlays_keep_a_nan_weight_nan() -> None:
    risk = RiskConfig(max_position=None, max_sector=None)
    out = apply_static_overlays(np.array([0.5, nan]), None, None, risk, None)
    assert out[0] == 0.5
    assert np.isnan(out[1])


@pytest.mark.parametrize(
    "overlay",
    [
        lambda w: cap_positions(w, 0.3),
        lambda w: cap_sectors(w, SECTORS, 0.4),
        lambda w: apply_regime_exposure(w, "bear", RegimePolicyConfig()),
        lambda w: apply_vol_target(w, np.full((len(np.atleast_2d(w)), 4), 0.01) * _SIGNS, 0.1),
        lambda w: apply_sector_tilt(w, SECTORS, "bear", SectorTiltConfig(), max_position=0.5),
        lambda w: apply_static_overlays(
            w, SECTORS, "bear", RiskConfig(max_position=0.3, max_sector=0.4), None
        ),
    ],
)
@pytest.mark.parametrize("shape", ["row", "matrix"])
def test_every_overlay_returns_nan_where_it_got_nan_and_sizes_the_rest_as_if_zero(
    overlay, shape: str
) -> None:
    w = np.array([0.45, nan, 0.25, 0.2])
    zero = np.where(np.isnan(w), 0.0, w)
    if shape == "matrix":
        w = np.vstack([w, np.full(4, nan), w])
        zero = np.vstack([zero, np.zeros(4), zero])
    out, ref = overlay(w), overlay(zero)
    np.testing.assert_array_equal(np.isnan(out), np.isnan(w))
    np.testing.assert_array_equal(out[~np.isnan(w)], ref[~np.isnan(w)])


def test_live_overlays_keep_nan_through_the_throttle() -> None:
    risk = RiskConfig(
        drawdown_throttle=0.1, throttle_exposure=0.5, max_position=None, max_sector=None
    )
    throttle = ThrottleState(peak=100.0, state="REDUCING", sessions_in_state=1)
    out = apply_overlays(
        np.array([0.6, nan]), sectors=None, regime="bull", risk=risk, policy=None, throttle=throttle
    )
    assert out[0] == pytest.approx(0.3)
    assert np.isnan(out[1])


def test_a_name_with_a_nan_weight_after_the_overlays_is_held_by_the_engine() -> None:
    idx = pd.RangeIndex(4)
    prices = pd.DataFrame({"A": [10.0, 10.0, 11.0, 12.0], "B": [20.0, 20.0, 22.0, 21.0]}, index=idx)
    raw = np.array([[0.5, 0.5], [0.5, nan], [nan, nan], [nan, nan]])
    risk = RiskConfig(max_position=0.5, max_sector=None)
    shaped = apply_static_overlays(raw, None, None, risk, None)
    res = run_backtest(
        prices, pd.DataFrame(shaped, index=idx, columns=["A", "B"]), BacktestConfig()
    )
    held_b = res.weights["B"] * res.equity
    # B bought at session 1 is not sold at session 2 (its weight is NaN: no order).
    assert held_b.iloc[2] == pytest.approx(held_b.iloc[1] * 22.0 / 20.0, rel=1e-12)
