"""Every validation rule quarantines the bad row with its reason; good rows pass."""

from __future__ import annotations

import datetime as dt
import json
import logging

import numpy as np
import pandas as pd
import pytest

from py_finance.data.calendar import sessions
from py_finance.data.validation import validate_bars
from py_finance.errors import DataError


def _good(n: int = 6, symbol: str = "AAA") -> pd.DataFrame:
    days = sessions("2021-03-01", "2021-03-31")[:n]
    c = 100.0 + np.arange(n)
    return pd.DataFrame(
        {
            "symbol": symbol,
            "session": days,
            "open": c,
            "high": c + 1,
            "low": c - 1,
            "close": c,
            "adj_close": c,
            "volume": 1e6,
        }
    ).astype({"open": object})


def _one_bad(mutate) -> tuple[pd.DataFrame, pd.DataFrame]:
    frame = _good()
    frame = mutate(frame)
    out = validate_bars(frame, source="test")
    return out.clean, out.quarantine


@pytest.mark.parametrize(
    ("mutate", "rule"),
    [
        (
            lambda f: f.assign(open=f["open"].where(f.index != 2, "n/a")),
            "schema: open is not a number",
        ),
        (
            lambda f: f.assign(session=f["session"].astype(object).where(f.index != 2, "garbage")),
            "schema: session",
        ),
        (lambda f: pd.concat([f, f.iloc[[3]]], ignore_index=True), "duplicate"),
        (lambda f: f.assign(close=f["close"].where(f.index != 2, 0.0)), "non-positive: close"),
        (
            lambda f: f.assign(adj_close=f["adj_close"].where(f.index != 2, -5.0)),
            "non-positive: adj_close",
        ),
        (lambda f: f.assign(volume=f["volume"].where(f.index != 2, -1.0)), "non-positive: volume"),
        (lambda f: f.assign(high=f["high"].where(f.index != 2, 50.0)), "ohlc: high below"),
        (lambda f: f.assign(low=f["low"].where(f.index != 2, 102.5)), "ohlc: low above"),
        (
            lambda f: f.assign(
                session=f["session"].where(f.index != 2, pd.Timestamp("2021-03-06"))
            ),
            "calendar: not a XNYS session",
        ),
    ],
)
def test_each_rule_quarantines_the_row_with_its_reason(mutate, rule):
    clean, bad = _one_bad(mutate)
    assert len(bad) == 1, bad
    assert bad["reason"].item().startswith(rule)
    assert bad["source"].item() == "test" and bad["table"].item() == "bars"
    json.loads(bad["row"].item())  # the refused row is kept verbatim
    assert len(clean) + len(bad) == len(mutate(_good()))


def test_unadjusted_split_jump_is_quarantined_unless_a_split_explains_it():
    frame = _good()
    for col in ("open", "high", "low", "close", "adj_close"):
        frame.loc[3:, col] = frame.loc[3:, col].astype(float) / 4
    out = validate_bars(frame)
    assert out.quarantine["reason"].str.contains("split-jump").sum() == 1
    assert "4:1 split" in out.quarantine["reason"].item()
    split = pd.DataFrame({"symbol": ["AAA"], "ex_date": [frame.loc[3, "session"]]})
    assert validate_bars(frame, splits=split).quarantine.empty


def test_missing_sessions_are_reported_as_gaps_not_rows():
    frame = _good().drop(index=[2]).reset_index(drop=True)
    out = validate_bars(frame)
    assert out.quarantine.empty
    assert out.gaps == {"AAA": ("2021-03-03",)}
    assert out.n_gaps == 1


def test_missing_columns_are_a_schema_error():
    with pytest.raises(DataError, match="missing columns"):
        validate_bars(_good().drop(columns=["volume"]), source="yahoo")


def test_nothing_is_dropped_silently():
    frame = _good(20)
    frame.loc[1, "close"] = -1
    frame.loc[5, "high"] = 1
    frame = pd.concat([frame, frame.iloc[[7]]], ignore_index=True)
    out = validate_bars(frame)
    assert len(out.clean) + len(out.quarantine) == len(frame)


def test_split_like_jumps_of_adjusted_data_are_kept_and_reported():
    # Regression: AMD rose 52% on 2016-04-22; in split-adjusted data that is a real move, and
    # quarantining it deleted a real price from the bundled store.
    from py_finance.data.sources.bundled import BundledSource
    from py_finance.data.validation import validate_bars

    bars = BundledSource().bars(["AMD"], dt.date(2016, 4, 1), dt.date(2016, 5, 2))
    strict = validate_bars(bars, source="bundled")
    assert "2016-04-22" in set(strict.quarantine["session"].astype(str))
    kept = validate_bars(bars, source="bundled", split_jumps="report")
    assert len(kept.quarantine) == 0
    assert pd.Timestamp("2016-04-22") in set(kept.clean["session"])
    assert list(kept.suspect["session"].astype(str)) == ["2016-04-22"]
    assert kept.suspect["reason"].str.startswith("split-jump").all()


def test_bundled_ingest_keeps_every_real_price(tmp_path):
    from py_finance.data.ingest import ingest_bars
    from py_finance.data.sources.bundled import BundledSource
    from py_finance.data.store import Store

    store = Store(tmp_path)
    report = ingest_bars(
        store, BundledSource(), ["AMD"], dt.date(2016, 4, 1), dt.date(2016, 5, 2), progress=False
    )
    assert report.rows_quarantined == 0
    assert report.suspect == ["AMD 2016-04-22"]
    got = store.bars(["AMD"], "2016-04-22", "2016-04-22", pd.Timestamp("2030-01-01", tz="UTC"))
    assert got["adj_close"].item() == pytest.approx(3.99)


def test_a_split_like_jump_is_reported_once_when_it_enters_the_store(tmp_path, caplog):
    # Regression: every ingest of the same data (each live run, each sweep) warned again about
    # the bundled data's split-like jumps, though it kept nothing new.
    from py_finance.data.ingest import ingest_bars
    from py_finance.data.sources.bundled import BundledSource
    from py_finance.data.store import Store

    store = Store(tmp_path)
    args = (store, BundledSource(), ["AMD", "AAPL"], dt.date(2016, 4, 1), dt.date(2016, 5, 2))
    with caplog.at_level(logging.WARNING, logger="py_finance.data.ingest"):
        first = ingest_bars(*args, progress=False)
    assert first.suspect == ["AMD 2016-04-22"]
    assert [r.message for r in caplog.records if "split-like" in r.message] == [
        "kept 1 split-like jumps of adjusted data: ['AMD 2016-04-22']"
    ]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="py_finance.data.ingest"):
        again = ingest_bars(*args, progress=False)
    assert again.suspect == []
    assert "split-like" not in caplog.text
    assert "suspect" not in again.summary()
