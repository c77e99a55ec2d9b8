"""Named checkpoints of the daily loop where a fault-injection run kills the process.

``PY_FINANCE_KILL_AT=<checkpoint>`` makes the loop send itself SIGKILL when it reaches that
checkpoint (``PY_FINANCE_KILL_AT=order_sent:2``: at its second visit). The crash-safety tests
kill the loop at each checkpoint in turn and restart it; nothing here runs otherwise.
"""

from __future__ import annotations

import os
import signal

ENV = "PY_FINANCE_KILL_AT"

# In the order the loop reaches them.
CHECKPOINTS = (
    "broker_opened",  # broker connected, nothing read or written yet
    "reconciled",  # journal and broker compared, found orders marked submitted
    "settled",  # the paper broker filled earlier orders at this session's close
    "intents_recorded",  # the session's plan is durable, nothing sent
    "order_sent",  # the broker has the order, the journal does not know yet
    "order_recorded",  # the journal marks it submitted
    "fills_collected",  # every order final (or timed out)
    "marked",  # equity of the session recorded at the broker
    "logged",  # daily log written
)

_visits: dict[str, int] = {}


def checkpoint(name: str) -> None:
    """Kill this process with SIGKILL if ``PY_FINANCE_KILL_AT`` names this visit of ``name``."""
    target = os.environ.get(ENV)
    if not target:
        return
    where, _, nth = target.partition(":")
    if where != name:
        return
    _visits[name] = _visits.get(name, 0) + 1
    if _visits[name] >= int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
