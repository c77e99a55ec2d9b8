"""Invariants of the whole overlay chain, vol targeting, sector tilts, data-driven regimes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from py_finance.portfolio import PortfolioConfig
from py_finance.risk import (
    REGIMES,
    DataDrivenRegimePolicy,
    RegimePolicyConfig,
    RiskConfig,
    SectorTiltConfig,
    apply_sector_tilt,
    apply_vol_target,
)
from py_finance.risk.targets import strategy_returns, target_weights

SECTORS = ["Information Technology", "Health Care", "Utilities", "Energy", "Financials", "Other"]
TOL = 1e-9


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_overlays_never_break_caps_for_arbitrary_scores_sectors_regimes(
    data: st.DataObject,
) -> None:
    n_rows = data.draw(st.integers(1, 12))
    n_cols = data.draw(st.integers(1, 14))
    scores = data.draw(
        st.lists(
            st.lists(
                st.one_of(st.floats(-1e6, 1e6), st.just(float("nan"))),
                min_size=n_cols,
                max_size=n_cols,
            ),
            min_size=n_rows,
            max_size=n_rows,
        )
    )
    sectors = data.draw(st.lists(st.sampled_from(SECTORS), min_size=n_cols, max_size=n_cols))
    regimes = data.draw(
        st.lists(st.sampled_from([*REGIMES, "unknown"]), min_size=n_rows, max_size=n_rows)
    )
    max_position = data.draw(st.floats(0.05, 1.0))
    max_sector = data.draw(st.floats(0.1, 1.0))
    top_k = data.draw(st.integers(1, n_cols))
    weighting = data.draw(st.sampled_from(["equal", "score", "inverse_vol"]))
    order = data.draw(st.permutations(list(RiskConfig().order)))
    leverage = data.draw(st.sampled_from([1.0, 3.0]))
    risk = RiskConfig(
        max_position=max_position,
        max_sector=max_sector,
        vol_target=data.draw(st.sampled_from([None, 0.05, 0.5])),
        max_leverage=leverage,
        vol_lookback=5,
        sector_tilts=data.draw(st.sampled_from([None, SectorTiltConfig()])),
        order=tuple(order),
    )
    idx = pd.date_range("2021-01-04", periods=n_rows, freq="B", tz="UTC")
    cols = [f"S{i}" for i in range(n_cols)]
    rng = np.random.default_rng(data.draw(st.integers(0, 1000)))
    rets = pd.DataFrame(rng.normal(0, 0.02, (n_rows, n_cols)), index=idx, columns=cols)
    w = target_weights(
        pd.DataFrame(scores, index=idx, columns=cols),
        portfolio=PortfolioConfig(top_k=top_k, weighting=weighting),
        risk=risk,
        sectors=sectors,
        regimes=pd.Series(regimes, index=idx),
        policy=data.draw(st.sampled_from([None, RegimePolicyConfig()])),
        returns=rets,
    ).to_numpy()
    assert np.isfinite(w).all()
    assert (w >= 0.0).all()
    assert (w <= max_position + TOL).all()
    assert (w.sum(axis=1) <= 1.0 + TOL).all()
    for sector in set(sectors):
        cols_in = [i for i, s in enumerate(sectors) if s == sector]
        assert (w[:, cols_in].sum(axis=1) <= max_sector + TOL).all()


def test_vol_target_scales_to_target_and_never_levers_by_default() -> None:
    rng = np.random.default_rng(0)
    rets = rng.normal(0, 0.02, (200, 4))
    w = np.full((200, 4), 0.25)
    out = apply_vol_target(w, rets, 0.10, lookback=63)
    port = rets @ w[0]
    expected = 0.10 / (np.std(port[100 - 62 : 101], ddof=1) * np.sqrt(252))
    assert out[100, 0] == pytest.approx(0.25 * expected, rel=1e-12)
    # Target above the realised vol: no leverage (scale 1).
    np.testing.assert_allclose(apply_vol_target(w, rets, 5.0, lookback=63), w)
    # With leverage allowed, the row total stays <= 1 and names <= their cap.
    lev = apply_vol_target(w * 0.5, rets, 5.0, lookback=63, max_leverage=4.0, max_position=0.3)
    assert lev.max() <= 0.3 + 1e-12
    assert (lev.sum(axis=1) <= 1 + 1e-12).all()


def test_sector_tilt_moves_weight_toward_the_regime_groups() -> None:
    sectors = ["Information Technology", "Utilities", "Energy"]
    w = np.array([1 / 3, 1 / 3, 1 / 3])
    tilts = SectorTiltConfig()
    bull = apply_sector_tilt(w, sectors, "bull_low_vol", tilts)
    bear = apply_sector_tilt(w, sectors, "bear_high_vol", tilts)
    raw = np.array([1.3, 0.8, 1.0])
    np.testing.assert_allclose(bull, raw / raw.sum())
    assert bear[1] > bear[2] > bear[0]
    assert bull.sum() == pytest.approx(1.0) and bear.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(apply_sector_tilt(w, sectors, "bull_high_vol", tilts), w)
    capped = apply_sector_tilt(w, sectors, "bear_high_vol", tilts, max_position=0.34)
    assert capped.max() <= 0.34 + 1e-12


def test_data_driven_multipliers_use_no_future_data() -> None:
    rng = np.random.default_rng(3)
    n = 600
    regimes = list(rng.choice(REGIMES, n))
    # The strategy loses in bear_high_vol and wins elsewhere.
    prev = np.array(["unknown", *regimes[:-1]])
    r = np.where(prev == "bear_high_vol", -0.002, 0.001) + rng.normal(0, 0.01, n)
    r[0] = np.nan
    policy = DataDrivenRegimePolicy(target_sharpe=0.5, prior_sessions=100, min_sessions=30)
    full = policy.row_multipliers(regimes, r)
    for t in (1, 40, 200, 450, 599):
        cut = policy.row_multipliers(regimes[: t + 1], r[: t + 1])
        np.testing.assert_array_equal(cut, full[: t + 1])
        # Changing anything from session t on leaves row t unchanged.
        poisoned = r.copy()
        poisoned[t:] = -0.5
        assert policy.row_multipliers(regimes, poisoned)[t] == full[t]
    assert ((full >= 0) & (full <= 1)).all()
    late = np.array(regimes[400:])
    assert full[400:][late == "bear_high_vol"].mean() < 0.5
    assert full[400:][late == "bull_low_vol"].mean() > 0.9
    assert (full[:30] == 1.0).all()


def test_data_driven_target_weights_are_causal() -> None:
    rng = np.random.default_rng(5)
    n, m = 300, 6
    idx = pd.date_range("2020-01-02", periods=n, freq="B", tz="UTC")
    scores = pd.DataFrame(rng.normal(size=(n, m)), index=idx)
    rets = pd.DataFrame(rng.normal(0, 0.02, (n, m)), index=idx)
    regimes = pd.Series(rng.choice(REGIMES, n), index=idx)
    kw = dict(
        portfolio=PortfolioConfig(top_k=3, rebalance_every=5),
        risk=RiskConfig(max_position=None, max_sector=None),
        regimes=regimes,
        policy=DataDrivenRegimePolicy(min_sessions=10, prior_sessions=20),
    )
    full = target_weights(scores, returns=rets, **kw)  # type: ignore[arg-type]
    t = 201
    cut = target_weights(scores.iloc[:t], returns=rets.iloc[:t], **kw)  # type: ignore[arg-type]
    pd.testing.assert_frame_equal(cut, full.iloc[:t])


def test_strategy_returns_hold_between_rebalances() -> None:
    idx = pd.RangeIndex(4)
    w = pd.DataFrame([[1.0, 0.0], [np.nan, np.nan], [0.0, 1.0], [np.nan, np.nan]], index=idx)
    r = pd.DataFrame([[0.1, 0.2], [0.01, 0.02], [0.03, 0.04], [0.05, 0.06]], index=idx)
    np.testing.assert_allclose(strategy_returns(w, r), [np.nan, 0.01, 0.03, 0.06])
