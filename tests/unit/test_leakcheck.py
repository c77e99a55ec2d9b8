"""The lookahead detector catches planted leaks by name and passes clean components."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from py_finance import leakcheck as lc
from py_finance.features.registry import GROUPS, FeatureGroup, register_group
from py_finance.features.technical import FeatureConfig


def _data(n=300, k=4, seed=0):
    rng = np.random.default_rng(seed)
    idx = pd.bdate_range("2010-01-04", periods=n)
    close = pd.DataFrame(
        100 * np.exp(np.cumsum(rng.normal(0, 0.02, (n, k)), axis=0)),
        index=idx,
        columns=[f"S{i}" for i in range(k)],
    )
    market = pd.Series(100 * np.exp(np.cumsum(rng.normal(0, 0.01, n))), index=idx)
    return lc.LeakData({"close": close}, market)


@pytest.fixture()
def leaky_groups():
    @register_group("test_centred_ma")
    class CentredMA(FeatureGroup):
        def lookback(self):
            return 10

        def names(self, inp):
            return ["centred_ma"]

        def compute(self, inp):
            close = pd.DataFrame(inp.get("close").T)
            centred = close.rolling(5, center=True, min_periods=5).mean() / close
            yield "centred_ma", centred.to_numpy().T

    @register_group("test_honest_ma")
    class HonestMA(FeatureGroup):
        def lookback(self):
            return 10

        def names(self, inp):
            return ["honest_ma"]

        def compute(self, inp):
            close = pd.DataFrame(inp.get("close").T)
            yield "honest_ma", (close.rolling(5).mean() / close).to_numpy().T

    yield
    GROUPS.pop("test_centred_ma")
    GROUPS.pop("test_honest_ma")


def _component(groups):
    cfg = FeatureConfig(
        name="planted",
        momentum_windows=(5,),
        volatility_windows=(),
        zscore=False,
        groups=tuple({"kind": g} for g in groups),
        dropna="none",
    )
    return lc.feature_component("planted", cfg)


def test_a_centred_rolling_mean_is_caught_by_name(leaky_groups):
    report = lc.check(_component(["test_centred_ma", "test_honest_ma"]), _data(), n_sessions=20)
    assert not report.ok
    assert report.leaky_columns == ["centred_ma"]
    assert {f.mode for f in report.findings} == {"truncated", "perturbed"}
    assert "centred_ma" in report.summary()


def test_honest_features_pass(leaky_groups):
    report = lc.check(_component(["test_honest_ma"]), _data(), n_sessions=20)
    assert report.ok, report.summary()
    assert report.n_sessions == 20


def test_a_full_sample_scaler_is_caught_by_the_perturbed_future():
    # Truncation alone cannot see it at the last row: a statistic of the whole sample.
    def compute(d):
        close = d.fields["close"]
        ret = close.pct_change()
        z = (ret - ret.stack().mean()) / ret.stack().std()
        out = z.stack().rename("z_full_sample").to_frame()
        out.index.names = ["session", "symbol"]
        return out

    comp = lc.Component("features=scaled", compute, lookback=1)
    report = lc.check(comp, _data(), n_sessions=10)
    assert report.leaky_columns == ["z_full_sample"]


def test_labels_are_known_only_after_their_window_ends():
    from py_finance.features.labels import LabelConfig

    ok = lc.check(lc.label_component("h5", LabelConfig(horizon=5)), _data(), n_sessions=15)
    assert ok.ok, ok.summary()

    # A label "known" at its decision session (ignoring label_end) is a leak of rows.
    honest = lc.label_component("h5", LabelConfig(horizon=5))
    early = lc.Component("labels=early", honest.compute, 0, delay=6)
    bad = lc.check(early, _data(), n_sessions=15)
    assert lc.ROWS in bad.leaky_columns


def test_regimes_pass_and_a_full_sample_regime_fit_is_caught():
    from py_finance.features.regimes import RegimeConfig, detect_regimes

    data = _data(n=700)
    cfg = RegimeConfig(min_train_sessions=252, refit="quarterly")
    assert lc.check(lc.regime_component("kmeans", cfg), data, n_sessions=8).ok

    def full_sample(d):
        # labels every session with one fit on all sessions: uses the future
        out = detect_regimes(d.market, cfg)
        ret = out["market_ret"]
        out["above_full_mean"] = (ret > ret.mean()).astype(float)
        return out

    bad = lc.check(lc.Component("regimes=bad", full_sample, None), data, n_sessions=8)
    assert bad.leaky_columns == ["above_full_mean"]


def test_cli_exits_zero_on_shipped_components(capsys):
    code = lc.main(
        [
            "--features",
            "basic",
            "--labels",
            "h1",
            "--regimes",
            "--sessions",
            "5",
            "--start",
            "2000-01-03",
            "--end",
            "2001-12-31",
        ]
    )
    assert code == 0
    assert "no leak" in capsys.readouterr().out


def test_cli_exits_non_zero_on_a_leak(leaky_groups, monkeypatch, capsys):
    monkeypatch.setattr(lc, "shipped_components", lambda *a, **k: [_component(["test_centred_ma"])])
    code = lc.main(["--sessions", "5", "--start", "2000-01-03", "--end", "2001-12-31"])
    assert code == 1
    assert "LEAKS in features=planted" in capsys.readouterr().out


def test_shipped_regime_policies_pass_and_a_policy_that_peeks_is_caught():
    from py_finance.features.regimes import RegimeConfig
    from py_finance.risk.config import DataDrivenRegimePolicy

    data = _data(n=700)
    regimes = RegimeConfig(min_train_sessions=252)
    honest = lc.policy_component(
        "data_driven", DataDrivenRegimePolicy(min_sessions=20, prior_sessions=50), regimes
    )
    assert lc.check(honest, data, n_sessions=10).ok

    class PeekingPolicy:
        """Scales every session by the Sharpe of the whole sample (future included)."""

        def row_multipliers(self, regimes, strategy_returns):
            r = np.nan_to_num(strategy_returns)
            level = float(np.clip(0.5 + 20 * r.mean() / (r.std() + 1e-12), 0.0, 1.0))
            return np.full(len(regimes), level)

    report = lc.check(lc.policy_component("peeking", PeekingPolicy(), regimes), data, n_sessions=10)
    assert not report.ok
    assert any("regime_policy=peeking" in str(f) for f in report.findings)
