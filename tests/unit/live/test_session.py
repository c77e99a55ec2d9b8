"""The loop's session from the XNYS calendar: DST changes, early closes, holidays."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from py_finance.errors import PyFinanceError
from py_finance.live.session import resolve_session


def at(text: str):
    return resolve_session(pd.Timestamp(text))


@pytest.mark.parametrize(
    ("as_of", "session", "market_open"),
    [
        # Friday before the spring DST change: 16:35 EST is 21:35 UTC.
        ("2024-03-08T21:35Z", dt.date(2024, 3, 8), False),
        ("2024-03-08T20:35Z", dt.date(2024, 3, 7), True),  # 15:35 EST: still open
        # Monday after it: 16:35 EDT is 20:35 UTC, which the Friday rule would miss.
        ("2024-03-11T20:35Z", dt.date(2024, 3, 11), False),
        ("2024-03-11T19:59Z", dt.date(2024, 3, 8), True),  # 15:59 EDT
        # Autumn change: Monday 2024-11-04 closes at 21:00 UTC again.
        ("2024-11-04T20:30Z", dt.date(2024, 11, 1), True),
        ("2024-11-04T21:00Z", dt.date(2024, 11, 4), False),
    ],
)
def test_dst_changes_move_the_close_in_utc_not_in_new_york(as_of, session, market_open):
    info = at(as_of)
    assert info.session == session
    assert info.market_open is market_open
    assert info.close.tz_convert("America/New_York").hour == 16
    assert not info.early_close


def test_an_early_close_counts_from_13_00_new_york():
    # The day after Thanksgiving 2024 closed at 13:00 EST (18:00 UTC).
    info = at("2024-11-29T18:30Z")
    assert info.session == dt.date(2024, 11, 29)
    assert info.early_close
    assert info.close == pd.Timestamp("2024-11-29T18:00Z")
    before = at("2024-11-29T17:30Z")
    assert before.session == dt.date(2024, 11, 27) and before.market_open


def test_a_holiday_is_closed_and_points_at_the_previous_session():
    # Independence Day 2024; 3 July closed early at 13:00.
    info = at("2024-07-04T21:00Z")
    assert info.closed_today and not info.market_open
    assert info.session == dt.date(2024, 7, 3) and info.early_close
    assert "market closed on 2024-07-04" in info.describe()


def test_a_weekend_is_closed():
    info = at("2024-03-09T15:00Z")
    assert info.closed_today
    assert info.session == dt.date(2024, 3, 8)


def test_as_of_must_be_tz_aware():
    with pytest.raises(PyFinanceError, match="time zone"):
        resolve_session(pd.Timestamp("2024-03-08 21:00"))
