"""Stop and resume trading in one command (``run_live_loop.py --halt REASON`` / ``--resume``).

Halting writes the halt file first (so no later run sends an order, whatever happens next),
then cancels every open order at the broker. A halted loop logs and alerts ``halted`` and
sends nothing until the file is removed with ``--resume``.
"""

from __future__ import annotations

import logging

import pandas as pd

from py_finance.io import write_text
from py_finance.live.loop import halt_path, open_broker
from py_finance.pipeline.context import Context

log = logging.getLogger(__name__)

__all__ = ["halt", "halt_path", "resume"]


def halt(ctx: Context, broker: str, reason: str) -> int:
    """Halt trading and cancel ``broker``'s open orders; return how many were canceled.

    The halt holds even when the broker cannot be reached (the cancel is then logged as
    failed and should be repeated).
    """
    path = halt_path(ctx)
    write_text(f"{pd.Timestamp.now(tz='UTC').isoformat()} {reason or 'halted'}\n", path)
    log.warning("trading halted: %s (%s)", reason, path)
    account = open_broker(broker, ctx)
    try:
        return int(account.cancel_open_orders())
    finally:
        close = getattr(account, "close", None)
        if close is not None:
            close()


def resume(ctx: Context) -> bool:
    """Lift a halt; return False when trading was not halted."""
    path = halt_path(ctx)
    if not path.exists():
        return False
    path.unlink()
    log.warning("trading resumed (%s removed)", path)
    return True
