"""Reconcile the order journal and the last daily log with the broker, the source of truth.

Run at the start of every (non dry-run) loop, so a restart after a crash picks up where the
crashed run stopped:

- an intent journaled but not marked submitted is looked up at the broker by its
  ``client_order_id``: found, and the broker's order has the intent's symbol, side and
  quantity -> it was sent before the crash, mark it submitted (never send it again); found
  but another order (the id is taken) -> a conflict, reported and never marked submitted
  (sending it is refused by the broker adapter); not found and of today's session -> it is
  sent by this run; not found and of an earlier session -> abandoned (a stale order is
  never sent late) and reported;
- positions the broker reports are compared with what the last daily log plus every order
  filled since then implies; a difference is reported (an alert), and the loop goes on with
  the broker's positions;
- an open order at the broker the journal never recorded is reported.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from py_finance.live.brokers.base import Broker
from py_finance.live.journal import (
    all_ids,
    intents_from,
    mark_abandoned,
    mark_submitted,
    pending_intents,
)
from py_finance.live.orders import OrderIntent, order_mismatch

log = logging.getLogger(__name__)

# Share quantities that differ by less than this (relative to the larger) agree.
_QTY_RTOL = 1e-6
_QTY_ATOL = 1e-6


@dataclass(frozen=True, slots=True)
class Reconciliation:
    """What the start-of-run reconciliation found.

    Parameters
    ----------
    found_at_broker
        Journaled intents the journal did not know were sent, found at the broker.
    to_send
        Intents of today's session the broker never received (sent by this run).
    abandoned
        Intents of earlier sessions the broker never received; never sent.
    unknown_open_orders
        Open orders at the broker that the journal never recorded.
    position_differences
        ``symbol -> (expected shares, broker shares)`` where they disagree.
    conflicts
        ``client_order_id -> the broker's order`` for journaled intents whose id the broker
        has for another order (symbol, side or quantity differ): not ours, never accepted.
    """

    found_at_broker: list[str] = field(default_factory=list)
    to_send: list[OrderIntent] = field(default_factory=list)
    abandoned: list[str] = field(default_factory=list)
    unknown_open_orders: list[str] = field(default_factory=list)
    position_differences: dict[str, tuple[float, float]] = field(default_factory=dict)
    conflicts: dict[str, str] = field(default_factory=dict)

    @property
    def clean(self) -> bool:
        """True when nothing needs a person's attention."""
        return not (
            self.abandoned
            or self.unknown_open_orders
            or self.position_differences
            or self.conflicts
        )

    def messages(self) -> list[str]:
        """One line per finding a person should read."""
        out = [
            f"order {coid} of an earlier session never reached the broker; not sent"
            for coid in self.abandoned
        ]
        out += [
            f"open order {coid} at the broker is not in the journal"
            for coid in self.unknown_open_orders
        ]
        out += [
            f"{sym}: broker holds {broker:.6g} sh, journal and logs imply {expected:.6g} sh"
            for sym, (expected, broker) in sorted(self.position_differences.items())
        ]
        out += [
            f"order {coid} is taken at the broker by another order ({other}): not ours, "
            "not marked sent"
            for coid, other in sorted(self.conflicts.items())
        ]
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form for the daily log."""
        return {
            "clean": self.clean,
            "found_at_broker": list(self.found_at_broker),
            "resent": [i.client_order_id for i in self.to_send],
            "abandoned": list(self.abandoned),
            "unknown_open_orders": list(self.unknown_open_orders),
            "position_differences": {
                k: {"expected": e, "broker": b} for k, (e, b) in self.position_differences.items()
            },
            "conflicts": dict(self.conflicts),
        }


def _signed(side: str, qty: float) -> float:
    return qty if side == "buy" else -qty


def expected_positions(
    broker: Broker,
    journal: str | os.PathLike[str],
    last_log: Mapping[str, Any] | None,
) -> dict[str, float] | None:
    """Positions implied by the last daily log plus every order filled after it was written.

    Orders of the last log's session count with what filled after the log (an order sent
    after the close fills at the next open); later sessions' orders count whole. None when
    there is no earlier (non dry-run) log to start from.
    """
    if last_log is None:
        return None
    session = dt.date.fromisoformat(str(last_log["session"]))
    expected = {str(k): float(v) for k, v in (last_log.get("positions") or {}).items()}
    logged = {
        str(f["client_order_id"]): float(f.get("qty_filled") or 0.0)
        for f in last_log.get("fills") or []
    }
    for intent in intents_from(journal, session):
        state = broker.get_order(intent.client_order_id)
        if state is None:
            continue
        before = logged.get(intent.client_order_id, 0.0) if intent.session == session else 0.0
        delta = _signed(intent.side, state.qty_filled - before)
        if delta:
            expected[intent.symbol] = expected.get(intent.symbol, 0.0) + delta
    return {k: v for k, v in expected.items() if abs(v) > _QTY_ATOL}


def reconcile(
    broker: Broker,
    journal: str | os.PathLike[str],
    session: dt.date,
    last_log: Mapping[str, Any] | None,
) -> Reconciliation:
    """Compare the journal and the last log with the broker; fix the journal where it lags.

    Parameters
    ----------
    broker
        The account; its orders and positions are the truth.
    journal
        SQLite file of the order journal.
    session
        The session this run acts on.
    last_log
        The latest non dry-run daily log of this broker before ``session`` (None if none).
    """
    found: list[str] = []
    to_send: list[OrderIntent] = []
    abandoned: list[str] = []
    conflicts: dict[str, str] = {}
    for intent in pending_intents(journal):
        state = broker.get_order(intent.client_order_id)
        other = (
            None
            if state is None
            else order_mismatch(intent, state.symbol, state.side, state.qty_ordered)
        )
        if state is not None and other is None:
            mark_submitted(journal, intent.client_order_id)
            found.append(intent.client_order_id)
            log.warning("order %s reached the broker before a crash", intent.client_order_id)
        elif other is not None:
            # The id is taken by an order that is not this intent: accepting it would
            # never send ours and count theirs as ours.
            conflicts[intent.client_order_id] = other
            if intent.session == session:
                to_send.append(intent)  # the adapter refuses to send it, naming the order
            else:
                mark_abandoned(journal, intent.client_order_id)
                abandoned.append(intent.client_order_id)
        elif intent.session == session:
            to_send.append(intent)
        else:
            mark_abandoned(journal, intent.client_order_id)
            abandoned.append(intent.client_order_id)
    known = all_ids(journal)
    unknown = sorted(
        o.client_order_id for o in broker.open_orders() if o.client_order_id not in known
    )

    differences: dict[str, tuple[float, float]] = {}
    expected = expected_positions(broker, journal, last_log)
    if expected is not None:
        actual = broker.positions()
        for sym in sorted(set(expected) | set(actual)):
            e, a = expected.get(sym, 0.0), actual.get(sym, 0.0)
            if abs(e - a) > _QTY_ATOL + _QTY_RTOL * max(abs(e), abs(a)):
                differences[sym] = (e, a)
    result = Reconciliation(found, to_send, abandoned, unknown, differences, conflicts)
    for line in result.messages():
        log.warning("reconciliation: %s", line)
    return result
