"""Send a session's journaled orders and wait for their fills, within one time budget.

Sells go first; while the market is open the loop waits for them to fill before it sends
the buys (their cash is the buys' buying power), then waits for every order. All of that
waiting shares one budget (``live.fill_timeout_s``): a plan of 13 orders waits at most the
budget, not 10 s per order plus the budget. Orders sent while the market is closed fill at
the next open: their states are read once, without waiting.

An order the broker did not confirm (every try hit 429/5xx or no reply, or the circuit
breaker stopped sending) is ``unconfirmed``: it is not marked submitted in the journal, so
the next run of the session looks it up by its ``client_order_id`` and sends it only if
the broker never saw it (:func:`py_finance.live.reconcile.reconcile`).

Auction orders (Alpaca's market-on-open and market-on-close, the fill model's order type)
are refused outside their submission window: a broker that says so
(``order_window()``) stops the plan before anything is sent, in one line
(:class:`OrderWindowClosed`); the journaled plan is sent by a later run.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from py_finance.errors import PyFinanceError
from py_finance.live.brokers.base import Broker, BrokerUnavailable, Fill
from py_finance.live.faults import checkpoint
from py_finance.live.journal import mark_submitted, submitted_ids
from py_finance.live.orders import OrderIntent

log = logging.getLogger(__name__)


class OrderWindowClosed(PyFinanceError):
    """The broker refuses the fill model's orders now (an auction's cut-off): nothing sent."""


@dataclass(frozen=True, slots=True)
class Execution:
    """What sending a plan did.

    Parameters
    ----------
    fills
        The latest known state of each order of the plan, in plan order (orders the broker
        never knew and this run did not try are left out).
    stopped
        Why sending stopped before the plan was through (the circuit breaker, an
        unreachable broker); None when it did not stop.
    waited_s
        Seconds spent waiting for fills (at most the budget).
    """

    fills: list[Fill]
    stopped: str | None
    waited_s: float

    @property
    def unconfirmed(self) -> list[Fill]:
        """Orders no broker answer confirmed: resent by the next run if the broker lacks them."""
        return [f for f in self.fills if not f.confirmed]

    @property
    def rejected(self) -> list[Fill]:
        """Orders the broker refused."""
        return [f for f in self.fills if f.status == "rejected"]


def execute(
    broker: Broker,
    intents: Sequence[OrderIntent],
    prices: Mapping[str, float],
    journal: str | os.PathLike[str],
    *,
    wait_budget_s: float,
    monotonic: Callable[[], float] = time.monotonic,
) -> Execution:
    """Send the intents not yet submitted, sells first, and wait for fills within a budget.

    Parameters
    ----------
    broker
        Where the orders go.
    intents
        The session's journaled plan, sells first.
    prices
        Reference price per symbol (the decision session's close).
    journal
        SQLite file of the order journal: a confirmed order is marked submitted there.
    wait_budget_s
        Longest total wait for fills, seconds (0: read the states once; the loop passes 0
        while the market is closed).
    monotonic
        Elapsed-time clock (injected by tests).

    Raises
    ------
    OrderWindowClosed
        The broker would refuse the orders now (``broker.order_window()``): nothing sent.
    """
    window = getattr(broker, "order_window", None)
    closed = window() if window is not None and _unsent(intents, journal) else None
    if closed:
        log.error("%s", closed)
        raise OrderWindowClosed(closed)
    start = monotonic()
    deadline = start + max(float(wait_budget_s), 0.0)
    waited = 0.0
    sent_before = submitted_ids(journal)
    marked: set[str] = set()
    states: dict[str, Fill] = {}
    stopped: str | None = None

    def now() -> dt.datetime:
        return dt.datetime.now(dt.UTC)

    def send(batch: Sequence[OrderIntent]) -> None:
        nonlocal stopped
        for intent in batch:
            coid = intent.client_order_id
            if coid in sent_before:
                continue
            if stopped is not None:
                states[coid] = Fill.unfilled(intent, "unconfirmed", now(), f"not sent: {stopped}")
                continue
            try:
                state = broker.submit(intent, prices[intent.symbol])
            except BrokerUnavailable as exc:
                stopped = str(exc)
                log.error("sending stopped: %s", exc)
                states[coid] = Fill.unfilled(intent, "unconfirmed", now(), f"not sent: {exc}")
                continue
            checkpoint("order_sent")
            states[coid] = state
            if state.confirmed:
                mark_submitted(journal, coid)
                marked.add(coid)
                checkpoint("order_recorded")
            tripped = getattr(broker, "breaker_open", None)
            if tripped and stopped is None:
                stopped = f"circuit breaker open ({tripped})"
                log.error("sending stopped: %s", stopped)

    def wait(ids: list[str]) -> None:
        nonlocal stopped, waited
        if not ids:
            return
        began = monotonic()
        try:
            found = broker.wait_for_fills(ids, max(deadline - began, 0.0))
        except BrokerUnavailable as exc:  # keep the states in hand; the next run reads them
            log.warning("could not read the orders' states: %s", exc)
            stopped = stopped or str(exc)
            found = []
        finally:
            waited += monotonic() - began
        for fill in found:
            states[fill.client_order_id] = fill

    sells = [i for i in intents if i.side == "sell"]
    buys = [i for i in intents if i.side != "sell"]
    send(sells)
    open_sells = [i.client_order_id for i in sells if _open(states.get(i.client_order_id))]
    if buys and open_sells and stopped is None and monotonic() < deadline:
        wait(open_sells)
    send(buys)
    # Every order of the plan, those sent by an earlier run included; an unconfirmed one
    # that the broker turns out to have is confirmed here. After a stop too: only sending
    # stopped, reads go on (within what is left of the budget).
    wait([i.client_order_id for i in intents])
    for intent in intents:
        coid = intent.client_order_id
        state = states.get(coid)
        if state is not None and state.confirmed and coid not in sent_before | marked:
            mark_submitted(journal, coid)
    checkpoint("fills_collected")
    fills = [states[i.client_order_id] for i in intents if i.client_order_id in states]
    return Execution(fills, stopped, round(waited, 4))


def session_opens(ctx: Any, session: dt.date, as_of: Any) -> dict[str, float] | None:
    """The opens of ``session`` on the adjusted-close basis, where the fill model fills.

    None unless ``backtest.fill`` is ``next_open`` (the paper broker then fills the pending
    orders there); empty when the store has no opens for that session (the bundled data).
    """
    if ctx.settings.backtest.fill != "next_open":
        return None
    from py_finance.features.registry import adjusted_panel

    data = ctx.settings.data
    symbols = list(data.symbols) if data.symbols else None
    opens = adjusted_panel(ctx.store, symbols, session, session, as_of).get("open")
    if opens is None or opens.empty or opens.index[-1].date() != session:
        return {}
    row = opens.iloc[-1]
    return {str(k): float(v) for k, v in row.items() if v > 0}


def _unsent(intents: Sequence[OrderIntent], journal: str | os.PathLike[str]) -> bool:
    sent = submitted_ids(journal)
    return any(i.client_order_id not in sent for i in intents)


def _open(fill: Fill | None) -> bool:
    return fill is not None and fill.open
