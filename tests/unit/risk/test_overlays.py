from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from py_finance.errors import ConfigError
from py_finance.risk import (
    REGIMES,
    RegimePolicyConfig,
    RiskConfig,
    ThrottleState,
    apply_overlays,
    apply_regime_exposure,
    apply_static_overlays,
    cap_positions,
    cap_sectors,
    throttle_multiplier,
)

TOL = 1e-12


@st.composite
def weight_matrices(draw: st.DrawFn) -> np.ndarray:
    """Long-only rows summing to at most 1, many zeros, a few big names."""
    n_rows = draw(st.integers(1, 5))
    n_cols = draw(st.integers(1, 10))
    raw = draw(
        arrays(
            np.float64,
            (n_rows, n_cols),
            elements=st.one_of(st.just(0.0), st.floats(1e-4, 1.0), st.floats(0.0, 1e-3)),
        )
    )
    totals = raw.sum(axis=1, keepdims=True)
    scale = draw(st.floats(0.0, 1.0))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, raw / np.where(totals > 0, totals, 1.0) * scale, 0.0)


def _sector_totals(w: np.ndarray, sectors: list[str]) -> dict[str, np.ndarray]:
    arr = np.atleast_2d(w)
    return {
        s: arr[:, [i for i, x in enumerate(sectors) if x == s]].sum(axis=1) for s in set(sectors)
    }


# ---------------------------------------------------------------- position cap


def test_cap_positions_redistributes_proportionally_to_weight() -> None:
    w = np.array([0.5, 0.2, 0.1, 0.0])
    out = cap_positions(w, 0.3)
    # Excess 0.2 goes to 0.2 and 0.1 in a 2:1 ratio: 0.2 + 0.4/3 = 0.333 > cap, so it is
    # capped and its 0.0333 excess goes to the last held name.
    np.testing.assert_allclose(out, [0.3, 0.3, 0.2, 0.0], atol=TOL)


def test_cap_positions_keeps_unplaceable_excess_in_cash() -> None:
    out = cap_positions(np.array([0.6, 0.4, 0.0]), 0.25)
    np.testing.assert_allclose(out, [0.25, 0.25, 0.0], atol=TOL)


def test_cap_positions_leaves_compliant_rows_alone() -> None:
    w = np.array([[0.1, 0.2, 0.05], [0.0, 0.0, 0.0]])
    np.testing.assert_array_equal(cap_positions(w, 0.2), w)


def test_cap_positions_does_not_modify_its_input() -> None:
    w = np.array([0.9, 0.1])
    cap_positions(w, 0.5)
    np.testing.assert_array_equal(w, [0.9, 0.1])


@settings(max_examples=300, deadline=None)
@given(w=weight_matrices(), cap=st.floats(0.01, 1.0))
def test_position_cap_never_exceeded_and_total_never_increases(w: np.ndarray, cap: float) -> None:
    out = cap_positions(w, cap)
    assert out.shape == w.shape
    assert (out <= cap + TOL).all()
    assert (out.sum(axis=1) <= w.sum(axis=1) + TOL).all()
    assert (out[w == 0] == 0).all()
    assert (out >= 0).all()
    held = (w > 0).sum(axis=1)
    # Whatever fits under the caps of the held names is kept invested.
    expected_total = np.minimum(w.sum(axis=1), held * cap)
    np.testing.assert_allclose(out.sum(axis=1), expected_total, atol=1e-9)
    # Names left below the cap were all scaled by one common factor (proportional).
    for row_in, row_out in zip(w, out, strict=True):
        free = (row_in > 1e-9) & (row_out < cap - 1e-9)
        if free.sum() >= 2:
            ratio = row_out[free] / row_in[free]
            np.testing.assert_allclose(ratio, ratio[0], rtol=1e-9)


@settings(max_examples=100, deadline=None)
@given(w=weight_matrices(), cap=st.floats(0.01, 1.0))
def test_cap_positions_row_by_row_equals_matrix(w: np.ndarray, cap: float) -> None:
    rows = np.vstack([cap_positions(row, cap) for row in w])
    np.testing.assert_allclose(cap_positions(w, cap), rows, atol=1e-15)


# ---------------------------------------------------------------- sector cap


def test_cap_sectors_scales_sector_and_redistributes() -> None:
    w = np.array([0.3, 0.3, 0.2, 0.1])
    sectors = ["tech", "tech", "energy", "health"]
    out = cap_sectors(w, sectors, 0.4)
    # tech 0.6 -> 0.4 (each 0.2); 0.2 excess to energy/health 2:1 -> 0.3333, 0.1667.
    np.testing.assert_allclose(out, [0.2, 0.2, 0.2 + 0.4 / 3, 0.1 + 0.2 / 3], atol=TOL)


def test_cap_sectors_respects_max_position_when_redistributing() -> None:
    w = np.array([0.3, 0.3, 0.2, 0.1])
    sectors = ["tech", "tech", "energy", "health"]
    out = cap_sectors(w, sectors, 0.4, max_position=0.25)
    # energy can only grow to 0.25; the rest goes to health (0.15), which still fits.
    np.testing.assert_allclose(out, [0.2, 0.2, 0.25, 0.25], atol=TOL)
    out2 = cap_sectors(w, sectors, 0.4, max_position=0.22)
    np.testing.assert_allclose(out2, [0.2, 0.2, 0.22, 0.22], atol=TOL)


def test_cap_sectors_leftover_stays_cash_when_every_sector_is_full() -> None:
    out = cap_sectors(np.array([0.7, 0.3]), ["a", "b"], 0.4)
    np.testing.assert_allclose(out, [0.4, 0.4], atol=TOL)


def test_cap_sectors_needs_one_sector_per_column() -> None:
    with pytest.raises(ValueError, match="one sector per column"):
        cap_sectors(np.array([0.5, 0.5]), ["a"], 0.4)


@settings(max_examples=300, deadline=None)
@given(
    data=st.data(),
    w=weight_matrices(),
    cap=st.floats(0.05, 1.0),
    pos_cap=st.one_of(st.none(), st.floats(0.02, 1.0)),
)
def test_sector_cap_never_exceeded_and_total_never_increases(
    data: st.DataObject, w: np.ndarray, cap: float, pos_cap: float | None
) -> None:
    sectors = data.draw(st.lists(st.sampled_from("ABCD"), min_size=w.shape[1], max_size=w.shape[1]))
    base = w if pos_cap is None else cap_positions(w, pos_cap)
    out = cap_sectors(base, sectors, cap, max_position=pos_cap)
    assert out.shape == w.shape
    for totals in _sector_totals(out, sectors).values():
        assert (totals <= cap + TOL).all()
    if pos_cap is not None:
        assert (out <= pos_cap + TOL).all()
    assert (out.sum(axis=1) <= base.sum(axis=1) + TOL).all()
    assert (out[base == 0] == 0).all()
    # Sectors already under the cap are never cut.
    before = _sector_totals(base, sectors)
    after = _sector_totals(out, sectors)
    for s in before:
        under = before[s] <= cap
        assert (after[s][under] >= before[s][under] - TOL).all()


# ---------------------------------------------------------------- regime exposure


@settings(max_examples=100, deadline=None)
@given(w=weight_matrices(), data=st.data())
def test_regime_multipliers_applied_exactly(w: np.ndarray, data: st.DataObject) -> None:
    policy = RegimePolicyConfig(
        exposure={r: data.draw(st.floats(0.0, 1.0)) for r in REGIMES}, unknown_exposure=0.6
    )
    regimes = data.draw(
        st.lists(st.sampled_from([*REGIMES, "unknown"]), min_size=len(w), max_size=len(w))
    )
    out = apply_regime_exposure(w, regimes, policy)
    for i, regime in enumerate(regimes):
        expected = policy.exposure.get(regime, 0.6)
        np.testing.assert_array_equal(out[i], w[i] * expected)


def test_regime_exposure_single_row_takes_a_string() -> None:
    policy = RegimePolicyConfig()
    out = apply_regime_exposure(np.array([0.5, 0.5]), "bear_high_vol", policy)
    np.testing.assert_array_equal(out, [0.125, 0.125])


def test_regime_exposure_needs_one_regime_per_row() -> None:
    with pytest.raises(ValueError, match="one regime per row"):
        apply_regime_exposure(np.ones((3, 2)) / 2, ["bull_low_vol"], RegimePolicyConfig())


# ---------------------------------------------------------------- composition


def test_apply_overlays_runs_caps_then_regime_then_throttle() -> None:
    w = np.array([0.5, 0.3, 0.2, 0.0])
    sectors = ["a", "a", "b", "c"]
    risk = RiskConfig(max_position=0.35, max_sector=0.6, throttle_exposure=0.5)
    policy = RegimePolicyConfig()
    throttle = ThrottleState(peak=100.0, state="REDUCING", sessions_in_state=1)
    out = apply_overlays(
        w, sectors=sectors, regime="bull_high_vol", risk=risk, policy=policy, throttle=throttle
    )
    step = cap_positions(w, 0.35)
    step = cap_sectors(step, sectors, 0.6, max_position=0.35)
    expected = step * 0.4 * 0.5
    np.testing.assert_allclose(out, expected, atol=1e-15)
    # Caps first: scaling before capping would leave the book far below the caps.
    assert out.max() == pytest.approx(0.35 * 0.4 * 0.5)


def test_apply_overlays_skips_switched_off_overlays() -> None:
    w = np.array([0.9, 0.1])
    risk = RiskConfig(max_position=None, max_sector=None, drawdown_throttle=None)
    throttle = ThrottleState(peak=1.0, state="HALTED", sessions_in_state=1)
    out = apply_overlays(
        w, sectors=None, regime="bear_high_vol", risk=risk, policy=None, throttle=throttle
    )
    np.testing.assert_array_equal(out, w)


def test_apply_overlays_halted_goes_to_cash() -> None:
    out = apply_overlays(
        np.array([0.2, 0.2]),
        sectors=["a", "b"],
        regime="bull_low_vol",
        risk=RiskConfig(),
        policy=None,
        throttle=ThrottleState(peak=1.0, state="HALTED", sessions_in_state=3),
    )
    np.testing.assert_array_equal(out, [0.0, 0.0])


def test_sector_cap_without_sector_map_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="sector"):
        apply_overlays(
            np.array([0.5, 0.5]),
            sectors=None,
            regime="bull_low_vol",
            risk=RiskConfig(max_sector=0.4),
            policy=None,
            throttle=None,
        )


@settings(max_examples=100, deadline=None)
@given(w=weight_matrices(), data=st.data())
def test_static_overlays_equal_row_overlays_without_throttle(
    w: np.ndarray, data: st.DataObject
) -> None:
    sectors = data.draw(st.lists(st.sampled_from("XYZ"), min_size=w.shape[1], max_size=w.shape[1]))
    regimes = data.draw(st.lists(st.sampled_from(REGIMES), min_size=len(w), max_size=len(w)))
    risk = RiskConfig(max_position=0.2, max_sector=0.45)
    policy = RegimePolicyConfig()
    matrix = apply_static_overlays(w, sectors, regimes, risk, policy)
    rows = np.vstack(
        [
            apply_overlays(
                row, sectors=sectors, regime=reg, risk=risk, policy=policy, throttle=None
            )
            for row, reg in zip(w, regimes, strict=True)
        ]
    )
    np.testing.assert_allclose(matrix, rows, atol=1e-15)


def test_throttle_multiplier_values() -> None:
    cfg = RiskConfig(throttle_exposure=0.3)
    assert throttle_multiplier(None, cfg) == 1.0
    assert throttle_multiplier(ThrottleState(1.0, "ACTIVE", 1), cfg) == 1.0
    assert throttle_multiplier(ThrottleState(1.0, "REDUCING", 1), cfg) == 0.3
    assert throttle_multiplier(ThrottleState(1.0, "HALTED", 1), cfg) == 0.0
    with pytest.raises(ValueError):
        ThrottleState(1.0, "PAUSED", 1)
