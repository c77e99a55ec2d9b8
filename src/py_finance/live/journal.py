"""Durable order intents: written and committed before any order is sent.

The loop records the day's planned intents, then submits each pending one and marks it
submitted. After a crash the pending intents are submitted again; because every intent
carries a deterministic ``client_order_id`` and brokers return the existing fill for a known
id, an intent that reached the broker before the crash is not traded twice.

The journal is the ``intents`` table of a SQLite file; the paper broker's state file is fine.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import sqlite3
from collections.abc import Sequence

from py_finance.errors import PyFinanceError
from py_finance.live.orders import OrderIntent
from py_finance.live.state_db import connect, transaction

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS intents (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    client_order_id TEXT NOT NULL UNIQUE,
    session TEXT NOT NULL,
    symbol TEXT NOT NULL,
    side TEXT NOT NULL,
    qty REAL NOT NULL,
    ref_price REAL NOT NULL,
    notional REAL NOT NULL,
    recorded_at TEXT NOT NULL,
    submitted_at TEXT,
    abandoned_at TEXT
)
"""


def _open(db_path: str | os.PathLike[str]) -> sqlite3.Connection:
    conn = connect(db_path)
    conn.execute(_SCHEMA)
    columns = {r["name"] for r in conn.execute("PRAGMA table_info(intents)")}
    if "abandoned_at" not in columns:  # journals written before intents could be abandoned
        conn.execute("ALTER TABLE intents ADD COLUMN abandoned_at TEXT")
    return conn


def _intent(r: sqlite3.Row) -> OrderIntent:
    return OrderIntent(
        client_order_id=r["client_order_id"],
        session=dt.date.fromisoformat(r["session"]),
        symbol=r["symbol"],
        side=r["side"],
        qty=float(r["qty"]),
        ref_price=float(r["ref_price"]),
        notional=float(r["notional"]),
    )


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def record_intents(db_path: str | os.PathLike[str], intents: Sequence[OrderIntent]) -> int:
    """Write ``intents`` durably, in order, in one committed transaction.

    Parameters
    ----------
    db_path
        SQLite file of the journal (created if missing).
    intents
        Intents in the order they are to be submitted (as :func:`plan_orders` returns them).

    Returns
    -------
    int
        How many were new. An id already in the journal keeps its first record: it may
        already have been sent as first planned.
    """
    now = _utc_now().isoformat()
    conn = _open(db_path)
    try:
        with transaction(conn):
            before = conn.total_changes
            conn.executemany(
                "INSERT OR IGNORE INTO intents (client_order_id, session, symbol, side, qty, "
                "ref_price, notional, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        i.client_order_id,
                        i.session.isoformat(),
                        i.symbol,
                        i.side,
                        i.qty,
                        i.ref_price,
                        i.notional,
                        now,
                    )
                    for i in intents
                ],
            )
            added = conn.total_changes - before
    finally:
        conn.close()
    if added < len(intents):
        log.info("%d of %d intents were already journaled", len(intents) - added, len(intents))
    return added


def pending_intents(
    db_path: str | os.PathLike[str], *, session: dt.date | None = None
) -> list[OrderIntent]:
    """Return the recorded intents not yet marked submitted, in recording order.

    Parameters
    ----------
    db_path
        SQLite file of the journal.
    session
        Only intents of this session; all sessions when None.
    """
    conn = _open(db_path)
    try:
        query = "SELECT * FROM intents WHERE submitted_at IS NULL AND abandoned_at IS NULL"
        args: tuple[str, ...] = ()
        if session is not None:
            query += " AND session = ?"
            args = (session.isoformat(),)
        rows = conn.execute(query + " ORDER BY seq", args).fetchall()
    finally:
        conn.close()
    return [_intent(r) for r in rows]


def session_intents(db_path: str | os.PathLike[str], session: dt.date) -> list[OrderIntent]:
    """Return every intent recorded for ``session`` (submitted or not), in recording order.

    A non-empty answer means the session's plan is fixed: a restarted loop sends these,
    never a new plan, so a crash between orders cannot leave two different plans half-sent.
    """
    conn = _open(db_path)
    try:
        rows = conn.execute(
            "SELECT * FROM intents WHERE session = ? AND abandoned_at IS NULL ORDER BY seq",
            (session.isoformat(),),
        ).fetchall()
    finally:
        conn.close()
    return [_intent(r) for r in rows]


def submitted_ids(db_path: str | os.PathLike[str]) -> set[str]:
    """Return the ids of every intent ever marked submitted."""
    conn = _open(db_path)
    try:
        rows = conn.execute(
            "SELECT client_order_id FROM intents WHERE submitted_at IS NOT NULL"
        ).fetchall()
    finally:
        conn.close()
    return {r["client_order_id"] for r in rows}


def all_ids(db_path: str | os.PathLike[str]) -> set[str]:
    """Return the ids of every journaled intent."""
    conn = _open(db_path)
    try:
        rows = conn.execute("SELECT client_order_id FROM intents").fetchall()
    finally:
        conn.close()
    return {r["client_order_id"] for r in rows}


def mark_abandoned(db_path: str | os.PathLike[str], client_order_id: str) -> None:
    """Mark an intent that never reached the broker as never to be sent (a past session's)."""
    conn = _open(db_path)
    try:
        with transaction(conn):
            conn.execute(
                "UPDATE intents SET abandoned_at = ? WHERE client_order_id = ? "
                "AND submitted_at IS NULL",
                (_utc_now().isoformat(), client_order_id),
            )
    finally:
        conn.close()


def mark_submitted(db_path: str | os.PathLike[str], client_order_id: str) -> None:
    """Mark a journaled intent as submitted (its broker answer is in hand).

    Marking an intent already marked changes nothing.

    Raises
    ------
    PyFinanceError
        ``client_order_id`` was never recorded: record intents before submitting them.
    """
    conn = _open(db_path)
    try:
        with transaction(conn):
            row = conn.execute(
                "SELECT submitted_at FROM intents WHERE client_order_id = ?", (client_order_id,)
            ).fetchone()
            if row is None:
                raise PyFinanceError(
                    f"order {client_order_id} is not in the journal; record intents "
                    "before submitting them"
                )
            if row["submitted_at"] is None:
                conn.execute(
                    "UPDATE intents SET submitted_at = ? WHERE client_order_id = ?",
                    (_utc_now().isoformat(), client_order_id),
                )
    finally:
        conn.close()


def intents_from(db_path: str | os.PathLike[str], first_session: dt.date) -> list[OrderIntent]:
    """Return the intents of ``first_session`` and later (not abandoned), in recording order."""
    conn = _open(db_path)
    try:
        rows = conn.execute(
            "SELECT * FROM intents WHERE session >= ? AND abandoned_at IS NULL ORDER BY seq",
            (first_session.isoformat(),),
        ).fetchall()
    finally:
        conn.close()
    return [_intent(r) for r in rows]
