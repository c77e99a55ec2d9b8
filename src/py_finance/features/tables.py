"""Point-in-time fundamentals and news tables for feature groups, and their time rules.

The store keeps two times per fact (see ``docs/data.md``):

* **valid time**: what the row describes (``period_end`` of a fundamental value, the
  article itself), and
* **knowledge time**: ``available_at`` (tz-aware UTC), when the market could first know
  the row. A restatement is a new version of the same key with a later ``available_at``;
  the replaced version's ``superseded_at`` is exactly that later ``available_at``.

Feature groups see the tables in the long layouts below, holding every version the store
knew at the run's knowledge time (``as_of``) and nothing learned later. A value is usable
at session t only if its ``available_at`` is at or before the close of t (exchange
calendar, early closes included): the period end date never decides it. Because a version
is superseded exactly when its key's next version becomes available, "the version known at
T" is the version with the latest ``available_at <= T`` of its key, which is the store's
``available_at <= T < superseded_at`` filter.

Layouts
-------
fundamentals
    ``symbol, period_end, field, value, available_at``: one row per stored version.
news
    ``symbol, id, available_at`` and optionally ``sentiment``: one row per article, with the
    time the store first knew it (its earliest version).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from py_finance.errors import DataError

log = logging.getLogger(__name__)

FUNDAMENTALS_COLUMNS = ("symbol", "period_end", "field", "value", "available_at")
NEWS_COLUMNS = ("symbol", "id", "available_at")
TABLES = ("fundamentals", "news")
# Knowledge cut of a date that is not a session of the calendar (synthetic test data).
_NON_SESSION_CLOSE = pd.Timedelta(hours=16)


# ------------------------------------------------------------------ session closes
def session_cutoffs(sessions: pd.DatetimeIndex, calendar: str = "XNYS") -> np.ndarray:
    """Knowledge cut of each session: its close, as int64 UTC nanoseconds.

    Early closes come from the exchange calendar; a date that is not a session of the
    calendar is cut at 16:00 New York time.
    """
    from py_finance.data.calendar import get_calendar

    days = pd.DatetimeIndex(sessions)
    if days.tz is not None:
        days = days.tz_localize(None)
    days = days.normalize()
    closes = get_calendar(calendar).schedule["close"]
    known = pd.DatetimeIndex(closes.reindex(days)).tz_convert("UTC")
    fallback = (days + _NON_SESSION_CLOSE).tz_localize("America/New_York").tz_convert("UTC")
    out = known.where(np.asarray(known.notna()), fallback)
    return np.asarray(out.as_unit("ns").asi8, dtype="int64")


def session_timeline(
    sessions: pd.DatetimeIndex, calendar: str = "XNYS", before: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Calendar sessions around ``sessions`` for windows counted in sessions.

    Returns ``(cutoffs, positions)``: the knowledge cuts (int64 UTC ns) of the calendar's
    sessions from ``before`` sessions ahead of the first date through the last date (plus
    any date of ``sessions`` the calendar does not have), and the position of each date of
    ``sessions`` in it. A window of w sessions ending at t is then ``(cutoffs[pos - w],
    cutoffs[pos]]``, whatever sessions the data itself has.
    """
    from py_finance.data.calendar import get_calendar

    days = pd.DatetimeIndex(sessions)
    if days.tz is not None:
        days = days.tz_localize(None)
    days = days.normalize()
    if len(days) == 0:
        return np.empty(0, dtype="int64"), np.empty(0, dtype="int64")
    cal = pd.DatetimeIndex(get_calendar(calendar).sessions)
    if cal.tz is not None:
        cal = cal.tz_localize(None)
    first = max(0, int(cal.searchsorted(days[0])) - before)
    last = int(cal.searchsorted(days[-1], side="right"))
    timeline = cal[first:last].union(days)
    return session_cutoffs(timeline, calendar), timeline.get_indexer(days).astype("int64")


# ------------------------------------------------------------------ layouts
def _utc_ns(values: Any) -> np.ndarray:
    stamps = pd.DatetimeIndex(pd.to_datetime(values, utc=True))
    if stamps.isna().any():
        raise DataError("table rows without available_at (knowledge time)")
    return np.asarray(stamps.as_unit("ns").asi8, dtype="int64")


def _require(frame: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(f"{what} table is missing columns {missing}; layout: {list(columns)}")


def fundamentals_arrays(frame: pd.DataFrame) -> pd.DataFrame:
    """The fundamentals layout with ``period_end`` as day numbers and ``known`` as UTC ns."""
    _require(frame, FUNDAMENTALS_COLUMNS, "fundamentals")
    period = pd.to_datetime(frame["period_end"]).to_numpy(dtype="datetime64[D]")
    return pd.DataFrame(
        {
            "symbol": frame["symbol"].astype(str).to_numpy(),
            "field": frame["field"].astype(str).to_numpy(),
            "period_end": period.astype("int64"),
            "value": pd.to_numeric(frame["value"], errors="coerce").to_numpy(dtype="float64"),
            "known": _utc_ns(frame["available_at"]),
        }
    )


def news_arrays(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per article (its earliest knowledge time ``known``, UTC ns), by time.

    ``sentiment`` (float, NaN when absent) is the one of the article's earliest version.
    """
    _require(frame, NEWS_COLUMNS, "news")
    out = pd.DataFrame(
        {
            "symbol": frame["symbol"].astype(str).to_numpy(),
            "id": frame["id"].astype(str).to_numpy(),
            "known": _utc_ns(frame["available_at"]),
            "sentiment": (
                pd.to_numeric(frame["sentiment"], errors="coerce").to_numpy(dtype="float64")
                if "sentiment" in frame.columns
                else np.full(len(frame), np.nan)
            ),
        }
    )
    out = out.iloc[np.argsort(out["known"].to_numpy(), kind="stable")]
    return out.drop_duplicates(["symbol", "id"], keep="first").reset_index(drop=True)


def known_by(frame: pd.DataFrame | None, cutoff: int | pd.Timestamp) -> pd.DataFrame | None:
    """Rows of a table known at ``cutoff`` (``available_at <= cutoff``): a table as of then."""
    if frame is None:
        return None
    cut = pd.Timestamp(cutoff, tz="UTC") if isinstance(cutoff, (int, np.integer)) else cutoff
    keep = pd.to_datetime(frame["available_at"], utc=True) <= pd.Timestamp(cut)
    return frame.loc[np.asarray(keep)].reset_index(drop=True)


# ------------------------------------------------------------------ store reads
def _view_columns(con: Any, table: str) -> list[str] | None:
    names = {
        r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()
    }
    if table not in names:
        return None
    return [str(r[0]) for r in con.execute(f"DESCRIBE {table}").fetchall()]


def _read(
    store: Any,
    table: str,
    select: str,
    symbols: Sequence[str] | None,
    as_of: dt.datetime | pd.Timestamp | str,
    *,
    optional: Mapping[str, str] | None = None,
    group_by: str = "",
) -> pd.DataFrame | None:
    from py_finance.data.store import to_utc

    t = to_utc(as_of)
    con = store.sql()
    try:
        columns = _view_columns(con, table)
        if columns is None:
            return None
        extra = [expr for col, expr in (optional or {}).items() if col in columns]
        select = ", ".join([select, *extra])
        where = "available_at <= $as_of"
        params: dict[str, Any] = {"as_of": t.to_pydatetime()}
        if symbols is not None:
            where += " AND symbol IN (SELECT UNNEST($symbols))"
            params["symbols"] = [str(s).upper() for s in symbols]
        frame = con.execute(f"SELECT {select} FROM {table} WHERE {where} {group_by}", params).df()
    finally:
        con.close()
    if frame.empty:
        return None
    frame["available_at"] = pd.to_datetime(frame["available_at"], utc=True)
    return frame


def read_fundamentals(
    store: Any,
    symbols: Sequence[str] | None,
    as_of: dt.datetime | pd.Timestamp | str,
) -> pd.DataFrame | None:
    """Every fundamentals version the store knew at ``as_of`` (``None``: no rows).

    Restated values keep their earlier versions (each with its own ``available_at``), so a
    feature at session t can use the version known at the close of t; versions that became
    available after ``as_of`` are not read.
    """
    frame = _read(store, "fundamentals", ", ".join(FUNDAMENTALS_COLUMNS), symbols, as_of)
    if frame is None:
        return None
    frame["period_end"] = pd.to_datetime(frame["period_end"])
    return frame.sort_values(["symbol", "field", "period_end", "available_at"]).reset_index(
        drop=True
    )


def read_news(
    store: Any,
    symbols: Sequence[str] | None,
    as_of: dt.datetime | pd.Timestamp | str,
) -> pd.DataFrame | None:
    """Articles the store knew at ``as_of``, each with its first knowledge time (``None``: none).

    ``sentiment`` is included when the store's news table has such a column.
    """
    frame = _read(
        store,
        "news",
        "symbol, id, MIN(available_at) AS available_at",
        symbols,
        as_of,
        optional={"sentiment": "arg_min(sentiment, available_at) AS sentiment"},
        group_by="GROUP BY symbol, id",
    )
    if frame is None:
        return None
    return frame.sort_values(["available_at", "symbol", "id"]).reset_index(drop=True)


def read_tables(
    store: Any,
    tables: Sequence[str],
    symbols: Sequence[str] | None,
    as_of: dt.datetime | pd.Timestamp | str,
) -> dict[str, pd.DataFrame | None]:
    """``{table: frame or None}`` for the named tables (``fundamentals``, ``news``)."""
    readers = {"fundamentals": read_fundamentals, "news": read_news}
    out: dict[str, pd.DataFrame | None] = {}
    for name in tables:
        if name not in readers:
            raise DataError(f"unknown feature table {name!r}; tables: {TABLES}")
        out[name] = readers[name](store, symbols, as_of)
        if out[name] is None:
            log.info("features: the store has no %s known at %s", name, as_of)
    return out
