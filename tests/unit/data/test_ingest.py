"""Ingest: validation to quarantine, summary, batches, resume, no-op re-ingest, universe."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from py_finance.data.calendar import sessions
from py_finance.data.ingest import IngestReport, ingest_bars, ingest_table, read_universe
from py_finance.data.sources.base import SourceInfo
from py_finance.data.sources.vendor import ACTION_COLUMNS, Fetched
from py_finance.data.store import Store
from py_finance.errors import DataError

START, END = dt.date(2021, 1, 4), dt.date(2021, 3, 31)
LATE = pd.Timestamp("2030-01-01", tz="UTC")


class MemorySource:
    """A source serving synthetic bars; ``fail_on`` raises for that symbol (once)."""

    info = SourceInfo(name="memory", survivorship_biased=False, adjusted_only=False)
    benchmark_symbol = "IDX"

    def __init__(self, fail_on: str | None = None, last: dict[str, str] | None = None) -> None:
        self.fail_on = fail_on
        self.last = last or {}
        self.calls: list[str] = []
        self.mutate: dict[str, object] = {}

    def check_symbols(self, symbols: list[str]) -> list[str]:
        return [s.upper() for s in symbols]

    def fetch(self, symbol: str, start: dt.date, end: dt.date) -> Fetched:
        self.calls.append(symbol)
        if symbol == self.fail_on:
            self.fail_on = None
            raise DataError(f"vendor down while fetching {symbol}")
        days = sessions(start, self.last.get(symbol, end))
        c = 10.0 + (hash(symbol) % 50) + np.linspace(0, 1, len(days))
        bars = pd.DataFrame(
            {
                "symbol": symbol,
                "session": days,
                "open": c,
                "high": c * 1.01,
                "low": c * 0.99,
                "close": c,
                "adj_close": c,
                "volume": 1e5,
            }
        )
        if symbol in self.mutate:
            bars = self.mutate[symbol](bars)  # type: ignore[operator]
        return Fetched(bars=bars, actions=pd.DataFrame(columns=ACTION_COLUMNS))

    def sectors(self, symbols: list[str]) -> pd.DataFrame:
        return pd.DataFrame({"symbol": symbols, "name": symbols, "sector": "X"})


def _ingest(store, source, symbols=("AAA", "BBB", "CCC"), **kw) -> IngestReport:
    return ingest_bars(store, source, list(symbols), START, END, progress=False, **kw)


def test_ingest_writes_bars_benchmark_universe_and_summary(tmp_path):
    store = Store(tmp_path)
    report = _ingest(store, MemorySource())
    n = len(sessions(START, END))
    assert report.rows_added == {"bars": 3 * n, "benchmark": n}
    assert report.rows_quarantined == 0 and report.gaps == {}
    assert f"rows added: bars {3 * n}, benchmark {n}" in report.summary()
    assert store.universe("2021-02-01") == ["AAA", "BBB", "CCC"]
    assert store.manifest()["last_ingest"]["source"] == "memory"
    assert store.benchmark(None, None, LATE)["symbol"].unique().tolist() == ["IDX"]


def test_bad_rows_are_quarantined_and_counted_and_gaps_reported(tmp_path):
    src = MemorySource()
    src.mutate["BBB"] = lambda f: f.assign(close=f["close"].where(f.index != 5, -1.0)).drop(
        index=[9]
    )
    store = Store(tmp_path)
    report = _ingest(store, src)
    assert report.rows_quarantined == 1 and report.reasons == {"non-positive": 1}
    assert report.gaps["BBB"] == tuple(d.date().isoformat() for d in sessions(START, END)[[5, 9]])
    q = store.quarantine()
    assert q["reason"].tolist() == ["non-positive: close <= 0"] and q["symbol"].tolist() == ["BBB"]
    assert "rows quarantined: 1 (non-positive 1)" in report.summary()
    # re-ingesting the same bad row does not duplicate it in quarantine
    _ingest(store, src)
    assert len(store.quarantine()) == 1


def test_reingest_adds_nothing_and_keeps_the_snapshot(tmp_path):
    store = Store(tmp_path)
    _ingest(store, MemorySource())
    fp = store.fingerprint()
    files = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    again = _ingest(store, MemorySource())
    assert again.rows_added.get("bars", 0) == 0 and again.rows_restated == 0
    assert store.fingerprint() == fp
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == files


def test_interrupted_ingest_resumes_without_refetching_committed_batches(tmp_path):
    store = Store(tmp_path)
    src = MemorySource(fail_on="CCC")
    with pytest.raises(DataError, match="vendor down"):
        _ingest(store, src, symbols=("AAA", "BBB", "CCC", "DDD"), batch_size=1)
    assert store.symbols() == ["AAA", "BBB"]  # committed batches survive
    src.calls.clear()
    report = _ingest(store, src, symbols=("AAA", "BBB", "CCC", "DDD"), batch_size=1)
    assert src.calls == ["CCC", "DDD", "IDX"]
    assert report.resumed == ["AAA", "BBB"]
    assert store.symbols() == ["AAA", "BBB", "CCC", "DDD"]
    assert not (tmp_path / "_journal").exists()


def test_a_symbol_whose_data_stops_early_leaves_the_derived_universe(tmp_path):
    store = Store(tmp_path)
    _ingest(store, MemorySource(last={"BBB": "2021-02-12"}))
    assert "BBB" in store.universe("2021-02-12")
    assert store.universe("2021-02-16") == ["AAA", "CCC"]
    assert len(store.bars(["BBB"], None, None, LATE)) > 0


def test_universe_file_drives_membership(tmp_path):
    path = tmp_path / "u.csv"
    path.write_text("symbol,start,end\nAAA,2021-01-04,\nold,2021-01-04,2021-01-29\n")
    spells = read_universe(path)
    store = Store(tmp_path / "store")
    _ingest(
        store, MemorySource(last={"OLD": "2021-01-29"}), symbols=spells["symbol"], universe=spells
    )
    assert store.universe("2021-01-29") == ["AAA", "OLD"]
    assert store.universe("2021-02-01") == ["AAA"]
    with pytest.raises(DataError, match="not found"):
        read_universe(tmp_path / "nope.csv")


def test_news_and_fundamentals_ingest_is_idempotent(tmp_path):
    store = Store(tmp_path)

    def news(symbol, start, end):
        return pd.DataFrame(
            {
                "symbol": symbol,
                "id": ["1", "2"],
                "published_at": pd.to_datetime(["2021-01-05 14:00", "2021-01-06 15:00"], utc=True),
                "headline": ["h1", "h2"],
                "source": "s",
                "url": "",
                "summary": "",
            }
        )

    first = ingest_table(store, "news", news, "fake", ["AAA", "BBB"], START, END, progress=False)
    again = ingest_table(store, "news", news, "fake", ["AAA", "BBB"], START, END, progress=False)
    assert first.rows_added == {"news": 4} and again.rows_added.get("news", 0) == 0
    assert len(store.news(None, pd.Timestamp("2021-01-06 15:00", tz="UTC"), "5D")) == 4


def test_the_ingest_progress_bar_is_drawn_on_a_terminal_only(monkeypatch):
    # Regression: the bar's redraws went into log files (DVC stage logs, cron mail).
    import io
    import sys

    from py_finance.data.ingest import _progress

    monkeypatch.setattr(sys, "stderr", io.StringIO())
    bar = _progress(3, True)
    bar.update(3)
    bar.close()
    assert bar.disable
    assert sys.stderr.getvalue() == ""
    assert _progress(3, False).disable
