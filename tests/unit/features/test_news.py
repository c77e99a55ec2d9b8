"""The news group: articles count from the first session whose close is after they were known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from py_finance import leakcheck as lc
from py_finance.data.calendar import get_calendar, session_closes
from py_finance.data.calendar import sessions as xnys_sessions
from py_finance.data.store import Store
from py_finance.features.registry import GROUPS, FeatureGroup, register_group
from py_finance.features.tables import read_news
from py_finance.features.technical import FeatureConfig, build_features

UTC = "UTC"


def _cfg(*groups):
    return FeatureConfig(
        momentum_windows=(), volatility_windows=(), zscore=False, groups=groups, dropna="none"
    )


def _close(start="2023-10-02", end="2023-12-29", symbols=("AAA", "BBB"), seed=0):
    rng = np.random.default_rng(seed)
    idx = xnys_sessions(start, end)
    values = 50 * np.exp(np.cumsum(rng.normal(0, 0.02, (len(idx), len(symbols))), axis=0))
    return pd.DataFrame(values, idx, list(symbols))


def _news(*rows, sentiment=None):
    frame = pd.DataFrame(rows, columns=["symbol", "id", "available_at"])
    frame["available_at"] = pd.to_datetime(frame["available_at"], utc=True)
    if sentiment is not None:
        frame["sentiment"] = sentiment
    return frame


GROUP = {"kind": "news", "windows": [1, 5]}


def test_an_article_after_the_close_counts_for_the_next_session():
    news = _news(
        ("AAA", "1", "2023-11-14 21:00"),  # exactly at the close (16:00 New York): counts 11-14
        ("AAA", "2", "2023-11-14 21:01"),  # after the close: 11-15
        ("AAA", "3", "2023-11-18 15:00"),  # Saturday: Monday 11-20
        ("AAA", "4", "2023-11-24 18:30"),  # after the 13:00 early close of 11-24: 11-27
        ("AAA", "5", "2023-11-24 17:59"),  # before it: 11-24
    )
    feats = build_features(_close(), _cfg(GROUP), news=news).xs("AAA", level=1)
    n1 = feats["news_n_1"]
    assert n1.loc["2023-11-14"] == 1
    assert n1.loc["2023-11-15"] == 1
    assert n1.loc["2023-11-17"] == 0
    assert n1.loc["2023-11-20"] == 1
    assert n1.loc["2023-11-24"] == 1
    assert n1.loc["2023-11-27"] == 1
    assert n1.sum() == 5
    assert feats.loc["2023-11-20", "news_n_5"] == 3  # 11-14 .. 11-20
    assert "news_sent_1" not in feats.columns  # no sentiment column


def test_windows_and_sentiment_match_a_direct_count_per_symbol():
    rng = np.random.default_rng(3)
    close = _close()
    start = pd.Timestamp("2023-09-01", tz=UTC).value
    span = pd.Timestamp("2024-01-02", tz=UTC).value - start
    rows, sentiment = [], []
    for sym in close.columns:
        for i, ns in enumerate(start + (rng.random(300) * span).astype("int64")):
            rows.append((sym, f"{sym}{i}", pd.Timestamp(int(ns), tz=UTC)))
            sentiment.append(np.nan if i % 7 == 0 else float(rng.uniform(-1, 1)))
    news = _news(*rows, sentiment=sentiment)
    group = {"kind": "news", "windows": [1, 5, 20], "zscore": True}
    feats = build_features(close, _cfg(group), news=news)

    cal = get_calendar("XNYS")
    all_sessions = pd.DatetimeIndex(cal.sessions)
    for t in close.index[::3]:
        pos = all_sessions.get_loc(t)
        for w in (1, 5, 20):
            lo, hi = session_closes(all_sessions[[pos - w, pos]])
            for sym in close.columns:
                mine = news[(news["symbol"] == sym)]
                inside = mine[(mine["available_at"] > lo) & (mine["available_at"] <= hi)]
                assert feats.loc[(t, sym), f"news_n_{w}"] == len(inside)
                want = inside["sentiment"].mean()  # NaN sentiments skipped
                got = feats.loc[(t, sym), f"news_sent_{w}"]
                assert got == pytest.approx(want, rel=1e-5, nan_ok=True)


def test_a_restated_article_counts_once_from_when_it_was_first_known():
    news = _news(
        ("AAA", "1", "2023-11-14 15:00"),
        ("AAA", "1", "2023-11-16 15:00"),  # a later version of the same article
    )
    n1 = build_features(_close(), _cfg(GROUP), news=news)["news_n_1"].xs("AAA", level=1)
    assert n1.loc["2023-11-14"] == 1
    assert n1.sum() == 1


def test_no_table_no_columns_and_no_close_no_value():
    close = _close()
    assert build_features(close, _cfg(GROUP, {"kind": "calendar"})).columns[0] == "dow"
    assert not any(c.startswith("news") for c in build_features(close, _cfg(GROUP)).columns)
    close.loc["2023-12-01":, "BBB"] = np.nan
    news = _news(("BBB", "1", "2023-12-04 15:00"), ("AAA", "2", "2023-12-04 15:00"))
    feats = build_features(close, _cfg(GROUP), news=news)
    assert feats.loc[("2023-12-04", "AAA"), "news_n_1"] == 1
    assert np.isnan(feats.loc[("2023-12-04", "BBB"), "news_n_1"])
    assert feats.loc[("2023-12-05", "AAA"), "news_n_1"] == 0  # known table, no news: 0


def test_the_store_read_keeps_first_knowledge_and_stops_at_as_of(tmp_path):
    store = Store(tmp_path)
    items = pd.DataFrame(
        {
            "symbol": ["AAA", "AAA", "BBB"],
            "id": ["1", "2", "3"],
            "published_at": pd.to_datetime(
                ["2023-11-14 15:00", "2023-11-20 15:00", "2023-11-14 21:30"], utc=True
            ),
            "headline": ["a", "b", "c"],
            "source": "wire",
            "url": "",
            "summary": "",
        }
    )
    store.write_news(items)
    # a corrected headline of article 1, known later: still counts from its first version
    fixed = items.iloc[[0]].assign(
        headline="a (corrected)", published_at=pd.Timestamp("2023-11-15 15:00", tz=UTC)
    )
    store.write_news(fixed, now=pd.Timestamp("2023-11-15 15:00", tz=UTC))
    got = read_news(store, ["AAA", "BBB"], pd.Timestamp("2023-11-16 00:00", tz=UTC))
    assert got is not None
    assert got[["symbol", "id"]].to_numpy().tolist() == [["AAA", "1"], ["BBB", "3"]]
    assert got["available_at"].iloc[0] == pd.Timestamp("2023-11-14 15:00", tz=UTC)
    assert "sentiment" not in got.columns
    assert read_news(Store(tmp_path / "empty"), None, pd.Timestamp("2024-01-01", tz=UTC)) is None
    feats = build_features(_close(), _cfg(GROUP), news=got).xs("BBB", level=1)
    assert feats.loc["2023-11-14", "news_n_1"] == 0
    assert feats.loc["2023-11-15", "news_n_1"] == 1  # 21:30 UTC is after the close


# ---------------------------------------------------------------- lookahead detector
@pytest.fixture()
def by_date():
    @register_group("test_news_by_date")
    class ByDate(FeatureGroup):
        """Leaky: counts an article on its New York date, even when it came after the close."""

        tables = ("news",)

        def lookback(self):
            return 1

        def names(self, inp):
            return ["news_by_date"]

        def compute(self, inp):
            news = inp.news
            known = pd.to_datetime(news["available_at"], utc=True).dt.tz_convert("America/New_York")
            day = known.dt.tz_localize(None).dt.normalize()
            counts = news.assign(day=day).groupby(["day", "symbol"]).size().unstack(fill_value=0)
            counts = counts.reindex(index=inp.sessions, columns=inp.symbols, fill_value=0)
            yield "news_by_date", counts.to_numpy(dtype="float64").T

    yield
    GROUPS.pop("test_news_by_date")


def test_the_detector_passes_the_group_and_catches_counting_by_date(by_date):
    rng = np.random.default_rng(0)
    idx = xnys_sessions("2015-01-02", "2016-12-30")
    close = pd.DataFrame(
        100 * np.exp(np.cumsum(rng.normal(0, 0.02, (len(idx), 4)), axis=0)),
        index=idx,
        columns=["S0", "S1", "S2", "S3"],
    )
    market = pd.Series(100 * np.exp(np.cumsum(rng.normal(0, 0.01, len(idx)))), index=idx)
    fundamentals, news = lc.synthetic_tables(close)
    data = lc.LeakData({"close": close}, market, fundamentals, news)
    honest = {"kind": "news", "windows": [1, 5, 20], "zscore": True}
    report = lc.check(lc.feature_component("news", _cfg(honest)), data, n_sessions=15)
    assert report.ok, report.summary()
    assert {"news_n_1", "news_sent_20", "z_news_n_5"} <= set(report.columns)
    leaky = _cfg(honest, {"kind": "test_news_by_date"})
    bad = lc.check(lc.feature_component("news", leaky), data, n_sessions=20)
    assert bad.leaky_columns == ["news_by_date"]
