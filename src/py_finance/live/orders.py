"""Order intents: what the daily loop wants the broker to do, planned from target weights.

Weights come from the same portfolio/risk functions as the backtest (decided after the close
of session t); :func:`plan_orders` turns them into one net order per symbol against what the
broker holds now. Nothing is rounded here: quantities stay float64 until a broker adapter
sends them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from py_finance.errors import PyFinanceError

log = logging.getLogger(__name__)

SIDES = ("buy", "sell")
MAX_CLIENT_ORDER_ID_LEN = 128  # Alpaca's limit
# Share quantities closer than this are the same (float noise from w * equity / price).
QTY_EPS = 1e-9
# Target weights may overshoot 1 by float noise from the risk overlays, never by more.
_WEIGHT_SUM_TOL = 1e-6


@dataclass(frozen=True, slots=True)
class OrderIntent:
    """One order the loop means to send, recorded durably before it is sent.

    Parameters
    ----------
    client_order_id
        Deterministic id from :func:`client_order_id`; a broker never fills it twice.
    session
        Session whose close the decision was taken after.
    symbol
        Ticker as the broker knows it.
    side
        ``"buy"`` or ``"sell"``.
    qty
        Shares, > 0, fractional allowed.
    ref_price
        Price the order was sized with (account currency per share, > 0).
    notional
        ``qty * ref_price`` in account currency.
    """

    client_order_id: str
    session: dt.date
    symbol: str
    side: str
    qty: float
    ref_price: float
    notional: float

    def __post_init__(self) -> None:
        if self.side not in SIDES:
            raise PyFinanceError(f"order side must be one of {SIDES}, got {self.side!r}")
        if not (math.isfinite(self.qty) and self.qty > 0):
            raise PyFinanceError(
                f"order {self.client_order_id}: qty must be a finite number > 0, got {self.qty}"
            )
        if not (math.isfinite(self.ref_price) and self.ref_price > 0):
            raise PyFinanceError(
                f"order {self.client_order_id}: ref_price must be > 0, got {self.ref_price}"
            )
        if not (math.isfinite(self.notional) and self.notional >= 0):
            raise PyFinanceError(
                f"order {self.client_order_id}: notional must be >= 0, got {self.notional}"
            )

    def to_dict(self) -> dict[str, Any]:
        """Return the intent as plain JSON-friendly values (session as ISO date)."""
        return {
            "client_order_id": self.client_order_id,
            "session": self.session.isoformat(),
            "symbol": self.symbol,
            "side": self.side,
            "qty": self.qty,
            "ref_price": self.ref_price,
            "notional": self.notional,
        }


def order_mismatch(intent: OrderIntent, symbol: str, side: str, qty: float | None) -> str | None:
    """Why a broker's order with ``intent``'s id is not ``intent``; None when it is.

    The order is the intent when symbol and side are the same and the quantity is the
    intent's (to the 9 decimals a broker takes), or its whole shares (a broker that cannot
    trade the name fractionally gets ``floor(qty)``). ``qty`` None (unknown) is not compared.
    """
    if (symbol, side) != (intent.symbol, intent.side):
        return f"{side} {symbol}" + (f" {qty:.9g} sh" if qty is not None else "")
    if qty is None or math.isclose(qty, intent.qty, rel_tol=1e-9, abs_tol=1e-6):
        return None
    if qty >= 1 and qty == math.floor(intent.qty + QTY_EPS):
        return None
    return f"{side} {symbol} {qty:.9g} sh (the intent is {intent.qty:.9g} sh)"


def client_order_id(session: dt.date, symbol: str, side: str, run_id: str) -> str:
    """Return the deterministic client order id of one order.

    Parameters
    ----------
    session
        Session the order is decided for.
    symbol
        Ticker; must not be empty or contain whitespace.
    side
        ``"buy"`` or ``"sell"``.
    run_id
        Id of the loop run (the same on a retry or restart of that run).

    Returns
    -------
    str
        ``pf-{YYYYMMDD}-{symbol}-{side}-{sha1(run_id)[:8]}``, at most 128 characters, so the
        same order planned again gets the same id and a broker refuses to fill it twice.
    """
    if side not in SIDES:
        raise PyFinanceError(f"order side must be one of {SIDES}, got {side!r}")
    if not symbol or any(ch.isspace() for ch in symbol):
        raise PyFinanceError(f"symbol must be non-empty without whitespace, got {symbol!r}")
    run_hash = hashlib.sha1(run_id.encode("utf-8"), usedforsecurity=False).hexdigest()[:8]
    coid = f"pf-{session:%Y%m%d}-{symbol}-{side}-{run_hash}"
    if len(coid) > MAX_CLIENT_ORDER_ID_LEN:
        raise PyFinanceError(
            f"client order id for symbol {symbol!r} is longer than "
            f"{MAX_CLIENT_ORDER_ID_LEN} characters; use the broker's short ticker"
        )
    return coid


def _price(prices: Mapping[str, float], symbol: str) -> float:
    price = prices.get(symbol)
    if price is None:
        raise PyFinanceError(
            f"no price for {symbol!r}, which is targeted or held; "
            "ingest bars for it up to the session before planning orders"
        )
    price = float(price)
    if not (math.isfinite(price) and price > 0):
        raise PyFinanceError(f"price of {symbol!r} must be a finite number > 0, got {price}")
    return price


def plan_orders(
    target_weights: Mapping[str, float],
    positions: Mapping[str, float],
    prices: Mapping[str, float],
    equity: float,
    *,
    session: dt.date,
    run_id: str,
    min_notional: float,
    fractionable: Mapping[str, bool] | None = None,
) -> list[OrderIntent]:
    """Plan one net order per symbol that moves ``positions`` to ``target_weights``.

    Parameters
    ----------
    target_weights
        Long-only target weight per symbol (fraction of ``equity``, summing to <= 1; cash is
        the remainder), decided after the close of ``session``.
    positions
        Shares held now, as the broker reports them. Held names absent from
        ``target_weights`` are sold to zero.
    prices
        Reference price per share (account currency) used to size the orders; needed for
        every symbol that is targeted with a weight > 0 or held.
    equity
        Account equity (account currency) the weights apply to.
    session
        Session the decision belongs to (goes into the order ids).
    run_id
        Loop run id (goes into the order ids).
    min_notional
        Orders with ``qty * price`` below this are dropped.
    fractionable
        Per symbol whether the broker trades fractional shares (default: all do). For a
        name that does not, buys and partial sells are rounded down to whole shares; a sell
        of the whole position stays whole.

    Returns
    -------
    list of OrderIntent
        All sells (by symbol) first, so their cash is there for the buys, then buys in
        ascending notional, so a cash shortfall cuts the largest buy only.

    Raises
    ------
    PyFinanceError
        A needed price is missing or not > 0, a weight is negative or not finite, the
        weights sum to more than 1, or ``equity``/``min_notional`` is invalid.
    """
    if not (math.isfinite(equity) and equity >= 0):
        raise PyFinanceError(f"equity must be a finite number >= 0, got {equity}")
    if not (math.isfinite(min_notional) and min_notional >= 0):
        raise PyFinanceError(f"min_notional must be a finite number >= 0, got {min_notional}")
    for symbol, weight in target_weights.items():
        if not (math.isfinite(weight) and weight >= 0):
            raise PyFinanceError(
                f"target weight of {symbol!r} is {weight}; live trading is long-only, "
                "weights must be finite and >= 0"
            )
    total = math.fsum(float(w) for w in target_weights.values())
    if total > 1 + _WEIGHT_SUM_TOL:
        raise PyFinanceError(
            f"target weights sum to {total:.6f} > 1; the account cannot use leverage"
        )

    sells: list[OrderIntent] = []
    buys: list[OrderIntent] = []
    for symbol in sorted(set(target_weights) | set(positions)):
        weight = float(target_weights.get(symbol, 0.0))
        held = float(positions.get(symbol, 0.0))
        if abs(held) <= QTY_EPS:
            held = 0.0
        if weight == 0.0 and held == 0.0:
            continue
        price = _price(prices, symbol)
        target = weight * equity / price
        delta = target - held
        if abs(delta) <= QTY_EPS:
            continue
        side = "buy" if delta > 0 else "sell"
        qty = abs(delta)
        if fractionable is not None and not fractionable.get(symbol, True):
            whole_exit = side == "sell" and target <= QTY_EPS
            qty = qty if whole_exit else float(math.floor(qty + QTY_EPS))
            if qty <= QTY_EPS:
                log.info(
                    "dropped %s %s: less than one share of a non-fractionable name", side, symbol
                )
                continue
        notional = qty * price
        if notional < min_notional:
            log.info(
                "dropped %s %s %.6g sh: notional %.2f < min %.2f",
                side,
                symbol,
                qty,
                notional,
                min_notional,
            )
            continue
        intent = OrderIntent(
            client_order_id=client_order_id(session, symbol, side, run_id),
            session=session,
            symbol=symbol,
            side=side,
            qty=qty,
            ref_price=price,
            notional=notional,
        )
        (buys if side == "buy" else sells).append(intent)
    buys.sort(key=lambda o: (o.notional, o.symbol))
    return sells + buys


def resized_weights(
    positions: Mapping[str, float],
    prices: Mapping[str, float],
    equity: float,
    ratio: float,
) -> dict[str, float]:
    """Target weights that scale every long holding by ``ratio`` and trade nothing else.

    The live loop's answer to a drawdown throttle that trips (or lifts) between
    rebalances: ``ratio`` is the throttle's new exposure multiplier over the one the book
    was sized with (``REDUCING`` -> 0.5, ``HALTED`` -> 0: sell everything), so the book
    shrinks or grows as it stands, drift included, until the next rebalance.

    Parameters
    ----------
    positions
        Shares held now (the broker's).
    prices
        Price per share of each held name (account currency); names without one are left
        out (and so sold by :func:`plan_orders`, which then asks for their price).
    equity
        Account equity the weights are fractions of (> 0).
    ratio
        New multiplier over the book's, >= 0.
    """
    if not (math.isfinite(ratio) and ratio >= 0):
        raise PyFinanceError(f"resize ratio must be a finite number >= 0, got {ratio}")
    if not (math.isfinite(equity) and equity > 0):
        raise PyFinanceError(f"equity must be a finite number > 0 to resize, got {equity}")
    weights = {
        symbol: float(qty) * float(prices[symbol]) / equity * ratio
        for symbol, qty in positions.items()
        if qty > QTY_EPS and symbol in prices
    }
    total = math.fsum(weights.values())
    if total > 1:  # a book that gained more than its cash can grow only to full investment
        weights = {k: v / total for k, v in weights.items()}
    return weights
