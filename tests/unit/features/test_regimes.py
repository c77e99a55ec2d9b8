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


def _four_state_index(n=2400, seed=7):
    """An index that cycles through clear bull/bear x low/high-vol spells."""
    rng = np.random.default_rng(seed)
    spell = (np.arange(n) // 60) % 4
    drift = np.array([0.002, 0.002, -0.002, -0.002])[spell]
    vol = np.array([0.004, 0.02, 0.004, 0.02])[spell]
    idx = pd.bdate_range("2000-01-03", periods=n)
    return pd.Series(100 * np.exp(np.cumsum(drift + vol * rng.standard_normal(n))), index=idx)


def test_names_are_stable_across_refits():
    from py_finance.features.regimes import fit_regimes, market_features

    cfg = RegimeConfig(min_train_sessions=252)
    feats = market_features(_four_state_index(), cfg)
    ends = [feats.index[i] for i in range(600, len(feats), 250)]
    fits = []
    for e in ends:
        fits.append(fit_regimes(feats, cfg, e, fits[-1] if fits else None))
    # centroids back in raw units: each name's centroid must stay nearest to its own name's
    # centroid in the next fit (a refit never swaps names between clusters)
    raw = [f.centers_ * f.scale_ + f.mean_ for f in fits]
    for a, b, fa, fb in zip(raw, raw[1:], fits, fits[1:], strict=False):
        za = (a - fa.mean_) / fa.scale_
        zb = (b - fa.mean_) / fa.scale_
        for i, name in enumerate(fa.names_):
            nearest = int(((zb - za[i]) ** 2).sum(axis=1).argmin())
            assert fb.names_[nearest] == name
    assert all(sorted(f.names_) == sorted(REGIME_NAMES) for f in fits)


def test_prototype_naming_alone_can_swap_names_on_a_refit():
    # the failure anchored naming prevents (same data as above)
    from py_finance.features.regimes import fit_regimes, market_features

    cfg = RegimeConfig(min_train_sessions=252, naming="prototype")
    feats = market_features(_four_state_index(), cfg)
    a = fit_regimes(feats, cfg, feats.index[850])
    b = fit_regimes(feats, cfg, feats.index[1100])
    za = a.centers_
    zb = (b.centers_ * b.scale_ + b.mean_ - a.mean_) / a.scale_
    nearest = [int(((zb - c) ** 2).sum(axis=1).argmin()) for c in za]
    assert [b.names_[j] for j in nearest] != list(a.names_)


@pytest.mark.parametrize("method", ["kmeans", "hmm"])
def test_both_methods_find_the_planted_spells(method):
    index = _four_state_index()
    out = detect_regimes(index, RegimeConfig(method=method, min_train_sessions=252))
    known = out[out["regime"] != "unknown"]
    ret, vol = known["market_ret"], known["market_vol"]
    bull = known["regime"].str.startswith("bull")
    high = known["regime"].str.endswith("high_vol")
    assert ret[bull].mean() > 0 > ret[~bull].mean()
    assert vol[high].mean() > 1.5 * vol[~high].mean()


def test_hmm_regime_of_t_ignores_later_data():
    index = _four_state_index(n=1400)
    cfg = RegimeConfig(method="hmm", min_train_sessions=252, hmm_iter=20)
    cut = index.index[1000]
    changed = index.copy()
    changed.iloc[1001:] *= np.linspace(1, 0.3, len(index) - 1001)
    a = detect_regimes(index, cfg).loc[:cut]
    b = detect_regimes(changed, cfg).loc[:cut]
    pd.testing.assert_frame_equal(a, b)


def test_rolling_window_fits_see_only_the_last_sessions():
    from py_finance.features.regimes import fit_regimes, market_features

    cfg = RegimeConfig(min_train_sessions=252, window="rolling", rolling_sessions=300)
    feats = market_features(_four_state_index(), cfg)
    end = feats.index[1500]
    fit = fit_regimes(feats, cfg, end)
    last = feats.loc[:end].dropna().iloc[-300:]
    np.testing.assert_allclose(fit.mean_, last.to_numpy().mean(axis=0))
    with pytest.raises(ConfigError):
        RegimeConfig(window="rolling", rolling_sessions=100)


def test_regime_changes_are_events_with_ages():
    from py_finance.features.regimes import regime_events

    out = detect_regimes(_four_state_index(), RegimeConfig(min_train_sessions=252))
    known = out[out["regime"] != "unknown"]
    switched = known["regime"] != known["regime"].shift(1)
    switched.iloc[0] = False
    assert (known["regime_change"] == switched).all()
    assert (known.loc[known["regime_change"], "regime_age"] == 0).all()
    events = regime_events(out)
    assert len(events) == int(known["regime_change"].sum()) > 0
    first = events.iloc[0]
    assert first["previous"] != first["regime"]
    assert out.loc[first["session"], "regime"] == first["regime"]


def test_method_and_window_are_validated():
    with pytest.raises(ConfigError):
        RegimeConfig(method="gmm")
    with pytest.raises(ConfigError):
        RegimeConfig(window="sliding")
