"""One lock per project for the jobs that act on what trades: the live loop and the retrain job.

``<live.state_dir>/jobs.lock`` held with ``flock`` for the whole run (shared by live runs,
exclusive for the retrain job): a retrain never moves ``@champion`` while a live run trades,
and a live run never trades while a retrain is deciding.
The lock dies with its process (a killed job leaves nothing to clean up).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path

from py_finance.errors import PyFinanceError
from py_finance.pipeline.context import Context

log = logging.getLogger(__name__)


def lock_path(ctx: Context) -> Path:
    """The project's job lock file."""
    return ctx.root / ctx.settings.live.state_dir / "jobs.lock"


@contextlib.contextmanager
def job_lock(
    ctx: Context, job: str, *, wait_s: float = 0.0, poll_s: float = 1.0, shared: bool = False
) -> Iterator[None]:
    """Hold the project's job lock while the block runs.

    Live runs hold it ``shared`` (they may overlap one another: the journal keeps their
    orders apart); the retrain job holds it exclusively.

    Parameters
    ----------
    ctx
        The project.
    job
        What holds it (``live`` or ``retrain``): written into the file for the refusal message.
    wait_s
        How long to wait for another job to end; 0 refuses at once.
    poll_s
        Seconds between tries while waiting.
    shared
        Take it shared (live runs) rather than exclusive (the retrain job).

    Raises
    ------
    PyFinanceError
        Another job held the lock for longer than ``wait_s``; nothing was done.
    """
    path = lock_path(ctx)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + max(wait_s, 0.0)
        while True:
            try:
                fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = path.read_text(encoding="utf-8", errors="replace").strip()
                    raise PyFinanceError(
                        f"{holder or 'another job'} is running in this project ({path}): the "
                        f"{job} job did nothing; run it again when that one has ended"
                    ) from None
                time.sleep(poll_s)
        # Who holds it, for the message of a job refused meanwhile.
        os.ftruncate(fd, 0)
        os.write(fd, (b"a live run" if shared else f"the {job} job (pid {os.getpid()})".encode()))
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
