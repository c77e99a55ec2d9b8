from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from py_finance.data.calendar import check_sessions
from py_finance.data.sources.bundled import BundledSource
from py_finance.errors import DataError


def test_bundled_source_has_twenty_survivors_and_says_so():
    src = BundledSource()
    assert len(src.symbols()) == 20
    assert src.info.survivorship_biased is True
    assert src.coverage() == (dt.date(1990, 1, 2), dt.date(2022, 12, 28))


def test_sector_map_covers_every_bundled_symbol():
    src = BundledSource()
    sectors = src.sectors(src.symbols())
    assert sectors["sector"].notna().all()
    assert sectors.set_index("symbol").loc["JNJ", "sector"] == "Health Care"


def test_unknown_symbol_lists_the_available_ones():
    with pytest.raises(DataError, match=r"unknown symbol\(s\) NOPE.*available: AAPL"):
        BundledSource().bars(["AAPL", "nope"], dt.date(2000, 1, 3), dt.date(2000, 2, 1))


def test_dates_outside_the_data_are_refused():
    with pytest.raises(DataError, match=r"covers 1990-01-02\.\.2022-12-28"):
        BundledSource().bars(["AAPL"], dt.date(2020, 1, 2), dt.date(2024, 1, 2))
    with pytest.raises(DataError, match="before start"):
        BundledSource().bars(["AAPL"], dt.date(2020, 1, 2), dt.date(2019, 1, 2))


def test_calendar_check_reports_the_two_missing_sessions_at_the_end():
    src = BundledSource()
    bars = src.bars(["AAPL"], dt.date(2022, 12, 1), dt.date(2022, 12, 28))
    check = check_sessions(pd.DatetimeIndex(bars["session"]), through=dt.date(2022, 12, 30))
    assert check.missing_sessions == (dt.date(2022, 12, 29), dt.date(2022, 12, 30))
    assert check.extra_dates == ()
    assert not check.ok
    assert "missing sessions 2" in check.summary()


def test_full_bundled_history_matches_xnys():
    src = BundledSource()
    bars = src.bars(["KO"], *src.coverage())
    check = check_sessions(pd.DatetimeIndex(bars["session"]))
    assert check.ok, check.summary()
