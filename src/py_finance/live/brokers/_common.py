"""Plumbing the brokers share: a SQLite state file, an injected clock, equity marks."""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Callable
from types import TracebackType
from typing import Self

import pandas as pd

from py_finance.errors import PyFinanceError


def utc_now() -> dt.datetime:
    """The current time, tz-aware UTC."""
    return dt.datetime.now(dt.UTC)


def session_key(session: dt.date) -> str:
    """ISO date of a session (a datetime counts by its date)."""
    if isinstance(session, dt.datetime):
        session = session.date()
    return session.isoformat()


class StateFileBroker:
    """Base of the brokers: ``_conn`` (SQLite with an ``equity`` table) and ``_clock``."""

    _conn: sqlite3.Connection
    _clock: Callable[[], dt.datetime]
    _label = "broker"

    def close(self) -> None:
        """Close the SQLite connection."""
        self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _now(self) -> dt.datetime:
        now = self._clock()
        if now.tzinfo is None or now.utcoffset() is None:
            raise PyFinanceError(f"the {self._label}'s clock must return tz-aware datetimes")
        return now.astimezone(dt.UTC)

    def equity_history(self) -> pd.Series:
        """Return recorded equity per session (float64, DatetimeIndex named ``session``)."""
        rows = self._conn.execute("SELECT session, equity FROM equity ORDER BY session").fetchall()
        index = pd.DatetimeIndex([pd.Timestamp(r["session"]) for r in rows], name="session")
        return pd.Series(
            [float(r["equity"]) for r in rows], index=index, name="equity", dtype="float64"
        )
