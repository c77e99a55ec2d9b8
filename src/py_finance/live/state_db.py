"""SQLite plumbing shared by the paper broker and the intent journal."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def connect(state_path: str | os.PathLike[str]) -> sqlite3.Connection:
    """Open a SQLite state file in autocommit mode (transactions are explicit).

    Parameters
    ----------
    state_path
        SQLite file; its folder is created if missing.

    Returns
    -------
    sqlite3.Connection
        Rows as :class:`sqlite3.Row`; a writer waits up to 30 s for another process's lock.
    """
    path = Path(state_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=30.0, isolation_level=None)
    conn.row_factory = sqlite3.Row
    return conn


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """Run a block as one write transaction: commit on success, roll back on any error."""
    # IMMEDIATE takes the write lock up front, so a "seen this id?" check and the write that
    # follows cannot interleave with another process doing the same.
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
