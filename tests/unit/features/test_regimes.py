from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from py_finance.errors import ConfigError
from py_finance.features.regimes import REGIME_NAMES, RegimeConfig, detect_regimes, name_clusters


def test_centroids_are_named_by_return_and_volatility():
    centers = np.array([[-1.5, 2.0], [0.8, -0.9], [-0.4, -0.5], [1.1, 0.9]])
    assert name_clusters(centers) == [
        "bear_high_vol",
        "bull_low_vol",
        "bear_low_vol",
        "bull_high_vol",
    ]


def test_names_are_a_permutation_whatever_the_centroids():
    rng = np.random.default_rng(3)
    for _ in range(20):
        names = name_clusters(rng.normal(size=(4, 2)))
        assert sorted(names) == sorted(REGIME_NAMES)


def _index(n=1600, seed=1):
    rng = np.random.default_rng(seed)
    vol = np.where((np.arange(n) // 150) % 3 == 0, 0.03, 0.008)
    drift = np.where((np.arange(n) // 110) % 2 == 0, 0.001, -0.0008)
    idx = pd.bdate_range("2000-01-03", periods=n)
    return pd.Series(100 * np.exp(np.cumsum(drift + vol * rng.standard_normal(n))), index=idx)


def test_regimes_are_fitted_on_the_past_only():
    out = detect_regimes(_index(), RegimeConfig(min_train_sessions=252))
    known = out[out["regime"] != "unknown"]
    assert len(known) > 0
    assert (known["fit_end"] < known.index).all()
    assert set(known["regime"]) <= set(REGIME_NAMES)


def test_sessions_before_the_first_fit_are_unknown():
    cfg = RegimeConfig(min_train_sessions=252)
    out = detect_regimes(_index(), cfg)
    first_known = out.index[out["regime"] != "unknown"][0]
    assert out.loc[:first_known, "market_ret"].notna().sum() > cfg.min_train_sessions
    assert first_known.is_year_start or first_known == out.loc[str(first_known.year)].index[0]


def test_high_volatility_sessions_get_high_vol_names():
    out = detect_regimes(_index(), RegimeConfig(min_train_sessions=252))
    known = out[out["regime"] != "unknown"]
    high = known["regime"].str.endswith("high_vol")
    assert known.loc[high, "market_vol"].mean() > 1.5 * known.loc[~high, "market_vol"].mean()


def test_regime_of_t_does_not_change_when_later_data_changes():
    index = _index()
    cut = index.index[1000]
    changed = index.copy()
    changed.iloc[1001:] *= np.linspace(1, 0.3, len(index) - 1001)
    a = detect_regimes(index, RegimeConfig(min_train_sessions=252)).loc[:cut]
    b = detect_regimes(changed, RegimeConfig(min_train_sessions=252)).loc[:cut]
    pd.testing.assert_frame_equal(a, b)


def test_config_checks():
    with pytest.raises(ConfigError):
        RegimeConfig(n_clusters=3)
    with pytest.raises(ConfigError):
        RegimeConfig(refit="weekly")
