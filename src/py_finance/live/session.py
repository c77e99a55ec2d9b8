"""Which session the daily loop acts on, from the exchange calendar (never from weekdays).

The loop runs after the close. At a knowledge time ``as_of`` it acts on the latest session
whose close (early closes included) is at or before ``as_of``; the exchange calendar's close
times are tz-aware, so daylight-saving changes need no special case: a cron line with
``CRON_TZ=America/New_York`` fires at the same New York time all year.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pandas as pd

from py_finance.data.calendar import get_calendar
from py_finance.errors import PyFinanceError

NEW_YORK = "America/New_York"


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """The loop's session at ``as_of``.

    Parameters
    ----------
    as_of
        Knowledge time (tz-aware UTC).
    session
        Latest session closed at ``as_of``.
    close
        That session's close (tz-aware UTC); earlier than 16:00 New York on an early close.
    early_close
        Whether ``session`` closed early.
    today
        ``as_of``'s date in New York.
    today_is_session
        Whether ``today`` is a trading session (False on weekends and holidays).
    market_open
        Whether the market is open at ``as_of`` (a session of today has opened, not closed).
    next_close
        Close of the next session after ``session`` (tz-aware UTC).
    """

    as_of: pd.Timestamp
    session: dt.date
    close: pd.Timestamp
    early_close: bool
    today: dt.date
    today_is_session: bool
    market_open: bool
    next_close: pd.Timestamp

    @property
    def closed_today(self) -> bool:
        """True when ``today`` is not a session (weekend or holiday)."""
        return not self.today_is_session

    def describe(self) -> str:
        """One line for logs and alerts."""
        close_ny = self.close.tz_convert(NEW_YORK)
        parts = [f"session {self.session} (closed {close_ny:%H:%M} New York"]
        parts.append(", early close)" if self.early_close else ")")
        if self.closed_today:
            parts.append(f"; market closed on {self.today} (weekend or holiday)")
        elif self.market_open:
            parts.append(f"; market open now, {self.today} closes at {self._next_close_ny()}")
        return "".join(parts)

    def _next_close_ny(self) -> str:
        return f"{self.next_close.tz_convert(NEW_YORK):%H:%M} New York"


def resolve_session(as_of: pd.Timestamp, calendar: str = "XNYS") -> SessionInfo:
    """Return the latest session closed at ``as_of`` and the market's state then.

    Raises
    ------
    PyFinanceError
        ``as_of`` is naive, or before the calendar's first session.
    """
    if as_of.tzinfo is None:
        raise PyFinanceError("as_of needs a time zone (e.g. 2024-03-15T21:00Z)")
    as_of = as_of.tz_convert("UTC")
    cal = get_calendar(calendar)
    schedule = cal.schedule
    closes = pd.DatetimeIndex(schedule["close"])
    closes = closes.tz_convert("UTC") if closes.tz is not None else closes.tz_localize("UTC")
    opens = pd.DatetimeIndex(schedule["open"])
    opens = opens.tz_convert("UTC") if opens.tz is not None else opens.tz_localize("UTC")
    pos = int(closes.searchsorted(as_of, side="right")) - 1
    if pos < 0 or pos + 1 >= len(closes):
        raise PyFinanceError(f"{as_of} is outside the {calendar} calendar's range")
    session = schedule.index[pos].date()
    close = closes[pos]
    regular = pd.Timestamp.combine(session, dt.time(16, 0)).tz_localize(NEW_YORK)
    today = as_of.tz_convert(NEW_YORK).date()
    today_ts = pd.Timestamp(today)
    today_is_session = bool(cal.is_session(today_ts))
    nxt = pos + 1
    market_open = bool(opens[nxt] <= as_of < closes[nxt])
    return SessionInfo(
        as_of=as_of,
        session=session,
        close=close,
        early_close=bool(close < regular.tz_convert("UTC")),
        today=today,
        today_is_session=today_is_session,
        market_open=market_open,
        next_close=closes[nxt],
    )
