"""The fundamentals group: values as the store knew them at each session's close."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from py_finance import leakcheck as lc
from py_finance.data.calendar import session_closes
from py_finance.data.calendar import sessions as xnys_sessions
from py_finance.data.store import Store
from py_finance.errors import ConfigError
from py_finance.features.registry import GROUPS, FeatureGroup, register_group
from py_finance.features.tables import read_fundamentals
from py_finance.features.technical import FeatureConfig, build_features

UTC = "UTC"


def _cfg(*groups, dropna="none"):
    return FeatureConfig(
        momentum_windows=(), volatility_windows=(), zscore=False, groups=groups, dropna=dropna
    )


def _bars(start="2023-01-03", end="2023-12-29", symbols=("AAA", "BBB"), seed=0):
    rng = np.random.default_rng(seed)
    idx = xnys_sessions(start, end)
    k = len(symbols)
    close = pd.DataFrame(
        50 * np.exp(np.cumsum(rng.normal(0, 0.02, (len(idx), k)), axis=0)), idx, list(symbols)
    )
    # as-traded close: a 2:1 split on 2023-07-03 halves it from then on
    raw = close * np.where(idx < pd.Timestamp("2023-07-03"), 2.0, 1.0)[:, None]
    return {"close": close, "raw_close": raw}


def _rows(*rows):
    frame = pd.DataFrame(rows, columns=["symbol", "period_end", "field", "value", "available_at"])
    frame["period_end"] = pd.to_datetime(frame["period_end"])
    frame["available_at"] = pd.to_datetime(frame["available_at"], utc=True)
    return frame


GROUP = {"kind": "fundamentals", "fields": ["eps"], "ratios": {"ey": "eps"}, "age": True}


def test_a_restatement_after_the_close_leaves_that_session_on_the_old_value():
    table = _rows(
        # Q1 reported exactly at the close of Thu 2023-05-04 (16:00 New York = 20:00 UTC)
        ("AAA", "2023-03-31", "eps", 1.0, "2023-05-04 20:00"),
        # restated 30 minutes after the close of 2023-06-01: from 06-02 on
        ("AAA", "2023-03-31", "eps", 1.5, "2023-06-01 20:30"),
    )
    feats = build_features(_bars(), _cfg(GROUP), fundamentals=table)["f_eps"].xs("AAA", level=1)
    assert np.isnan(feats.loc["2023-05-03"])
    assert feats.loc["2023-05-04"] == 1.0
    assert feats.loc["2023-06-01"] == 1.0
    assert feats.loc["2023-06-02"] == 1.5


def test_a_late_report_is_used_from_its_filing_not_its_period_end():
    table = _rows(
        ("AAA", "2023-03-31", "eps", 1.0, "2023-05-04 20:00"),
        # Q2 ends 06-30 but is filed after the close of 2023-08-10
        ("AAA", "2023-06-30", "eps", 2.0, "2023-08-10 21:00"),
        # a filing before the open counts that same session
        ("AAA", "2023-09-30", "eps", 3.0, "2023-11-06 12:00"),
    )
    feats = build_features(_bars(), _cfg(GROUP), fundamentals=table).xs("AAA", level=1)
    assert (feats.loc["2023-06-30":"2023-08-10", "f_eps"] == 1.0).all()
    assert feats.loc["2023-08-11", "f_eps"] == 2.0
    assert feats.loc["2023-11-03", "f_eps"] == 2.0
    assert feats.loc["2023-11-06", "f_eps"] == 3.0
    # days since the latest period was first known, to the close of t
    close_0811 = pd.Timestamp("2023-08-11 20:00", tz=UTC)
    age = (close_0811 - pd.Timestamp("2023-08-10 21:00", tz=UTC)) / pd.Timedelta(days=1)
    assert feats.loc["2023-08-11", "f_age"] == pytest.approx(age)
    # earnings yield on the as-traded close (2:1 split on 07-03)
    raw = _bars()["raw_close"]["AAA"]
    assert feats.loc["2023-06-30", "ey"] == pytest.approx(1.0 / raw.loc["2023-06-30"], rel=1e-6)
    assert feats.loc["2023-08-11", "ey"] == pytest.approx(2.0 / raw.loc["2023-08-11"], rel=1e-6)


def test_an_early_close_cuts_knowledge_at_the_early_close():
    # 2023-11-24 closes at 13:00 New York (18:00 UTC): a 18:30 UTC filing counts on 11-27
    table = _rows(
        ("AAA", "2023-06-30", "eps", 1.0, "2023-08-01 20:00"),
        ("AAA", "2023-09-30", "eps", 2.0, "2023-11-24 18:30"),
    )
    feats = build_features(_bars(), _cfg(GROUP), fundamentals=table)["f_eps"].xs("AAA", level=1)
    assert feats.loc["2023-11-24"] == 1.0
    assert feats.loc["2023-11-27"] == 2.0


def test_no_table_leaves_the_columns_out_and_no_raw_close_leaves_ratios_out():
    bars = _bars()
    cfg = _cfg(GROUP, {"kind": "momentum", "windows": [5], "skip_month": False})
    assert list(build_features(bars, cfg).columns) == ["mom_5"]
    table = _rows(("AAA", "2023-03-31", "eps", 1.0, "2023-05-04 20:00"))
    without_raw = build_features({"close": bars["close"]}, cfg, fundamentals=table)
    assert list(without_raw.columns) == ["f_eps", "f_age", "mom_5"]


def test_no_close_means_no_value_and_unknown_parameters_fail():
    bars = _bars()
    bars["close"].loc["2023-09-01":, "BBB"] = np.nan  # delisted
    table = _rows(("BBB", "2023-03-31", "eps", 1.0, "2023-05-04 20:00"))
    feats = build_features(bars, _cfg(GROUP), fundamentals=table).xs("BBB", level=1)
    assert feats.loc["2023-08-31", "f_eps"] == 1.0
    assert feats.loc["2023-09-01":].isna().all().all()
    with pytest.raises(ConfigError, match="fundamentals"):
        _cfg({"kind": "fundamentals", "feilds": ["eps"]})


def _random_table(symbols, seed=1):
    rng = np.random.default_rng(seed)
    quarters = pd.date_range("2021-12-31", "2023-09-30", freq="QE")
    days = xnys_sessions("2022-01-03", "2023-12-29")
    closes = session_closes(days)
    rows = []
    for sym in symbols:
        for q in quarters:
            filed = closes[days.searchsorted(q + pd.Timedelta(days=int(rng.integers(20, 90))))]
            filed += pd.Timedelta(hours=float(rng.choice([-6.0, 0.0, 2.0])))
            for field in ("eps", "revenue"):
                value = float(rng.normal(1.0, 0.5)) * (1e9 if field == "revenue" else 1.0)
                rows.append((sym, q, field, value, filed))
                if rng.random() < 0.3:  # restated later, at any time of day
                    later = filed + pd.Timedelta(hours=float(rng.uniform(1, 2000)))
                    rows.append((sym, q, field, value * 1.2, later))
    return _rows(*rows)


def test_values_match_the_store_as_of_reads_at_every_close(tmp_path):
    """Against a direct computation: the store's own as-of read at each session's close."""
    symbols = ("AAA", "BBB", "CCC")
    table = _random_table(symbols)
    store = Store(tmp_path)
    first = table.drop_duplicates(["symbol", "period_end", "field"], keep="first")
    store.write_fundamentals(first)
    store.write_fundamentals(table.drop(first.index), now=pd.Timestamp("2030-01-01", tz=UTC))
    as_of = pd.Timestamp("2023-12-29 21:00", tz=UTC)
    read = read_fundamentals(store, list(symbols), as_of)
    # every version known by then, restated ones included; nothing learnt later
    assert read is not None and len(read) == (table["available_at"] <= as_of).sum() < len(table)

    bars = _bars("2023-01-03", "2023-12-29", symbols)
    group = {
        "kind": "fundamentals",
        "fields": ["eps", "revenue"],
        "ratios": {"ey": "eps"},
        "growth": ["revenue"],
        "age": True,
        "zscore": True,
        "rank": True,
    }
    feats = build_features(bars, _cfg(group), fundamentals=read)
    sessions = bars["close"].index
    cuts = session_closes(sessions)
    for t, cut in list(zip(sessions, cuts, strict=True))[::7]:
        latest = store.fundamentals(list(symbols), cut, ["eps", "revenue"])
        history = store.fundamentals_history(list(symbols), cut)
        for sym in symbols:
            row = feats.loc[(t, sym)]
            mine = latest[latest["symbol"] == sym].set_index("field")
            for field in ("eps", "revenue"):
                want = mine["value"].get(field, np.nan)
                assert row[f"f_{field}"] == pytest.approx(want, nan_ok=True)
            eps = mine["value"].get("eps", np.nan)
            assert row["ey"] == pytest.approx(eps / bars["raw_close"].loc[t, sym], nan_ok=True)
            hist = history[history["symbol"] == sym]
            rev = hist[hist["field"] == "revenue"].set_index("period_end")["value"]
            if len(rev):
                pe = rev.index.max()
                prior = rev[
                    (rev.index >= pe - pd.Timedelta(days=385))
                    & (rev.index <= pe - pd.Timedelta(days=345))
                ]
                want = (rev[pe] - prior.iloc[-1]) / abs(prior.iloc[-1]) if len(prior) else np.nan
                assert row["g_revenue"] == pytest.approx(want, nan_ok=True)
                # the latest period's first knowledge time, from every version known then
                versions = read[(read["symbol"] == sym) & (read["period_end"] == pe)]
                first_known = versions["available_at"].min()
                assert row["f_age"] == pytest.approx((cut - first_known) / pd.Timedelta(days=1))
        values = feats.loc[t, "f_eps"]
        if values.notna().sum() >= 2:
            z = (values - values.mean()) / values.std()
            np.testing.assert_allclose(feats.loc[t, "z_f_eps"], z, rtol=1e-5, atol=1e-6)


def test_the_pipeline_reads_only_what_the_store_knew_at_the_run(tmp_path):
    from py_finance.config import build, compose
    from py_finance.pipeline import research
    from py_finance.pipeline.context import Context

    ctx = Context(
        build(
            compose(
                [
                    "features=fundamental",
                    "data.symbols=[AAA,BBB]",
                    "data.start=2023-01-03",
                    "data.end=2023-06-30",
                ]
            )
        ),
        tmp_path,
    )
    bars = _bars("2023-01-03", "2023-12-29")
    long = bars["close"].stack().rename("adj_close").reset_index()
    long.columns = ["session", "symbol", "adj_close"]
    long["close"] = bars["raw_close"].stack().to_numpy()
    for col in ("open", "high", "low"):
        long[col] = long["close"]
    long["volume"] = 1e6
    ctx.store.write_bars(long)
    ctx.store.write_fundamentals(
        _rows(
            ("AAA", "2023-03-31", "eps", 1.0, "2023-05-04 20:00"),
            ("AAA", "2023-03-31", "bvps", 20.0, "2023-05-04 20:00"),
            ("AAA", "2023-06-30", "eps", 9.0, "2023-08-10 21:00"),  # after the run's as_of
        )
    )
    feats = research.feature_frame(ctx, "2023-01-03", "2023-06-30", ctx.as_of)
    aaa = feats.xs("AAA", level=1)
    assert aaa.loc["2023-06-30", "ey"] == pytest.approx(
        1.0 / bars["raw_close"].loc["2023-06-30", "AAA"], rel=1e-5
    )
    assert aaa.loc["2023-06-30", "bp"] == pytest.approx(
        20.0 / bars["raw_close"].loc["2023-06-30", "AAA"], rel=1e-5
    )
    assert "news_n_1" not in feats.columns  # the store has no news
    known = read_fundamentals(ctx.store, ["AAA"], ctx.as_of)
    assert known is not None and set(known["value"]) == {1.0, 20.0}


# ---------------------------------------------------------------- lookahead detector
@pytest.fixture()
def by_period_end():
    @register_group("test_fund_by_period_end")
    class ByPeriodEnd(FeatureGroup):
        """Leaky: a value counts from its period end, not from when it was known."""

        tables = ("fundamentals",)

        def lookback(self):
            return 0

        def names(self, inp):
            return ["eps_by_period_end"]

        def compute(self, inp):
            table = inp.fundamentals
            table = table[table["field"] == "eps"].sort_values("available_at")
            table = table.drop_duplicates(["symbol", "period_end"], keep="last")
            wide = table.pivot(index="period_end", columns="symbol", values="value")
            wide = wide.reindex(wide.index.union(inp.sessions)).ffill().reindex(inp.sessions)
            yield "eps_by_period_end", wide.reindex(columns=inp.symbols).to_numpy().T

    yield
    GROUPS.pop("test_fund_by_period_end")


def _leak_data(n=400, k=4, seed=0):
    rng = np.random.default_rng(seed)
    idx = xnys_sessions("2012-01-03", "2016-12-30")[:n]
    close = pd.DataFrame(
        100 * np.exp(np.cumsum(rng.normal(0, 0.02, (n, k)), axis=0)),
        index=idx,
        columns=[f"S{i}" for i in range(k)],
    )
    market = pd.Series(100 * np.exp(np.cumsum(rng.normal(0, 0.01, n))), index=idx)
    fundamentals, news = lc.synthetic_tables(close, seed=seed)
    return lc.LeakData({"close": close, "raw_close": close * 3.0}, market, fundamentals, news)


def _component(*groups):
    return lc.feature_component("fund", _cfg(*groups))


def test_the_detector_passes_the_group_and_catches_a_read_by_period_end(by_period_end):
    data = _leak_data()
    honest = {**GROUP, "fields": ["eps", "roe"], "growth": ["revenue"], "zscore": True}
    report = lc.check(_component(honest), data, n_sessions=15)
    assert report.ok, report.summary()
    assert {"f_eps", "ey", "g_revenue", "f_age", "z_f_eps"} <= set(report.columns)
    bad = lc.check(_component(honest, {"kind": "test_fund_by_period_end"}), data, n_sessions=15)
    assert bad.leaky_columns == ["eps_by_period_end"]
