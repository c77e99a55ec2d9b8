"""What the live loop needs from a broker, and the values a broker hands back.

The broker is the source of truth for cash, positions and orders (see "Live trading contract"
in ARCHITECTURE.md); the loop reads them from here and never keeps its own copy.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import pandas as pd

from py_finance.errors import PyFinanceError
from py_finance.live.orders import OrderIntent

# An order's state as the broker reports it. ``pending``: accepted, nothing filled yet (an
# order sent after the close waits for the next open); ``partially_filled`` may still fill
# more while the order is open. ``unconfirmed``: ours, not the broker's: the broker neither
# confirmed nor refused the order (every try hit 429/5xx or no reply, or the circuit breaker
# stopped sending), so the broker may or may not have it; the next run looks it up by its
# ``client_order_id`` and sends it only if the broker never saw it. The others are final.
FILL_STATUSES = (
    "pending",
    "filled",
    "partially_filled",
    "rejected",
    "canceled",
    "expired",
    "unconfirmed",
)
FINAL_STATUSES = frozenset({"filled", "rejected", "canceled", "expired"})


class BrokerUnavailable(PyFinanceError):
    """The broker cannot be reached now (every try failed, or the circuit breaker is open).

    Nothing was sent by the call that raised it; what the run did not send is sent by the
    next run of the same session.
    """


class OrdersLeftOpen(PyFinanceError):
    """A cancel of every open order left some open (the broker refused them): they may fill."""


@dataclass(frozen=True, slots=True)
class Account:
    """A snapshot of the account.

    Parameters
    ----------
    cash
        Cash in account currency.
    equity
        Cash plus positions at the broker's latest known prices.
    positions
        Shares held per symbol (only non-zero holdings).
    """

    cash: float
    equity: float
    positions: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Fill:
    """The outcome of one submitted order.

    Parameters
    ----------
    client_order_id
        The order's deterministic id.
    symbol, side
        As in the order.
    qty_filled
        Shares filled (0 when rejected).
    price
        Average fill price per share, slippage included (0 when rejected).
    commission
        Commission paid from cash, account currency.
    status
        One of ``FILL_STATUSES``.
    filled_at
        When the broker resolved the order, or for an open order when its state was read
        (tz-aware UTC).
    reason
        Why an order was rejected or only partly filled; empty otherwise.
    broker_order_id
        The broker's own id of the order (empty for the paper broker).
    open
        Whether the broker may still fill (more of) it.
    qty_ordered
        Shares the broker's order is for, as the broker reports it (None when unknown);
        with ``symbol`` and ``side`` it tells whether the broker's order is the intent.
    """

    client_order_id: str
    symbol: str
    side: str
    qty_filled: float
    price: float
    commission: float
    status: str
    filled_at: dt.datetime
    reason: str = ""
    broker_order_id: str = ""
    open: bool = False
    qty_ordered: float | None = None

    def __post_init__(self) -> None:
        if self.status not in FILL_STATUSES:
            raise PyFinanceError(f"fill status must be one of {FILL_STATUSES}, got {self.status!r}")
        if self.open and self.status in FINAL_STATUSES:
            raise PyFinanceError(f"fill {self.client_order_id}: a {self.status} order is not open")
        if self.status == "pending" and not self.open:
            raise PyFinanceError(f"fill {self.client_order_id}: a pending order is open")
        if self.filled_at.tzinfo is None or self.filled_at.utcoffset() is None:
            raise PyFinanceError(f"fill {self.client_order_id}: filled_at must be tz-aware")

    @classmethod
    def unfilled(cls, intent: OrderIntent, status: str, at: dt.datetime, reason: str = "") -> Fill:
        """An order with nothing filled: ``rejected``, ``unconfirmed`` or ``pending`` (open)."""
        return cls(
            intent.client_order_id,
            intent.symbol,
            intent.side,
            0.0,
            0.0,
            0.0,
            status,
            at,
            reason,
            open=status == "pending",
        )

    @property
    def final(self) -> bool:
        """Whether waiting cannot change the order's state (an unconfirmed one included)."""
        return not self.open

    @property
    def confirmed(self) -> bool:
        """Whether the broker answered for the order (it has it, or refused it)."""
        return self.status != "unconfirmed"

    @property
    def notional(self) -> float:
        """Filled value before commission, ``qty_filled * price``."""
        return self.qty_filled * self.price


@dataclass(frozen=True, slots=True)
class MarketClock:
    """The broker's view of the market now.

    Parameters
    ----------
    timestamp
        The broker's time (tz-aware).
    is_open
        Whether the market is open now.
    next_open, next_close
        The next open and close (tz-aware).
    """

    timestamp: dt.datetime
    is_open: bool
    next_open: dt.datetime
    next_close: dt.datetime


@runtime_checkable
class Broker(Protocol):
    """A broker the daily loop trades through (paper simulator or Alpaca)."""

    def account(self) -> Account:
        """Return cash, equity and positions as the broker knows them now."""
        ...

    def positions(self) -> dict[str, float]:
        """Return shares held per symbol (non-zero holdings only)."""
        ...

    def submit(self, intent: OrderIntent, price: float) -> Fill:
        """Send ``intent``; ``price`` is the execution reference price per share.

        Submitting a ``client_order_id`` the broker has seen before returns that order's
        fill and sends nothing.
        """
        ...

    def get_order(self, client_order_id: str) -> Fill | None:
        """Return the fill of a known order, or None if the broker never saw it."""
        ...

    def open_orders(self) -> list[Fill]:
        """Return the orders the broker may still fill (status pending or partly filled)."""
        ...

    def wait_for_fills(self, client_order_ids: list[str], timeout_s: float) -> list[Fill]:
        """Poll until every order is final or ``timeout_s`` passes; return their states."""
        ...

    def cancel_open_orders(self) -> int:
        """Cancel every open order; return how many were canceled.

        Raises :class:`OrdersLeftOpen` when the broker did not cancel some, naming them.
        """
        ...

    def clock(self) -> MarketClock | None:
        """Return the broker's market clock, or None when the broker has none (paper)."""
        ...

    def fractionable(self, symbols: list[str]) -> dict[str, bool]:
        """Return per symbol whether fractional shares can be traded."""
        ...

    def mark_to_market(self, prices: Mapping[str, float], session: dt.date) -> float:
        """Value the account at ``prices`` (close of ``session``), record and return equity."""
        ...

    def equity_history(self) -> pd.Series:
        """Return recorded equity per session (DatetimeIndex named ``session``)."""
        ...
