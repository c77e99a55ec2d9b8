"""A local paper broker with its whole state in one SQLite file.

Three fill modes (``fill_at``):

- ``next_close`` and ``next_open``, the fill model (``backtest.fill``) the backtest trades
  and the live loop uses: an order decided after the close of session t waits, ``pending``,
  until :meth:`PaperBroker.settle` fills it at the close, or the open, of the next session
  the loop runs (t+1), sells first, then buys in the order sent;
- ``close``: an order fills when it is sent, at the price passed in (optimistic).

Fill prices move against the order by ``slippage_bps``; commission (bps of filled notional)
is paid from cash. Long-only: a buy that cash cannot cover is filled partly, a sell larger
than the position is cut to the position. Each submit and each settle is one SQLite
transaction, and a ``client_order_id`` seen before returns its stored state, so a retry or a
restart never trades twice.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import math
import os
import sqlite3
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from py_finance.errors import PyFinanceError
from py_finance.live.brokers._common import StateFileBroker, session_key, utc_now
from py_finance.live.brokers.base import Account, Fill, MarketClock
from py_finance.live.orders import QTY_EPS, OrderIntent, order_mismatch
from py_finance.live.state_db import connect, transaction

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS account (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    cash REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS positions (
    symbol TEXT PRIMARY KEY,
    qty REAL NOT NULL,
    last_price REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS orders (
    client_order_id TEXT PRIMARY KEY,
    session TEXT NOT NULL,
    symbol TEXT NOT NULL,
    side TEXT NOT NULL,
    qty REAL NOT NULL,
    status TEXT NOT NULL,
    fill_qty REAL NOT NULL,
    fill_price REAL NOT NULL,
    commission REAL NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL,
    filled_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS equity (
    session TEXT PRIMARY KEY,
    equity REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS delistings (
    symbol TEXT NOT NULL,
    date TEXT NOT NULL,
    qty REAL NOT NULL,
    last_close REAL NOT NULL,
    delisting_return REAL NOT NULL,
    paid REAL NOT NULL,
    PRIMARY KEY (symbol, date)
);
"""


FILL_MODES = ("close", "next_close", "next_open")
# The modes whose orders wait for a later session's settle.
_LATER = ("next_close", "next_open")


@dataclass(frozen=True, slots=True)
class Delisting:
    """A name that stopped trading at ``date`` (its first session without trading).

    A holder receives ``last_close x (1 + delisting_return)`` per share.
    """

    symbol: str
    date: dt.date
    delisting_return: float
    last_close: float


class PaperBroker(StateFileBroker):
    """Simulated broker with persistent SQLite state; implements ``Broker``.

    Parameters
    ----------
    state_path
        SQLite file holding account, positions, orders and equity. Created with
        ``initial_cash`` if new; an existing file keeps its own cash.
    initial_cash
        Cash of a new account (account currency).
    commission_bps
        Commission in basis points of filled notional, paid from cash.
    slippage_bps
        Fill price moved against the order by this many basis points.
    clock
        Returns the current tz-aware time; injected so tests are deterministic.
    fill_at
        ``close`` (fill when sent, at the price passed), ``next_close`` or ``next_open``
        (pending until :meth:`settle` at a later session's close, or open).
    """

    _label = "paper broker"

    def __init__(
        self,
        state_path: str | os.PathLike[str],
        *,
        initial_cash: float,
        commission_bps: float,
        slippage_bps: float,
        clock: Callable[[], dt.datetime] = utc_now,
        fill_at: str = "close",
    ) -> None:
        if fill_at not in FILL_MODES:
            raise PyFinanceError(f"fill_at must be one of {FILL_MODES}, got {fill_at!r}")
        self.fill_at = fill_at
        if not (math.isfinite(initial_cash) and initial_cash >= 0):
            raise PyFinanceError(f"initial_cash must be a finite number >= 0, got {initial_cash}")
        for name, bps in (("commission_bps", commission_bps), ("slippage_bps", slippage_bps)):
            if not (math.isfinite(bps) and 0 <= bps < 10_000):
                raise PyFinanceError(f"{name} must be in [0, 10000), got {bps}")
        self.state_path = Path(state_path)
        self.commission_bps = float(commission_bps)
        self.slippage_bps = float(slippage_bps)
        self._clock = clock
        self._conn = connect(self.state_path)
        try:
            self._init_schema(float(initial_cash))
        except BaseException:
            self._conn.close()
            raise

    @classmethod
    def from_settings(
        cls, state_path: str | os.PathLike[str], live: Any, fill: str = "next_close"
    ) -> PaperBroker:
        """A paper account at ``state_path`` with the settings of ``live`` and ``fill``.

        Cash, commission and slippage of a :class:`~py_finance.live.config.LiveConfig`, and
        the fill model ``fill`` (``backtest.fill``) unless ``live.paper_fill_at`` is
        ``close``: the paper broker's and the shadow book's.
        """
        return cls(
            state_path,
            initial_cash=live.initial_cash,
            commission_bps=live.commission_bps,
            slippage_bps=live.slippage_bps,
            fill_at="close" if live.paper_fill_at == "close" else fill,
        )

    def _init_schema(self, initial_cash: float) -> None:
        with transaction(self._conn) as conn:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            row = conn.execute("SELECT cash FROM account WHERE id = 1").fetchone()
            if row is None:
                conn.execute("INSERT INTO account (id, cash) VALUES (1, ?)", (initial_cash,))
                log.info("new paper account at %s with cash %.2f", self.state_path, initial_cash)
            else:
                log.info("paper account at %s: cash %.2f", self.state_path, row["cash"])

    # -- lifecycle -------------------------------------------------------------------------

    def close(self) -> None:
        """Close the SQLite connection."""
        self._conn.close()

    # -- reads -----------------------------------------------------------------------------

    def positions(self) -> dict[str, float]:
        """Return shares held per symbol (non-zero holdings only)."""
        rows = self._conn.execute("SELECT symbol, qty FROM positions ORDER BY symbol").fetchall()
        return {r["symbol"]: float(r["qty"]) for r in rows}

    def account(self) -> Account:
        """Return cash, positions, and equity at the latest fill or mark price of each name."""
        cash = float(self._conn.execute("SELECT cash FROM account WHERE id = 1").fetchone()[0])
        rows = self._conn.execute(
            "SELECT symbol, qty, last_price FROM positions ORDER BY symbol"
        ).fetchall()
        positions = {r["symbol"]: float(r["qty"]) for r in rows}
        equity = cash + math.fsum(float(r["qty"]) * float(r["last_price"]) for r in rows)
        return Account(cash=cash, equity=equity, positions=positions)

    def get_order(self, client_order_id: str) -> Fill | None:
        """Return the stored fill of ``client_order_id``, or None if never submitted."""
        row = self._conn.execute(
            "SELECT * FROM orders WHERE client_order_id = ?", (client_order_id,)
        ).fetchone()
        return None if row is None else _fill_from_row(row)

    def equity_history(self) -> pd.Series:
        """Return marked equity per session (float64, DatetimeIndex named ``session``)."""
        rows = self._conn.execute("SELECT session, equity FROM equity ORDER BY session").fetchall()
        index = pd.DatetimeIndex([pd.Timestamp(r["session"]) for r in rows], name="session")
        return pd.Series(
            [float(r["equity"]) for r in rows], index=index, name="equity", dtype="float64"
        )

    def open_orders(self) -> list[Fill]:
        """Return the orders waiting for a later session (``next_*`` modes), oldest first."""
        rows = self._conn.execute(
            "SELECT * FROM orders WHERE status = 'pending' ORDER BY rowid"
        ).fetchall()
        return [_fill_from_row(r) for r in rows]

    def wait_for_fills(self, client_order_ids: list[str], timeout_s: float) -> list[Fill]:
        """Return the stored fills of ``client_order_ids`` (already final; no waiting)."""
        found = (self.get_order(coid) for coid in client_order_ids)
        return [f for f in found if f is not None]

    def cancel_open_orders(self) -> int:
        """Cancel every pending order; return how many."""
        with transaction(self._conn) as conn:
            cur = conn.execute(
                "UPDATE orders SET status = 'canceled', reason = 'canceled', filled_at = ? "
                "WHERE status = 'pending'",
                (self._now().isoformat(),),
            )
            return int(cur.rowcount)

    def clock(self) -> MarketClock | None:
        """Return None: the loop takes sessions from the exchange calendar."""
        return None

    def fractionable(self, symbols: list[str]) -> dict[str, bool]:
        """Return True for every symbol: the simulator trades fractional shares."""
        return dict.fromkeys(symbols, True)

    # -- writes ----------------------------------------------------------------------------

    def submit(self, intent: OrderIntent, price: float) -> Fill:
        """Fill ``intent`` now at ``price`` moved against it by ``slippage_bps``.

        Parameters
        ----------
        intent
            The order; its ``client_order_id`` makes the submit idempotent.
        price
            Execution reference price per share (e.g. the close of the fill session).

        Returns
        -------
        Fill
            ``filled``; ``partially_filled`` when cash runs short on a buy or a sell is
            larger than the position; ``rejected`` when nothing could be filled. A
            ``client_order_id`` seen before returns its stored fill and changes nothing.
        """
        price = float(price)
        if not (math.isfinite(price) and price > 0):
            raise PyFinanceError(
                f"order {intent.client_order_id}: price must be a finite number > 0, got {price}"
            )
        with transaction(self._conn) as conn:
            row = conn.execute(
                "SELECT * FROM orders WHERE client_order_id = ?", (intent.client_order_id,)
            ).fetchone()
            if row is not None:
                existing = _fill_from_row(row)
                other = order_mismatch(intent, existing.symbol, existing.side, existing.qty_ordered)
                if other is not None:
                    raise PyFinanceError(
                        f"client_order_id {intent.client_order_id} was already used for "
                        f"{other}; order ids must be unique"
                    )
                log.info(
                    "order %s already submitted (%s); not sent again",
                    intent.client_order_id,
                    existing.status,
                )
                return existing
            if self.fill_at in _LATER:
                fill = Fill.unfilled(intent, "pending", self._now())
            else:
                fill = self._execute(conn, intent, price)
            fill = dataclasses.replace(fill, qty_ordered=intent.qty)  # as get_order reads it
            self._record_order(conn, intent, fill)
        log.info(
            "%s %s %s: %.6g of %.6g sh @ %.4f, commission %.2f%s",
            fill.status,
            intent.side,
            intent.symbol,
            fill.qty_filled,
            intent.qty,
            fill.price,
            fill.commission,
            f" ({fill.reason})" if fill.reason else "",
        )
        return fill

    def _execute(self, conn: sqlite3.Connection, intent: OrderIntent, price: float) -> Fill:
        """Apply the fill of ``intent`` to cash and positions inside the open transaction."""
        now = self._now()
        slip = self.slippage_bps / 10_000
        comm = self.commission_bps / 10_000
        cash = float(conn.execute("SELECT cash FROM account WHERE id = 1").fetchone()[0])
        pos_row = conn.execute(
            "SELECT qty FROM positions WHERE symbol = ?", (intent.symbol,)
        ).fetchone()
        held = 0.0 if pos_row is None else float(pos_row["qty"])

        def rejected(reason: str) -> Fill:
            return Fill.unfilled(intent, "rejected", now, reason)

        reason = ""
        if intent.side == "buy":
            fill_price = price * (1 + slip)
            affordable = max(cash, 0.0) / (fill_price * (1 + comm))
            qty = min(intent.qty, affordable)
            if qty <= QTY_EPS:
                return rejected(f"insufficient cash ({cash:.2f})")
            if intent.qty - qty > QTY_EPS:
                reason = f"cash {cash:.2f} covers {qty:.6g} of {intent.qty:.6g} sh"
            notional = qty * fill_price
            commission = notional * comm
            # qty <= cash / (fill_price * (1 + comm)), so anything below 0 is rounding only.
            new_cash = max(cash - notional - commission, 0.0)
            new_qty = held + qty
        else:
            fill_price = price * (1 - slip)
            # Plans sell exactly what is held; treat float noise above that as the whole lot.
            qty = held if intent.qty > held - QTY_EPS else intent.qty
            if qty <= QTY_EPS:
                return rejected(f"no {intent.symbol} position to sell")
            if intent.qty - qty > QTY_EPS:
                reason = f"sell cut to the position of {held:.6g} sh"
            notional = qty * fill_price
            commission = notional * comm
            new_cash = cash + notional - commission
            new_qty = held - qty
        conn.execute("UPDATE account SET cash = ? WHERE id = 1", (new_cash,))
        if new_qty <= QTY_EPS:
            conn.execute("DELETE FROM positions WHERE symbol = ?", (intent.symbol,))
        else:
            conn.execute(
                "INSERT INTO positions (symbol, qty, last_price) VALUES (?, ?, ?) "
                "ON CONFLICT(symbol) DO UPDATE SET qty = excluded.qty, "
                "last_price = excluded.last_price",
                (intent.symbol, new_qty, price),
            )
        status = "partially_filled" if reason else "filled"
        return Fill(
            intent.client_order_id,
            intent.symbol,
            intent.side,
            qty,
            fill_price,
            commission,
            status,
            now,
            reason,
        )

    def _record_order(self, conn: sqlite3.Connection, intent: OrderIntent, fill: Fill) -> None:
        conn.execute(
            "INSERT INTO orders (client_order_id, session, symbol, side, qty, status, fill_qty, "
            "fill_price, commission, reason, created_at, filled_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                intent.client_order_id,
                session_key(intent.session),
                intent.symbol,
                intent.side,
                intent.qty,
                fill.status,
                fill.qty_filled,
                fill.price,
                fill.commission,
                fill.reason,
                fill.filled_at.isoformat(),
                fill.filled_at.isoformat(),
            ),
        )

    def settle(
        self,
        prices: Mapping[str, float],
        session: dt.date,
        *,
        opens: Mapping[str, float] | None = None,
    ) -> list[Fill]:
        """Fill the pending orders of sessions before ``session`` at its closes or opens.

        Parameters
        ----------
        prices
            The closes of ``session`` (where ``next_close`` orders fill).
        session
            The session the pending orders fill in.
        opens
            The opens of ``session``, where ``next_open`` orders fill (needed in that mode
            when orders are pending).

        Sells first, then buys, each in the order sent; an order whose symbol has no price
        stays pending. Idempotent: a filled order is never filled again.

        Returns
        -------
        list of Fill
            The orders filled (or rejected) now.
        """
        done: list[Fill] = []
        with transaction(self._conn) as conn:
            rows = conn.execute(
                "SELECT rowid, * FROM orders WHERE status = 'pending' AND session < ? "
                "ORDER BY side = 'buy', rowid",
                (session_key(session),),
            ).fetchall()
            if rows and self.fill_at == "next_open":
                if not opens:
                    raise PyFinanceError(
                        f"the paper broker fills at the open (backtest.fill=next_open) and "
                        f"there are no opens for {session}: the data has no open prices (the "
                        "bundled data is closes only); use backtest.fill=next_close"
                    )
                prices = opens
            for r in rows:
                price = prices.get(r["symbol"])
                if price is None or not (math.isfinite(float(price)) and float(price) > 0):
                    log.warning(
                        "no %s price at %s: order %s stays pending",
                        r["symbol"],
                        session,
                        r["client_order_id"],
                    )
                    continue
                intent = OrderIntent(
                    r["client_order_id"],
                    dt.date.fromisoformat(r["session"]),
                    r["symbol"],
                    r["side"],
                    float(r["qty"]),
                    float(price),
                    float(r["qty"]) * float(price),
                )
                fill = self._execute(conn, intent, float(price))
                conn.execute(
                    "UPDATE orders SET status = ?, fill_qty = ?, fill_price = ?, commission = ?, "
                    "reason = ?, filled_at = ? WHERE client_order_id = ?",
                    (
                        fill.status,
                        fill.qty_filled,
                        fill.price,
                        fill.commission,
                        fill.reason,
                        fill.filled_at.isoformat(),
                        fill.client_order_id,
                    ),
                )
                done.append(fill)
        for fill in done:
            log.info(
                "settled %s %s %s: %.6g sh @ %.4f%s",
                fill.status,
                fill.side,
                fill.symbol,
                fill.qty_filled,
                fill.price,
                f" ({fill.reason})" if fill.reason else "",
            )
        return done

    def apply_delistings(
        self, delistings: Iterable[Delisting], session: dt.date
    ) -> list[dict[str, Any]]:
        """Pay out the held names delisted on or before ``session``, as the backtest does.

        Each held name is sold to cash at its last close times ``1 + delisting_return``
        (no commission or slippage: nothing is traded), its position is removed and its
        pending orders are rejected with reason ``delisted``. Idempotent: a delisting is
        applied once (it is recorded in the ``delistings`` table).

        Returns
        -------
        list of dict
            One per payout: ``symbol, date, qty, last_close, delisting_return, paid``.
        """
        done: list[dict[str, Any]] = []
        with transaction(self._conn) as conn:
            for d in delistings:
                if d.date > session:
                    continue
                if not (math.isfinite(d.delisting_return) and d.delisting_return >= -1.0):
                    raise PyFinanceError(
                        f"delisting return of {d.symbol} on {d.date} is {d.delisting_return}: "
                        "it must be a number >= -1"
                    )
                seen = conn.execute(
                    "SELECT 1 FROM delistings WHERE symbol = ? AND date = ?",
                    (d.symbol, session_key(d.date)),
                ).fetchone()
                row = conn.execute(
                    "SELECT qty FROM positions WHERE symbol = ?", (d.symbol,)
                ).fetchone()
                if seen is not None or row is None:
                    continue
                qty = float(row["qty"])
                paid = qty * d.last_close * (1.0 + d.delisting_return)
                conn.execute("UPDATE account SET cash = cash + ? WHERE id = 1", (paid,))
                conn.execute("DELETE FROM positions WHERE symbol = ?", (d.symbol,))
                conn.execute(
                    "UPDATE orders SET status = 'rejected', reason = 'delisted' "
                    "WHERE symbol = ? AND status = 'pending'",
                    (d.symbol,),
                )
                record = {
                    "symbol": d.symbol,
                    "date": session_key(d.date),
                    "qty": qty,
                    "last_close": d.last_close,
                    "delisting_return": d.delisting_return,
                    "paid": paid,
                }
                conn.execute(
                    "INSERT INTO delistings (symbol, date, qty, last_close, delisting_return, "
                    "paid) VALUES (:symbol, :date, :qty, :last_close, :delisting_return, :paid)",
                    record,
                )
                done.append(record)
        for rec in done:
            log.warning(
                "%s delisted on %s: %.6g sh paid out at %.4f x (1 %+.2f%%) = %.2f",
                rec["symbol"],
                rec["date"],
                rec["qty"],
                rec["last_close"],
                100 * rec["delisting_return"],
                rec["paid"],
            )
        return done

    def mark_to_market(self, prices: Mapping[str, float], session: dt.date) -> float:
        """Value the account at ``prices`` and record it as the equity of ``session``.

        Parameters
        ----------
        prices
            Price per share of every held symbol (normally the close of ``session``).
        session
            Session the equity point belongs to; marking it again replaces the point.

        Returns
        -------
        float
            Cash plus positions at ``prices``, account currency.
        """
        with transaction(self._conn) as conn:
            cash = float(conn.execute("SELECT cash FROM account WHERE id = 1").fetchone()[0])
            rows = conn.execute("SELECT symbol, qty FROM positions ORDER BY symbol").fetchall()
            values = []
            for r in rows:
                symbol = r["symbol"]
                price = prices.get(symbol)
                if price is None or not (math.isfinite(float(price)) and float(price) > 0):
                    raise PyFinanceError(
                        f"cannot mark {symbol!r} to market: price {price!r}; "
                        "every held symbol needs a price > 0"
                    )
                conn.execute(
                    "UPDATE positions SET last_price = ? WHERE symbol = ?", (float(price), symbol)
                )
                values.append(float(r["qty"]) * float(price))
            equity = cash + math.fsum(values)
            conn.execute(
                "INSERT INTO equity (session, equity) VALUES (?, ?) "
                "ON CONFLICT(session) DO UPDATE SET equity = excluded.equity",
                (session_key(session), equity),
            )
        log.info("equity %s: %.2f", session_key(session), equity)
        return equity


def _fill_from_row(row: Any) -> Fill:
    return Fill(
        client_order_id=row["client_order_id"],
        symbol=row["symbol"],
        side=row["side"],
        qty_filled=float(row["fill_qty"]),
        price=float(row["fill_price"]),
        commission=float(row["commission"]),
        status=row["status"],
        filled_at=dt.datetime.fromisoformat(row["filled_at"]),
        reason=row["reason"],
        open=row["status"] == "pending",
        qty_ordered=float(row["qty"]),
    )
