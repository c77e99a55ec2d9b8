"""Feature groups of the registry: momentum, volatility, volume, calendar, regime, cross-section."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from py_finance.data.calendar import sessions as xnys_sessions
from py_finance.errors import ConfigError
from py_finance.features.registry import calendar_table, cs_rank, cs_zscore
from py_finance.features.technical import EXPANDING_LOOKBACK, FeatureConfig, build_features


def _cfg(*groups, dropna="none"):
    return FeatureConfig(
        momentum_windows=(), volatility_windows=(), zscore=False, groups=groups, dropna=dropna
    )


def _bars(n=400, k=5, seed=0, volume=True, hl=True):
    rng = np.random.default_rng(seed)
    idx = xnys_sessions("2017-01-03", "2022-12-30")[:n]
    cols = [f"S{i}" for i in range(k)]
    close = 40 * np.exp(np.cumsum(rng.normal(0, 0.02, (n, k)), axis=0))
    out = {"close": pd.DataFrame(close, idx, cols)}
    if hl:
        out["high"] = out["close"] * np.exp(np.abs(rng.normal(0, 0.01, (n, k))))
        out["low"] = out["close"] * np.exp(-np.abs(rng.normal(0, 0.01, (n, k))))
    if volume:
        out["volume"] = pd.DataFrame(rng.lognormal(13, 0.4, (n, k)), idx, cols)
    return out


def test_momentum_returns_and_12_1():
    bars = _bars()
    feats = build_features(bars, _cfg({"kind": "momentum", "windows": [1, 20]}))
    c = bars["close"]["S2"]
    t = c.index[300]
    row = feats.loc[(t, "S2")]
    assert row["mom_1"] == pytest.approx(c.iloc[300] / c.iloc[299] - 1, rel=1e-6)
    assert row["mom_20"] == pytest.approx(c.iloc[300] / c.iloc[280] - 1, rel=1e-6)
    assert row["mom_12_1"] == pytest.approx(c.iloc[300 - 21] / c.iloc[300 - 252] - 1, rel=1e-6)
    assert np.isnan(feats.loc[(c.index[251], "S2"), "mom_12_1"])


def test_volatility_downside_parkinson_and_atr():
    bars = _bars()
    feats = build_features(bars, _cfg({"kind": "volatility", "windows": [20]}))
    c, h, lo = (bars[f]["S1"] for f in ("close", "high", "low"))
    r = np.log(c).diff()
    i = 200
    t = c.index[i]
    win = r.iloc[i - 19 : i + 1]
    assert feats.loc[(t, "S1"), "vol_20"] == pytest.approx(win.std() * np.sqrt(252), rel=1e-5)
    down = np.sqrt((np.minimum(win, 0) ** 2).mean()) * np.sqrt(252)
    assert feats.loc[(t, "S1"), "dvol_20"] == pytest.approx(down, rel=1e-5)
    pk = np.sqrt((np.log(h / lo) ** 2).iloc[i - 19 : i + 1].mean() / (4 * np.log(2))) * np.sqrt(252)
    assert feats.loc[(t, "S1"), "pkvol_20"] == pytest.approx(pk, rel=1e-5)
    prev = c.shift(1)
    tr = pd.concat([h - lo, (h - prev).abs(), (lo - prev).abs()], axis=1).max(axis=1)
    assert feats.loc[(t, "S1"), "atr_20"] == pytest.approx(
        tr.iloc[i - 19 : i + 1].mean() / c.iloc[i], rel=1e-5
    )


def test_ohlc_and_volume_features_are_absent_cleanly_on_close_only_data():
    bars = _bars(volume=False, hl=False)
    cfg = _cfg({"kind": "volatility", "windows": [20]}, {"kind": "volume"})
    feats = build_features(bars["close"], cfg)
    assert list(feats.columns) == ["vol_20", "dvol_20"]
    with_volume = build_features(_bars(), cfg)
    assert {"vratio_20", "adv_20", "amihud_20", "pkvol_20", "atr_20"} <= set(with_volume.columns)


def test_volume_ratio_is_log_volume_over_its_trailing_mean():
    bars = _bars()
    feats = build_features(bars, _cfg({"kind": "volume", "windows": [5]}))
    v = bars["volume"]["S0"]
    t = v.index[50]
    expected = np.log((v.iloc[50] + 1) / (v.iloc[46:51].mean() + 1))
    assert feats.loc[(t, "S0"), "vratio_5"] == pytest.approx(expected, rel=1e-5)


def test_cross_sectional_zscore_and_rank_use_the_names_with_data_at_that_session():
    bars = _bars()
    bars["close"].iloc[:100, 0] = np.nan  # S0 lists later
    feats = build_features(
        bars,
        _cfg(
            {"kind": "momentum", "windows": [5], "skip_month": False, "zscore": True, "rank": True}
        ),
    )
    early = feats.loc[bars["close"].index[50]]
    assert np.isnan(early.loc["S0", "z_mom_5"])
    assert early["r_mom_5"].max() == 1.0 and early["r_mom_5"].notna().sum() == 4
    assert early["z_mom_5"].astype(float).mean() == pytest.approx(0.0, abs=1e-6)
    assert early["z_mom_5"].astype(float).std() == pytest.approx(1.0, abs=1e-5)


def test_cs_helpers_on_a_hand_made_matrix():
    mat = np.array([[1.0, 2.0], [3.0, np.nan], [5.0, np.nan]])  # symbols x sessions
    np.testing.assert_allclose(cs_zscore(mat)[:, 0], [-1.0, 0.0, 1.0])
    assert np.isnan(cs_zscore(mat)[:, 1]).all()  # fewer than two names
    np.testing.assert_allclose(cs_rank(mat)[:, 0], [1 / 3, 2 / 3, 1.0])


def test_calendar_features_follow_xnys_holidays_and_early_closes():
    days = xnys_sessions("2018-11-01", "2019-12-31")
    cal = calendar_table(days)

    def at(day):
        return cal.loc[pd.Timestamp(day)]

    # Independence Day 2019 (Thu): the 3rd closes early and precedes a holiday
    assert at("2019-07-03")["early_close"] == 1 and at("2019-07-03")["pre_holiday"] == 1
    # Day after Thanksgiving closes early; the Wednesday before precedes the holiday
    assert at("2019-11-29")["early_close"] == 1
    assert at("2019-11-27")["pre_holiday"] == 1 and at("2019-11-27")["early_close"] == 0
    # Good Friday is no federal holiday but the exchange is closed
    assert at("2019-04-18")["pre_holiday"] == 1
    # an ad-hoc closure: the national day of mourning for President Bush, 2018-12-05
    assert at("2018-12-04")["pre_holiday"] == 1
    # Friday before Memorial Day vs an ordinary Friday
    assert at("2019-05-24")["pre_holiday"] == 1 and at("2019-05-17")["pre_holiday"] == 0
    assert at("2019-04-29")["sessions_to_month_end"] == 1
    assert at("2019-04-30")["sessions_to_month_end"] == 0
    # the last session of May 2019 is the 31st: Memorial Day does not count as a session
    assert at("2019-05-24")["sessions_to_month_end"] == 4
    assert [
        at(d)["turn_of_month"] for d in ("2019-04-30", "2019-05-01", "2019-05-03", "2019-05-06")
    ] == [1, 1, 1, 0]
    assert at("2019-05-06")["dow"] == 0 and at("2019-05-06")["month"] == 5
    early = cal.index[cal["early_close"] == 1].strftime("%Y-%m-%d").tolist()
    assert early == ["2018-11-23", "2018-12-24", "2019-07-03", "2019-11-29", "2019-12-24"]


def test_calendar_features_are_the_same_for_every_name():
    bars = _bars(n=60)
    feats = build_features(bars, _cfg({"kind": "calendar"}))
    per_session = feats.groupby(level="session").nunique()
    assert (per_session == 1).all().all()


def test_regime_features_one_hot_age_and_expanding_lookback():
    bars = _bars(n=400)
    cfg = _cfg({"kind": "regime", "regimes": {"min_train_sessions": 100, "refit": "quarterly"}})
    assert cfg.lookback == EXPANDING_LOOKBACK and cfg.expanding
    market = bars["close"].mean(axis=1)
    feats = build_features(bars, cfg, market=market)
    one = feats.xs("S0", level="symbol")
    onehot = one.filter(like="regime_").drop(columns="regime_age")
    assert set(onehot.sum(axis=1).unique()) <= {0.0, 1.0}
    assert onehot.sum(axis=1).iloc[-1] == 1.0
    changed = onehot.diff().abs().sum(axis=1) > 0
    assert (one.loc[changed & (onehot.sum(axis=1) == 1), "regime_age"] == 0).all()
    assert 0.0 <= one["breadth"].min() and one["breadth"].max() <= 1.0


def test_unknown_groups_and_bad_options_are_config_errors():
    with pytest.raises(ConfigError, match="unknown kind"):
        _cfg({"kind": "astrology"})
    with pytest.raises(ConfigError, match="dropna"):
        FeatureConfig(dropna="some")
    with pytest.raises(ConfigError):
        _cfg({"kind": "momentum", "windows": [0]}).make_groups()[0][0].lookback()
