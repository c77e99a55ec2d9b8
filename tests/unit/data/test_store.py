from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from py_finance.data.store import Store, end_of_day_utc
from py_finance.errors import DataError


def _bars(symbols=("AAA", "BBB"), sessions=("2020-01-02", "2020-01-03", "2020-01-06"), base=10.0):
    rows = []
    for i, sym in enumerate(symbols):
        for j, s in enumerate(sessions):
            rows.append(
                {
                    "symbol": sym,
                    "session": pd.Timestamp(s),
                    "open": np.nan,
                    "high": np.nan,
                    "low": np.nan,
                    "close": np.nan,
                    "adj_close": base + i + j,
                    "volume": np.nan,
                }
            )
    return pd.DataFrame(rows)


UTC_LATE = pd.Timestamp("2030-01-01", tz="UTC")


def test_available_at_is_the_session_close_in_utc(tmp_path):
    store = Store(tmp_path)
    store.write_bars(_bars())
    got = store.bars(["AAA"], None, None, UTC_LATE)
    # 16:00 New York in January is 21:00 UTC.
    assert list(got["available_at"]) == [
        pd.Timestamp(f"{d} 21:00", tz="UTC") for d in ("2020-01-02", "2020-01-03", "2020-01-06")
    ]


def test_as_of_hides_sessions_not_closed_yet(tmp_path):
    store = Store(tmp_path)
    store.write_bars(_bars())
    before_close = pd.Timestamp("2020-01-03 20:59", tz="UTC")
    got = store.bars(None, None, None, before_close)
    assert sorted(got["session"].dt.date.astype(str).unique()) == ["2020-01-02"]


def test_ingesting_twice_adds_nothing(tmp_path):
    store = Store(tmp_path)
    first = store.write_bars(_bars())
    second = store.write_bars(_bars())
    assert first.rows_added == 6
    assert second.rows_added == 0 and second.rows_unchanged == 6
    assert len(list((tmp_path / "bars").glob("*.parquet"))) == 1


def test_restatement_is_a_new_row_and_the_old_value_stays_visible_as_of_before(tmp_path):
    store = Store(tmp_path)
    store.write_bars(_bars())
    restated = _bars()
    restated.loc[0, "adj_close"] = 99.0  # AAA on 2020-01-02
    stamp = pd.Timestamp("2021-06-01 12:00", tz="UTC")
    summary = store.write_bars(restated, now=stamp)
    assert summary.rows_added == 1
    old = store.bars(["AAA"], "2020-01-02", "2020-01-02", stamp - pd.Timedelta(seconds=1))
    new = store.bars(["AAA"], "2020-01-02", "2020-01-02", stamp)
    assert old["adj_close"].item() == 10.0
    assert new["adj_close"].item() == 99.0


def test_as_of_must_be_tz_aware(tmp_path):
    store = Store(tmp_path)
    store.write_bars(_bars())
    with pytest.raises(DataError, match="time zone"):
        store.bars(None, None, None, "2020-01-03")


def test_unknown_symbol_and_reversed_range_are_clear_errors(tmp_path):
    store = Store(tmp_path)
    store.write_bars(_bars())
    with pytest.raises(DataError, match=r"unknown symbol.*ZZZ"):
        store.bars(["AAA", "ZZZ"], None, None, UTC_LATE)
    with pytest.raises(DataError, match="before start"):
        store.bars(["AAA"], "2020-02-01", "2020-01-01", UTC_LATE)


def test_empty_store_says_to_run_ingest(tmp_path):
    with pytest.raises(DataError, match="ingest"):
        Store(tmp_path).bars(None, None, None, UTC_LATE)


def test_corrupt_parquet_names_the_file(tmp_path):
    store = Store(tmp_path)
    store.write_bars(_bars())
    part = next((tmp_path / "bars").glob("*.parquet"))
    part.write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(DataError, match=part.name):
        store.bars(None, None, None, UTC_LATE)


def test_non_positive_prices_are_refused(tmp_path):
    bad = _bars()
    bad.loc[1, "adj_close"] = 0.0
    with pytest.raises(DataError, match="non-positive"):
        Store(tmp_path).write_bars(bad)
    assert not (tmp_path / "bars").exists() or not list((tmp_path / "bars").iterdir())


def test_wide_matrix_is_session_by_symbol(tmp_path):
    store = Store(tmp_path)
    store.write_bars(_bars())
    wide = store.wide("adj_close", None, None, None, UTC_LATE)
    assert list(wide.columns) == ["AAA", "BBB"]
    assert wide.shape == (3, 2)
    assert wide.loc["2020-01-06", "BBB"] == 13.0


def test_end_of_day_utc_covers_the_whole_session():
    eod = end_of_day_utc("2020-01-03")
    assert eod > pd.Timestamp("2020-01-03 21:00", tz="UTC")
    assert eod < pd.Timestamp("2020-01-04 05:00:01", tz="UTC")
