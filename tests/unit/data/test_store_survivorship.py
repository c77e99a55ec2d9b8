"""Delistings, point-in-time sectors and the membership mask of the store."""

from __future__ import annotations

import pandas as pd
import pytest

from py_finance.data.store import Store, end_of_day_utc, membership_mask
from py_finance.errors import DataError

DELISTINGS = pd.DataFrame(
    {
        "symbol": ["bbb", "CCC"],
        "date": ["2020-03-02", "2020-06-01"],
        "delisting_return": [-1.0, 0.25],
    }
)


def test_a_delisting_is_known_from_the_close_of_its_session(tmp_path):
    store = Store(tmp_path)
    store.write_delistings(DELISTINGS)
    assert store.delistings(end_of_day_utc("2020-02-28")).empty
    # before the close of the delisting session it is not known yet
    assert store.delistings(pd.Timestamp("2020-03-02 20:00", tz="UTC")).empty
    known = store.delistings(end_of_day_utc("2020-03-02"))
    assert list(known["symbol"]) == ["BBB"] and known["delisting_return"].iloc[0] == -1.0
    assert list(store.delistings(end_of_day_utc("2020-12-31"))["symbol"]) == ["BBB", "CCC"]
    # writing the same again adds nothing
    assert store.write_delistings(DELISTINGS).rows_added == 0


def test_a_delisting_return_below_minus_one_is_refused(tmp_path):
    bad = DELISTINGS.assign(delisting_return=[-1.5, 0.0])
    with pytest.raises(DataError, match=r"BBB.*-1\.5.*>= -1"):
        Store(tmp_path).write_delistings(bad)


def test_point_in_time_sectors_change_on_their_session(tmp_path):
    store = Store(tmp_path)
    sectors = pd.DataFrame(
        {
            "symbol": ["AAA", "AAA", "BBB"],
            "name": ["A", "A", "B"],
            "sector": ["Energy", "Utilities", "Financials"],
            "from": ["2020-01-02", "2020-05-01", None],
        }
    )
    store.write_sectors(sectors, available_at=end_of_day_utc("2020-01-02"))
    before = store.sectors(end_of_day_utc("2020-04-30"))
    assert before.to_dict() == {"AAA": "Energy", "BBB": "Financials"}
    after = store.sectors(end_of_day_utc("2020-05-01"))
    assert after.to_dict() == {"AAA": "Utilities", "BBB": "Financials"}
    history = store.sector_history(end_of_day_utc("2020-12-31"))
    assert len(history) == 3 and history["from"].isna().sum() == 1


def test_membership_mask_is_true_inside_spells_only():
    sessions = pd.bdate_range("2020-01-01", periods=6)
    spells = pd.DataFrame(
        {
            "symbol": ["A", "B", "B", "C"],
            "start": [sessions[0], sessions[1], sessions[4], sessions[2]],
            "end": [pd.NaT, sessions[2], pd.NaT, sessions[2]],
        }
    )
    mask = membership_mask(spells, sessions, ["A", "B", "C", "D"])
    assert mask["A"].all()
    assert mask["B"].tolist() == [False, True, True, False, True, True]
    assert mask["C"].tolist() == [False, False, True, False, False, False]
    assert not mask["D"].any()


def _sessions(start: str, n: int) -> pd.DatetimeIndex:
    from py_finance.data.calendar import sessions

    return sessions(start, pd.Timestamp(start) + pd.Timedelta(days=3 * n), "XNYS")[:n]


def test_a_name_is_not_tradable_on_its_last_member_session():
    from py_finance.data.store import tradable_mask

    sessions = _sessions("2020-01-02", 8)
    spells = pd.DataFrame(
        {
            "symbol": ["A", "B", "B", "C"],
            "start": [sessions[0], sessions[1], sessions[4], sessions[2]],
            "end": [pd.NaT, sessions[3], pd.NaT, sessions[2]],
        }
    )
    mask = tradable_mask(spells, sessions, ["A", "B", "C"])
    members = membership_mask(spells, sessions, ["A", "B", "C"])
    assert mask["A"].all()
    # B's exit at its 4th session is known at that close: bought then, it would be held
    # only from the 5th on; its next spell counts from its own first session
    assert members["B"].tolist() == [False, True, True, True, True, True, True, True]
    assert mask["B"].tolist() == [False, True, True, False, True, True, True, True]
    assert not mask["C"].any()  # a one-session spell is never bought
    assert (mask <= members).all().all()


def test_an_exit_known_in_advance_stops_buying_when_the_fill_would_be_on_or_after_it():
    from py_finance.data.calendar import session_closes
    from py_finance.data.store import tradable_mask

    sessions = _sessions("2020-01-02", 8)
    closes = session_closes(sessions)
    # announced at the close of the 2nd session: the last member session is the 6th
    spells = pd.DataFrame(
        {"symbol": ["A"], "start": [sessions[0]], "end": [sessions[5]], "available_at": [closes[1]]}
    )
    lag1 = tradable_mask(spells, sessions, ["A"], execution_lag=1)["A"].tolist()
    assert lag1 == [True, True, True, True, False, False, False, False]
    lag2 = tradable_mask(spells, sessions, ["A"], execution_lag=2)["A"].tolist()
    assert lag2 == [True, True, True, False, False, False, False, False]
    # known only at the 6th close (the store's own versions): that session only
    late = spells.assign(available_at=[closes[5]])
    assert tradable_mask(late, sessions, ["A"])["A"].tolist() == [True] * 5 + [False] * 3
    # an exit after the grid's last session, known at its last close (the live loop's day)
    grid = sessions[:5]
    ahead = spells.assign(end=[sessions[5]], available_at=[closes[4]])
    assert tradable_mask(ahead, grid, ["A"])["A"].tolist() == [True] * 4 + [False]
    later = spells.assign(end=[sessions[6]], available_at=[closes[4]])
    assert tradable_mask(later, grid, ["A"])["A"].tolist() == [True] * 5
