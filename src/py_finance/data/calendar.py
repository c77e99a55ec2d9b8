"""Trading sessions from the exchange calendar (XNYS), never from weekdays."""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass
from typing import Any

import pandas as pd

from py_finance.errors import DataError

# exchange_calendars keeps about 20 years by default; the bundled data starts in 1990.
_CALENDAR_START = "1985-01-02"


@functools.lru_cache(maxsize=4)
def get_calendar(name: str = "XNYS", end: str | None = None) -> Any:
    """Return an ``exchange_calendars`` calendar covering 1985 to ``end`` (default: +1 year)."""
    import exchange_calendars as xcals

    if end is None:
        end = str(pd.Timestamp.now(tz="UTC").year + 1) + "-12-31"
    try:
        return xcals.get_calendar(name, start=_CALENDAR_START, end=end)
    except Exception as exc:  # unknown calendar names and bounds errors
        raise DataError(f"cannot build trading calendar {name!r}: {exc}") from exc


def sessions(start: dt.date | str, end: dt.date | str, calendar: str = "XNYS") -> pd.DatetimeIndex:
    """Sessions of ``calendar`` from ``start`` to ``end`` inclusive (tz-naive dates)."""
    cal = get_calendar(calendar)
    return pd.DatetimeIndex(cal.sessions_in_range(pd.Timestamp(start), pd.Timestamp(end)))


def session_closes(index: pd.DatetimeIndex, calendar: str = "XNYS") -> pd.DatetimeIndex:
    """Close time (tz-aware UTC) of each session in ``index``; early closes included."""
    cal = get_calendar(calendar)
    closes = cal.schedule["close"]
    missing = index.difference(closes.index)
    if len(missing):
        raise DataError(
            f"{len(missing)} dates are not {calendar} sessions (first: {missing[0].date()})"
        )
    out = pd.DatetimeIndex(closes.loc[index])
    return out.tz_convert("UTC") if out.tz is not None else out.tz_localize("UTC")


@dataclass(frozen=True, slots=True)
class CalendarCheck:
    """What a calendar check found: sessions missing from the data and dates that are no session."""

    calendar: str
    first: dt.date
    last: dt.date
    n_dates: int
    missing_sessions: tuple[dt.date, ...]
    extra_dates: tuple[dt.date, ...]

    @property
    def ok(self) -> bool:
        """True when the data's dates are exactly the calendar's sessions."""
        return not self.missing_sessions and not self.extra_dates

    def summary(self) -> str:
        """One line for logs and reports."""

        def show(dates: tuple[dt.date, ...]) -> str:
            head = ", ".join(d.isoformat() for d in dates[:5])
            return f"{len(dates)} ({head}{', ...' if len(dates) > 5 else ''})"

        return (
            f"{self.calendar} check {self.first}..{self.last}: {self.n_dates} dates, "
            f"missing sessions {show(self.missing_sessions)}, "
            f"extra non-session dates {show(self.extra_dates)}"
        )


def check_sessions(
    dates: pd.DatetimeIndex, calendar: str = "XNYS", *, through: dt.date | None = None
) -> CalendarCheck:
    """Compare ``dates`` with the calendar's sessions from the first date to ``through``.

    ``through`` defaults to the last date; pass the end of the requested range to see
    sessions missing at the end of the data as well.
    """
    dates = pd.DatetimeIndex(dates).normalize().unique().sort_values()
    if len(dates) == 0:
        raise DataError("no dates to check against the calendar")
    last = pd.Timestamp(through) if through is not None else dates[-1]
    expected = sessions(dates[0], max(last, dates[-1]), calendar)
    return CalendarCheck(
        calendar=calendar,
        first=dates[0].date(),
        last=max(last, dates[-1]).date(),
        n_dates=len(dates),
        missing_sessions=tuple(d.date() for d in expected.difference(dates)),
        extra_dates=tuple(d.date() for d in dates.difference(expected)),
    )


# Refit / rebalance frequencies used across the project, as pandas period codes.
PERIODS = {"yearly": "Y", "quarterly": "Q", "monthly": "M"}


def period_starts(sessions: pd.DatetimeIndex, period: str) -> pd.DatetimeIndex:
    """First session of each calendar period (``yearly``, ``quarterly``, ``monthly``)."""
    sessions = pd.DatetimeIndex(sessions)
    keys = sessions.to_period(PERIODS[period])
    return sessions[~pd.Index(keys).duplicated()]
