from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from py_finance.errors import ConfigError
from py_finance.features.technical import FeatureConfig, build_features, cross_sectional_zscore


def _prices(n=80, k=4, seed=0):
    rng = np.random.default_rng(seed)
    rets = rng.normal(0.0005, 0.02, size=(n, k))
    idx = pd.bdate_range("2020-01-01", periods=n)
    return pd.DataFrame(100 * np.exp(np.cumsum(rets, axis=0)), index=idx, columns=list("ABCD")[:k])


def test_momentum_is_the_trailing_total_return():
    px = _prices()
    feats = build_features(px, FeatureConfig(momentum_windows=(5,), volatility_windows=(20,)))
    t = px.index[70]
    assert feats.loc[(t, "B"), "mom_5"] == pytest.approx(
        px["B"].iloc[70] / px["B"].iloc[65] - 1, rel=1e-5
    )


def test_volatility_is_annualised_std_of_log_returns():
    px = _prices()
    feats = build_features(px, FeatureConfig(momentum_windows=(5,), volatility_windows=(20,)))
    t = px.index[70]
    logret = np.log(px["C"]).diff().iloc[51:71]
    assert feats.loc[(t, "C"), "vol_20"] == pytest.approx(logret.std() * np.sqrt(252), rel=1e-5)


def test_zscores_have_zero_mean_and_unit_std_per_session():
    px = _prices()
    feats = build_features(px, FeatureConfig())
    g = feats["z_mom_20"].astype("float64").groupby(level="session")
    assert np.allclose(g.mean(), 0.0, atol=1e-6)
    assert np.allclose(g.std(), 1.0, atol=1e-5)


def test_zscore_ignores_missing_names_and_needs_two():
    wide = pd.DataFrame({"A": [1.0, 1.0], "B": [3.0, np.nan], "C": [np.nan, np.nan]})
    z = cross_sectional_zscore(wide)
    assert z.loc[0, "A"] == pytest.approx(-np.sqrt(0.5))
    assert z.iloc[1].isna().all()


def test_warm_up_rows_are_dropped_and_features_are_float32():
    px = _prices()
    cfg = FeatureConfig()
    feats = build_features(px, cfg)
    first = feats.index.get_level_values("session").min()
    assert first == px.index[cfg.lookback]
    assert set(feats.dtypes) == {np.dtype("float32")}


def test_feature_at_t_ignores_later_prices():
    px = _prices()
    changed = px.copy()
    changed.iloc[60:] *= 3.0
    a = build_features(px, FeatureConfig())
    b = build_features(changed, FeatureConfig())
    cut = px.index[59]
    pd.testing.assert_frame_equal(a.loc[:cut], b.loc[:cut])


def test_bad_windows_are_config_errors():
    with pytest.raises(ConfigError):
        FeatureConfig(volatility_windows=(1,))
