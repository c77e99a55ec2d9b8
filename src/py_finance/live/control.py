"""Stop and resume trading in one command (``run_live_loop.py --halt REASON`` / ``--resume``).

Halting writes the halt file first (so no later run sends an order, whatever happens next),
then cancels every open order at the broker. A halted loop logs and alerts ``halted`` and
sends nothing until the file is removed with ``--resume``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import pandas as pd

from py_finance.errors import PyFinanceError
from py_finance.io import write_text
from py_finance.live.loop import halt_path, open_broker
from py_finance.pipeline.context import Context

log = logging.getLogger(__name__)

__all__ = ["HaltResult", "halt", "halt_path", "resume"]


@dataclass(frozen=True, slots=True)
class HaltResult:
    """What ``--halt`` did.

    Parameters
    ----------
    in_force
        The halt file exists: no later run sends an order until ``--resume``.
    path
        The halt file.
    canceled
        Open orders the broker canceled; None when the cancel failed.
    error
        Why the halt file could not be written or the cancel failed; empty when neither.
    """

    in_force: bool
    path: str
    canceled: int | None
    error: str = ""

    def describe(self) -> str:
        """One line for the terminal that always says whether the halt is in force."""
        if not self.in_force:
            return f"trading is NOT halted: {self.error}"
        head = (
            f"trading halted: the halt is in force ({self.path}); no order is sent until --resume"
        )
        if self.canceled is None:
            return (
                f"{head}; but cancelling the open orders failed ({self.error}): they may still "
                "fill; run --halt again once the broker answers, or cancel them at the broker"
            )
        return f"{head}; {self.canceled} open order(s) canceled"


def halt(ctx: Context, broker: str, reason: str) -> HaltResult:
    """Halt trading, then cancel ``broker``'s open orders.

    The halt file is written first, so the halt holds whatever the broker does; a broker
    that cannot be reached (or a missing key) is reported in the result, never raised.
    """
    path = halt_path(ctx)
    try:
        write_text(f"{pd.Timestamp.now(tz='UTC').isoformat()} {reason or 'halted'}\n", path)
    except OSError as exc:
        log.error("could not write the halt file %s: %s", path, exc)
        return HaltResult(False, str(path), None, f"could not write {path}: {exc}")
    log.warning("trading halted: %s (%s)", reason, path)
    try:
        account = open_broker(broker, ctx)
        try:
            canceled = int(account.cancel_open_orders())
        finally:
            close = getattr(account, "close", None)
            if close is not None:
                close()
    except Exception as exc:  # whatever failed, the operator must learn the halt holds
        detail = str(exc) if isinstance(exc, PyFinanceError) else f"{type(exc).__name__}: {exc}"
        log.error("halt in force, but cancelling %s's open orders failed: %s", broker, detail)
        return HaltResult(True, str(path), None, detail)
    return HaltResult(True, str(path), canceled)


def resume(ctx: Context) -> bool:
    """Lift a halt; return False when trading was not halted."""
    path = halt_path(ctx)
    if not path.exists():
        return False
    path.unlink()
    log.warning("trading resumed (%s removed)", path)
    return True
