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
            "--data",
            "bundled",
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
    code = lc.main(
        ["--data", "bundled", "--sessions", "5", "--start", "2000-01-03", "--end", "2001-12-31"]
    )
    assert code == 1
    assert "LEAKS in features=planted (bundled)" in capsys.readouterr().out


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


# ------------------------------------------------ OHLCV, delistings and membership
@pytest.fixture(scope="module")
def market():
    """A small synthetic market: OHLCV, 6 delistings, 19 membership spells over 400 sessions."""
    data = lc.synthetic_data(n_active=10, n_sessions=400, tables=False)
    assert data.delistings is not None and len(data.delistings) >= 5
    assert data.membership is not None and data.membership["end"].notna().sum() >= 5
    return data


def _same(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    return bool(np.array_equal(a.to_numpy(), b.to_numpy(), equal_nan=True))


def test_the_perturbed_future_changes_every_bar_field_and_nothing_known_at_t(market):
    after = 200
    t = market.sessions[after]
    got = market.perturbed(after, np.random.default_rng(1))
    assert set(got.fields) == {"open", "high", "low", "close", "vwap", "volume", "raw_close"}
    for name, frame in market.fields.items():
        new = got.fields[name]
        assert _same(new.iloc[: after + 1], frame.iloc[: after + 1]), name
        both = np.isfinite(new.iloc[after + 1 :].to_numpy()) & np.isfinite(
            frame.iloc[after + 1 :].to_numpy()
        )
        changed = new.iloc[after + 1 :].to_numpy() != frame.iloc[after + 1 :].to_numpy()
        assert changed[both].all(), name
    # some names still trading at t are delisted later, their bars end there
    assert len(got.delistings) > len(lc._delistings_known(market.delistings, t))
    pd.testing.assert_frame_equal(
        lc._delistings_known(got.delistings, t), lc._delistings_known(market.delistings, t)
    )
    assert not got.delistings.equals(market.delistings)
    # membership as known at t is kept, what is not known yet is redrawn
    known = lc.membership_known(got.membership, t).sort_values(["symbol", "start"])
    before = lc.membership_known(market.membership, t).sort_values(["symbol", "start"])
    pd.testing.assert_frame_equal(known.reset_index(drop=True), before.reset_index(drop=True))
    assert not _same(got.members().iloc[after + 1 :], market.members().iloc[after + 1 :])
    assert _same(got.members().iloc[: after + 1], market.members().iloc[: after + 1])


@pytest.fixture()
def field_groups():
    """``next_<field>``: the next session's field over today's (a leak); ``prev_<field>``."""

    def shift(x, k):  # symbol x session; k < 0 reads later sessions
        out = np.full_like(x, np.nan)
        if k > 0:
            out[:, k:] = x[:, :-k]
        else:
            out[:, :k] = x[:, -k:]
        return out

    kinds = []
    for lag, prefix in ((-1, "next"), (1, "prev")):

        class Ratio(FeatureGroup):
            ahead = lag
            tag = prefix

            def lookback(self):
                return 2

            def names(self, inp):
                return [f"{self.tag}_{self.params['field']}"]

            def compute(self, inp):
                x = inp.get(self.params["field"])
                yield f"{self.tag}_{self.params['field']}", shift(x, self.ahead) / x

        register_group(f"test_{prefix}_field")(Ratio)
        kinds.append(f"test_{prefix}_field")
    yield
    for kind in kinds:
        GROUPS.pop(kind)


@pytest.mark.parametrize("field", ["open", "high", "low", "volume", "vwap"])
def test_a_feature_reading_a_later_open_high_low_or_volume_is_caught(market, field_groups, field):
    cfg = FeatureConfig(
        name="planted",
        momentum_windows=(1,),
        volatility_windows=(),
        zscore=False,
        groups=(
            {"kind": "test_next_field", "field": field},
            {"kind": "test_prev_field", "field": field},
        ),
        dropna="all",
    )
    report = lc.check(lc.feature_component("planted", cfg), market, n_sessions=10)
    assert report.leaky_columns == [f"next_{field}"], report.summary()
    # the perturbed future moves this field (not only the truncation sees the leak)
    assert {f.mode for f in report.findings} == {"truncated", "perturbed"}


def test_shipped_feature_sets_see_every_ohlcv_column_of_the_synthetic_market(market):
    from py_finance.config import compose, instantiate

    for name, columns in (("alpha158", 158), ("full", 104)):
        cfg = instantiate(compose([f"features={name}"]).features)
        comp = lc.feature_component(name, cfg)
        assert comp.compute(market).shape[1] == columns, name


def _labels(name, compute):

    return lc.Component(name, compute, 0, delay=5 + 1, known_at=lc.known_by_label_end)


def test_labels_with_delistings_and_membership_pass(market):
    from py_finance.features.labels import LabelConfig

    report = lc.check(lc.label_component("h5", LabelConfig(horizon=5)), market, n_sessions=60)
    assert report.ok, report.summary()


def test_a_delisting_paid_a_session_before_it_is_known_is_caught(market):
    from py_finance.features.labels import LabelConfig, forward_returns

    def early(d):
        # the payout from the last trading session: known only at the next close
        moved = d.delistings.copy()
        sessions = d.sessions
        at = sessions.get_indexer(pd.to_datetime(moved["date"]))
        moved["date"] = sessions[np.maximum(at - 1, 0)]
        return forward_returns(
            d.fields["close"], LabelConfig(horizon=5), 1, delistings=moved, members=d.members()
        )

    report = lc.check(_labels("labels=early_payout", early), market, n_sessions=60)
    assert "fwd_ret_5" in report.leaky_columns, report.summary()


def test_labels_without_the_names_that_delist_later_are_caught(market):
    from py_finance.features.labels import LabelConfig, forward_returns

    def survivors(d):
        gone = d.delistings["symbol"].astype(str).unique()
        close = d.fields["close"].drop(columns=list(gone))
        return forward_returns(close, LabelConfig(horizon=5), 1)

    report = lc.check(_labels("labels=survivors", survivors), market, n_sessions=20)
    assert lc.ROWS in report.leaky_columns, report.summary()


def test_labels_ranked_among_the_members_of_a_later_session_are_caught(market):
    from py_finance.features.labels import LabelConfig, forward_returns

    def later_members(d):
        # members at the session after the label's window: known a session too late
        members = d.members().shift(-(1 + 5 + 1), fill_value=False)
        return forward_returns(d.fields["close"], LabelConfig(horizon=5), 1, members=members)

    report = lc.check(_labels("labels=later_members", later_members), market, n_sessions=30)
    assert lc.ROWS in report.leaky_columns, report.summary()
    # the redrawn future membership shows it too, not only the cut at t
    assert "perturbed" in {f.mode for f in report.findings if f.column == lc.ROWS}


def test_half_the_sampled_sessions_are_at_delistings_and_membership_changes(market):
    events = market.event_positions()
    assert len(events) >= 20
    sampled = lc._sample(np.arange(70, 399), events, 30, np.random.default_rng(0))
    assert len(sampled) == len(set(sampled)) == 30
    assert np.isin(sampled, events).sum() >= 15


def test_cli_checks_the_synthetic_market(capsys):
    code = lc.main(
        [
            "--data",
            "synthetic",
            "--features",
            "basic",
            "--labels",
            "h1",
            "--synthetic-sessions",
            "4",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "2 on the synthetic market (OHLCV" in out and "no leak" in out
