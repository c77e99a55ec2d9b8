"""A stateful loopback fake of Alpaca's trading API, with scripted faults.

``FakeAlpaca`` serves the endpoints alpaca-py's ``TradingClient`` calls for the broker
adapter (account, clock, calendar, assets, positions, orders) on 127.0.0.1 at a random
port. It keeps an order book keyed by ``client_order_id``, refuses a second order with a
known id the way Alpaca does (422, code 40010001), fills market orders by a policy, and
moves cash and positions on fills. Faults are scripted per method and path and consumed
one per matching request: an error status (JSON, or an HTML gateway page for 502), a reply
slower than the client's timeout, a dropped connection, or a broker refusal, each either
before the request is processed or after it (the order exists but the reply is lost).

    with FakeAlpaca(prices={"AAPL": 190.0}) as fake:
        fake.inject("POST", "/v2/orders", Fault.error(503, accept=True))
        TradingClient(fake.key, fake.secret, url_override=fake.url)

Every request is recorded in ``seen``; ``created`` lists the ids of the orders created, in
order, and ``duplicate_posts`` counts orders refused because their id was known.

Auction orders (time in force ``opg``, market-on-open, and ``cls``, market-on-close) must be
whole shares; they are accepted and wait for their auction whatever the fill policy:
:meth:`FakeAlpaca.open_auction` fills the ``opg`` ones at ``opens`` (which may differ from
the closes in ``prices``), :meth:`FakeAlpaca.close_auction` the ``cls`` ones at ``prices``.
Without an injected ``now``, the fake's clock says 12:00 ET while the market is open and
20:00 ET (after the auctions' cut-offs, orders queued) while it is closed.

Scenarios that change mid-run hang on a request count: ``fake.after("POST", "/v2/orders",
3, fake.refuse)`` stops listening once the third order was answered (every later request
is refused a connection), ``fake.restart()`` listens again, on a new port, with the same
account and orders.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import json
import socket
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

Body = str | bytes | dict | list | None

FILL_POLICIES = ("fill", "partial", "pending")
AUCTIONS = ("opg", "cls")
OPEN_STATUSES = frozenset({"new", "accepted", "pending_new", "partially_filled", "held"})

GATEWAY_HTML = (
    "<html>\r\n<head><title>{status} Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>{status} Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n"
)
_ERROR_BODIES: dict[int, Body] = {
    400: {"code": 40010000, "message": "request is not valid"},
    401: {"code": 40110000, "message": "request is not authorized"},
    404: {"code": 40410000, "message": "resource not found"},
    429: {"code": 42910000, "message": "rate limit exceeded"},
    500: {"code": 50010000, "message": "internal server error occurred"},
    503: {"code": 50310000, "message": "service unavailable"},
    504: {"code": 50410000, "message": "gateway timeout"},
}


@dataclass
class Fault:
    """What the fake does instead of (or after) serving one request.

    ``kind`` is ``"status"`` (reply ``status`` with ``body``), ``"delay"`` (wait
    ``delay_s``, then reply ``status``), ``"drop"`` (close the socket without a reply) or
    ``"none"`` (serve normally).
    ``accept``: process the request first (the order is created, the cancel happens), then
    answer with the fault; otherwise the request is not processed at all.
    """

    kind: str = "status"
    status: int = 500
    body: Body = None
    accept: bool = False
    delay_s: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def error(cls, status: int, *, accept: bool = False) -> Fault:
        """An error reply; 502 is nginx's HTML page, the others Alpaca's JSON errors."""
        if status == 502:
            return cls.html(status, accept=accept)
        body = _ERROR_BODIES.get(status, {"code": status * 100_000, "message": f"HTTP {status}"})
        return cls("status", status, body, accept)

    @classmethod
    def html(cls, status: int = 502, *, accept: bool = False) -> Fault:
        """A load balancer's HTML error page (not JSON)."""
        return cls(
            "status",
            status,
            GATEWAY_HTML.format(status=status),
            accept,
            headers={"Content-Type": "text/html"},
        )

    @classmethod
    def delay(cls, seconds: float, *, accept: bool = False, status: int = 504) -> Fault:
        """Reply only after ``seconds`` (beyond the client's timeout, so it never sees it)."""
        return cls("delay", status, _ERROR_BODIES.get(status), accept, delay_s=seconds)

    @classmethod
    def none(cls) -> Fault:
        """Serve the request normally (lets a script skip a matching request)."""
        return cls("none", 200, None, True)

    @classmethod
    def drop(cls, *, accept: bool = False) -> Fault:
        """Close the connection without any reply."""
        return cls("drop", 0, None, accept)

    @classmethod
    def insufficient_buying_power(cls) -> Fault:
        """Alpaca's refusal of a buy that the account cannot pay for."""
        return cls("status", 403, {"code": 40310000, "message": "insufficient buying power"})

    @classmethod
    def wash_trade(cls) -> Fault:
        """Alpaca's refusal of an order that could trade against the account's own order."""
        return cls(
            "status",
            403,
            {
                "code": 40310000,
                "message": "potential wash trade detected. use complex orders",
                "reject_reason": "opposite side market/stop order exists",
            },
        )

    @classmethod
    def not_found(cls) -> Fault:
        """A 404 as a stale read would give (the resource may well exist)."""
        return cls("status", 404, {"code": 40410000, "message": "order not found"})


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any = None


def _num(x: float) -> str:
    return repr(round(float(x), 9))


def _iso(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class FakeAlpaca:
    """A stateful Alpaca trading API on 127.0.0.1; see the module docstring.

    Parameters
    ----------
    cash
        Starting cash (also the buying power: the fake account has no margin).
    prices
        Fill and mark price per symbol; every symbol here is a tradable, fractionable asset
        unless ``assets`` says otherwise. The closing auction fills at these.
    opens
        The opening auction's price per symbol (default: ``prices``).
    assets
        Per symbol overrides of the asset fields (``fractionable``, ``tradable``, ...).
    fill_policy
        ``fill``: market orders fill at once; ``partial``: ``partial_fraction`` of the qty
        fills and the rest stays open; ``pending``: accepted, nothing filled until
        :meth:`fill_pending`.
    market_open
        When False, orders are accepted (status ``accepted``) and not filled, and the clock
        says the market is closed.
    key, secret
        Credentials the fake expects in the APCA headers (401 otherwise).
    now
        The fake's clock (tz-aware); real UTC time by default, except the clock endpoint's
        time (12:00 ET while ``market_open``, else 20:00 ET, today).
    """

    def __init__(
        self,
        *,
        cash: float = 100_000.0,
        prices: dict[str, float] | None = None,
        opens: dict[str, float] | None = None,
        assets: dict[str, dict[str, Any]] | None = None,
        fill_policy: str = "fill",
        partial_fraction: float = 0.5,
        market_open: bool = True,
        key: str = "PKFAKEKEY0000000000",
        secret: str = "fake-secret-0000000000000000000000000000",
        now: Any = None,
    ) -> None:
        if fill_policy not in FILL_POLICIES:
            raise ValueError(f"fill_policy must be one of {FILL_POLICIES}")
        self.cash = float(cash)
        self.prices: dict[str, float] = dict(prices or {"AAPL": 190.0, "MSFT": 410.0})
        self.assets: dict[str, dict[str, Any]] = {}
        for symbol in self.prices:
            self.add_asset(symbol, **(assets or {}).get(symbol, {}))
        for symbol, fields in (assets or {}).items():
            if symbol not in self.assets:
                self.add_asset(symbol, **fields)
        self.opens: dict[str, float] = dict(opens) if opens is not None else dict(self.prices)
        self.fill_policy = fill_policy
        self.partial_fraction = partial_fraction
        self.market_open = market_open
        self.key = key
        self.secret = secret
        self.now = now or (lambda: dt.datetime.now(dt.UTC))
        self._clock_given = now is not None
        self.account_id = str(uuid.uuid4())
        self.positions: dict[str, dict[str, float]] = {}  # symbol -> qty, cost
        self.orders: dict[str, dict[str, Any]] = {}  # client_order_id -> order JSON
        self.created: list[str] = []
        self.duplicate_posts = 0
        self.seen: list[Seen] = []
        self.faults: list[tuple[str, str, Fault]] = []
        self.triggers: list[list[Any]] = []  # [method, path, requests left, action]
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._start_server()

    def _start_server(self) -> None:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                fake._serve(self, "GET")

            def do_POST(self) -> None:
                fake._serve(self, "POST")

            def do_DELETE(self) -> None:
                fake._serve(self, "DELETE")

            def do_PATCH(self) -> None:
                fake._serve(self, "PATCH")

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            block_on_close = False

            def handle_error(self, request: Any, client_address: Any) -> None:
                # A client that timed out has gone; writing to it fails. Not a test failure.
                pass

        self._server = Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._listening = True

    # ------------------------------------------------------------------ lifecycle
    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FakeAlpaca:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self.refuse()

    def refuse(self) -> None:
        """Stop listening: every later connection is refused (the account is kept)."""
        with self._lock:
            if not self._listening:
                return
            self._listening = False
            server = self._server
        # From a handler thread too: serve_forever runs in its own thread.
        server.shutdown()
        server.server_close()

    def restart(self) -> str:
        """Listen again, on a new port, with the same state; return the new :attr:`url`."""
        self.refuse()
        self._start_server()
        self._thread.start()
        return self.url

    def after(self, method: str, path: str, count: int, action: Any) -> FakeAlpaca:
        """Call ``action()`` once ``count`` requests matching ``method``/``path`` were answered.

        ``method`` and ``path`` take shell-style wildcards, as :meth:`inject`.
        """
        with self._lock:
            self.triggers.append([method.upper(), path, int(count), action])
        return self

    # ------------------------------------------------------------------ scripting
    def inject(self, method: str, path: str, *faults: Fault) -> FakeAlpaca:
        """Queue ``faults`` for the next requests matching ``method`` and ``path``.

        ``path`` is matched against the request path without the query, with shell-style
        wildcards (``/v2/orders/*``). Each matching request consumes one fault, in order.
        """
        with self._lock:
            self.faults.extend((method.upper(), path, f) for f in faults)
        return self

    def add_asset(self, symbol: str, **fields: Any) -> None:
        """Add or update an asset (fractionable and tradable unless said otherwise)."""
        asset = self.assets.get(symbol) or {
            "id": str(uuid.uuid5(uuid.NAMESPACE_DNS, f"asset.{symbol}")),
            "class": "us_equity",
            "exchange": "NASDAQ",
            "symbol": symbol,
            "name": f"{symbol} Inc. Common Stock",
            "status": "active",
            "tradable": True,
            "marginable": True,
            "shortable": True,
            "easy_to_borrow": True,
            "fractionable": True,
            "attributes": [],
        }
        asset.update(fields)
        self.assets[symbol] = asset
        self.prices.setdefault(symbol, 100.0)

    def fill_pending(self) -> int:
        """Fill what is left of every open order at the current prices; return how many."""
        with self._lock:
            open_orders = [o for o in self.orders.values() if o["status"] in OPEN_STATUSES]
            for order in open_orders:
                self._execute(order, float(order["qty"]) - float(order["filled_qty"]))
            return len(open_orders)

    def open_auction(self) -> int:
        """The opening auction: fill every working ``opg`` order at ``opens``; how many."""
        return self._auction("opg", self.opens)

    def close_auction(self) -> int:
        """The closing auction: fill every working ``cls`` order at ``prices``; how many."""
        return self._auction("cls", self.prices)

    def _auction(self, tif: str, prices: dict[str, float]) -> int:
        with self._lock:
            due = [
                o
                for o in self.orders.values()
                if o["status"] in OPEN_STATUSES and o["time_in_force"] == tif
            ]
            for order in due:
                left = float(order["qty"]) - float(order["filled_qty"])
                self._execute(order, left, prices[order["symbol"]])
            return len(due)

    def expire_open(self) -> int:
        """End the day: every open order expires, keeping what it filled; return how many."""
        with self._lock:
            n = 0
            for order in self.orders.values():
                if order["status"] in OPEN_STATUSES:
                    t = _iso(self.now())
                    order.update(status="expired", expired_at=t, updated_at=t)
                    n += 1
            return n

    def set_order(self, client_order_id: str, **fields: Any) -> None:
        """Overwrite fields of an order (to show statuses the policies do not produce)."""
        with self._lock:
            self.orders[client_order_id].update(fields)

    def calls(self, method: str, path: str) -> list[Seen]:
        """Requests seen with ``method`` whose path matches ``path`` (wildcards allowed)."""
        with self._lock:
            return [
                s
                for s in self.seen
                if s.method == method.upper() and fnmatch.fnmatchcase(s.path, path)
            ]

    # ------------------------------------------------------------------ state
    def equity(self) -> float:
        with self._lock:
            return self.cash + sum(p["qty"] * self.prices[s] for s, p in self.positions.items())

    def _execute(self, order: dict[str, Any], qty: float, price: float | None = None) -> None:
        """Fill ``qty`` more of ``order`` at ``price`` (default: the current price)."""
        symbol = order["symbol"]
        price = self.prices[symbol] if price is None else float(price)
        done = float(order["filled_qty"])
        avg = float(order["filled_avg_price"] or 0.0)
        total = done + qty
        if qty <= 0:
            return
        sign = 1.0 if order["side"] == "buy" else -1.0
        self.cash -= sign * qty * price
        pos = self.positions.setdefault(symbol, {"qty": 0.0, "cost": 0.0})
        if sign > 0:
            pos["cost"] += qty * price
        elif pos["qty"] > 0:
            pos["cost"] *= max(pos["qty"] - qty, 0.0) / pos["qty"]
        pos["qty"] = round(pos["qty"] + sign * qty, 9)
        if abs(pos["qty"]) < 1e-9:
            del self.positions[symbol]
        t = _iso(self.now())
        order["filled_qty"] = _num(total)
        order["filled_avg_price"] = _num((done * avg + qty * price) / total)
        order["updated_at"] = t
        if total >= float(order["qty"]) - 1e-9:
            order["status"] = "filled"
            order["filled_at"] = t
        else:
            order["status"] = "partially_filled"

    def _reserved(self, symbol: str | None, side: str) -> float:
        """Cash (buys) or shares of ``symbol`` (sells) held for open orders."""
        total = 0.0
        for o in self.orders.values():
            if o["status"] not in OPEN_STATUSES or o["side"] != side:
                continue
            left = float(o["qty"]) - float(o["filled_qty"])
            if side == "buy":
                total += left * self.prices[o["symbol"]]
            elif o["symbol"] == symbol:
                total += left
        return total

    def _create_order(self, body: Any) -> tuple[int, Body]:
        if not isinstance(body, dict):
            return 400, _ERROR_BODIES[400]
        symbol = body.get("symbol")
        side = body.get("side")
        coid = body.get("client_order_id") or str(uuid.uuid4())
        if body.get("type") != "market" or "qty" not in body or side not in ("buy", "sell"):
            return 422, {"code": 40010001, "message": "the fake takes market orders by qty"}
        qty = float(body["qty"])
        if coid in self.orders:
            self.duplicate_posts += 1
            return 422, {"code": 40010001, "message": "client_order_id must be unique"}
        asset = self.assets.get(symbol or "")
        if asset is None:
            return 422, {"code": 40010001, "message": f'asset "{symbol}" not found'}
        if not asset["tradable"]:
            return 422, {"code": 42210000, "message": f"asset {symbol} is not tradable"}
        if qty <= 0:
            return 422, {"code": 40010001, "message": "qty must be > 0"}
        if not asset["fractionable"] and qty != int(qty):
            return 422, {"code": 40010001, "message": "fractional orders are not supported"}
        tif = body.get("time_in_force", "day")
        if tif in AUCTIONS and qty != int(qty):
            return 422, {
                "code": 40010001,
                "message": "fractional orders are only supported for day orders",
            }
        price = self.prices[symbol]
        if side == "buy":
            buying_power = self.cash - self._reserved(None, "buy")
            if qty * price > buying_power + 1e-9:
                return 403, {
                    "code": 40310000,
                    "message": "insufficient buying power",
                    "buying_power": _num(buying_power),
                    "cost_basis": _num(qty * price),
                }
        else:
            held = self.positions.get(symbol, {"qty": 0.0})["qty"]
            available = held - self._reserved(symbol, "sell")
            if qty > available + 1e-9:
                return 403, {
                    "code": 40310000,
                    "message": (
                        f"insufficient qty available for order (requested: {_num(qty)}, "
                        f"available: {_num(available)})"
                    ),
                    "symbol": symbol,
                }
        t = _iso(self.now())
        order: dict[str, Any] = {
            "id": str(uuid.uuid4()),
            "client_order_id": coid,
            "created_at": t,
            "updated_at": t,
            "submitted_at": t,
            "filled_at": None,
            "expired_at": None,
            "expires_at": None,
            "canceled_at": None,
            "failed_at": None,
            "replaced_at": None,
            "replaced_by": None,
            "replaces": None,
            "asset_id": asset["id"],
            "symbol": symbol,
            "asset_class": "us_equity",
            "notional": None,
            "qty": _num(qty),
            "filled_qty": "0",
            "filled_avg_price": None,
            "order_class": "",
            "order_type": "market",
            "type": "market",
            "side": side,
            "position_intent": "buy_to_open" if side == "buy" else "sell_to_close",
            "time_in_force": body.get("time_in_force", "day"),
            "limit_price": None,
            "stop_price": None,
            "status": "accepted" if not self.market_open else "new",
            "extended_hours": bool(body.get("extended_hours", False)),
            "legs": None,
            "trail_percent": None,
            "trail_price": None,
            "hwm": None,
            "subtag": None,
            "source": None,
        }
        self.orders[coid] = order
        self.created.append(coid)
        if self.market_open and tif not in AUCTIONS:
            if self.fill_policy == "fill":
                self._execute(order, qty)
            elif self.fill_policy == "partial":
                self._execute(order, round(qty * self.partial_fraction, 9))
        return 200, dict(order)

    def _cancel(self, order: dict[str, Any]) -> bool:
        if order["status"] not in OPEN_STATUSES:
            return False
        t = _iso(self.now())
        order.update(status="canceled", canceled_at=t, updated_at=t)
        return True

    def _account(self) -> dict[str, Any]:
        equity = self.equity()
        long_value = equity - self.cash
        return {
            "id": self.account_id,
            "account_number": "PA3FAKE00001",
            "status": "ACTIVE",
            "crypto_status": "ACTIVE",
            "currency": "USD",
            "buying_power": _num(self.cash - self._reserved(None, "buy")),
            "regt_buying_power": _num(self.cash),
            "daytrading_buying_power": "0",
            "non_marginable_buying_power": _num(self.cash),
            "cash": _num(self.cash),
            "accrued_fees": "0",
            "pending_transfer_in": "0",
            "portfolio_value": _num(equity),
            "pattern_day_trader": False,
            "trading_blocked": False,
            "transfers_blocked": False,
            "account_blocked": False,
            "created_at": "2024-01-02T14:00:00Z",
            "trade_suspended_by_user": False,
            "multiplier": "1",
            "shorting_enabled": False,
            "equity": _num(equity),
            "last_equity": _num(equity),
            "long_market_value": _num(long_value),
            "short_market_value": "0",
            "initial_margin": "0",
            "maintenance_margin": "0",
            "last_maintenance_margin": "0",
            "sma": "0",
            "daytrade_count": 0,
        }

    def _position(self, symbol: str, pos: dict[str, float]) -> dict[str, Any]:
        price = self.prices[symbol]
        qty = pos["qty"]
        value = qty * price
        return {
            "asset_id": self.assets[symbol]["id"],
            "symbol": symbol,
            "exchange": self.assets[symbol]["exchange"],
            "asset_class": "us_equity",
            "asset_marginable": True,
            "avg_entry_price": _num(pos["cost"] / qty if qty else 0.0),
            "qty": _num(qty),
            "qty_available": _num(qty - self._reserved(symbol, "sell")),
            "side": "long" if qty > 0 else "short",
            "market_value": _num(value),
            "cost_basis": _num(pos["cost"]),
            "unrealized_pl": _num(value - pos["cost"]),
            "unrealized_plpc": "0",
            "unrealized_intraday_pl": "0",
            "unrealized_intraday_plpc": "0",
            "current_price": _num(price),
            "lastday_price": _num(price),
            "change_today": "0",
        }

    def _clock(self) -> dict[str, Any]:
        now = self.now().astimezone(dt.UTC)
        if not self._clock_given:
            from zoneinfo import ZoneInfo

            local = now.astimezone(ZoneInfo("America/New_York"))
            hour = 12 if self.market_open else 20
            now = local.replace(hour=hour, minute=0, second=0, microsecond=0).astimezone(dt.UTC)
        today_open = now.replace(hour=13, minute=30, second=0, microsecond=0)
        today_close = now.replace(hour=20, minute=0, second=0, microsecond=0)
        next_open = today_open if now < today_open else today_open + dt.timedelta(days=1)
        next_close = today_close if now < today_close else today_close + dt.timedelta(days=1)
        return {
            "timestamp": now.isoformat(),
            "is_open": self.market_open,
            "next_open": next_open.isoformat(),
            "next_close": next_close.isoformat(),
        }

    def _calendar(self, query: dict[str, list[str]]) -> list[dict[str, Any]]:
        from py_finance.data.calendar import session_closes, sessions

        today = self.now().date()
        start = query.get("start", [today.isoformat()])[0][:10]
        end = query.get("end", [(today + dt.timedelta(days=30)).isoformat()])[0][:10]
        days = sessions(start, end)
        closes = session_closes(days).tz_convert("America/New_York") if len(days) else []
        return [
            {
                "date": d.date().isoformat(),
                "open": "09:30",
                "close": c.strftime("%H:%M"),
                "session_open": "0400",
                "session_close": "2000",
                "settlement_date": (d.date() + dt.timedelta(days=1)).isoformat(),
            }
            for d, c in zip(days, closes, strict=True)
        ]

    # ------------------------------------------------------------------ routing
    def _route(
        self, method: str, path: str, query: dict[str, list[str]], body: Any
    ) -> tuple[int, Body]:
        with self._lock:
            if method == "GET" and path == "/v2/account":
                return 200, self._account()
            if method == "GET" and path == "/v2/clock":
                return 200, self._clock()
            if method == "GET" and path == "/v2/calendar":
                return 200, self._calendar(query)
            if method == "GET" and path == "/v2/assets":
                return 200, list(self.assets.values())
            if method == "GET" and path.startswith("/v2/assets/"):
                asset = self.assets.get(path.removeprefix("/v2/assets/"))
                if asset is None:
                    return 404, {"code": 40410000, "message": "asset not found"}
                return 200, asset
            if method == "GET" and path == "/v2/positions":
                return 200, [self._position(s, p) for s, p in sorted(self.positions.items())]
            if method == "GET" and path == "/v2/orders:by_client_order_id":
                coid = query.get("client_order_id", [""])[0]
                order = self.orders.get(coid)
                if order is None:
                    return 404, {"code": 40410000, "message": "order not found"}
                return 200, order
            if path == "/v2/orders":
                if method == "POST":
                    return self._create_order(body)
                if method == "GET":
                    return 200, self._list_orders(query)
                if method == "DELETE":
                    canceled = [o for o in self.orders.values() if self._cancel(o)]
                    return 207, [{"id": o["id"], "status": 200, "body": o} for o in canceled]
            if path.startswith("/v2/orders/") and method in ("GET", "DELETE"):
                order_id = path.removeprefix("/v2/orders/")
                found = [o for o in self.orders.values() if o["id"] == order_id]
                if not found:
                    return 404, {"code": 40410000, "message": "order not found"}
                if method == "GET":
                    return 200, found[0]
                if not self._cancel(found[0]):
                    return 422, {"code": 42210000, "message": "order is not cancelable"}
                return 204, None
            return 404, {"code": 40410000, "message": f"no fake route for {method} {path}"}

    def _list_orders(self, query: dict[str, list[str]]) -> list[dict[str, Any]]:
        status = query.get("status", ["open"])[0]
        limit = int(query.get("limit", ["50"])[0])
        symbols = set(query["symbols"][0].split(",")) if "symbols" in query else None
        out = []
        for order in reversed(self.orders.values()):
            is_open = order["status"] in OPEN_STATUSES
            if (status == "open" and not is_open) or (status == "closed" and is_open):
                continue
            if symbols is not None and order["symbol"] not in symbols:
                continue
            out.append(order)
        return out[:limit]

    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for i, (m, pattern, fault) in enumerate(self.faults):
                if fnmatch.fnmatchcase(method, m) and fnmatch.fnmatchcase(path, pattern):
                    del self.faults[i]
                    return fault
        return None

    def _answered(self, method: str, path: str) -> None:
        """Count a served request against the triggers; run those that are due."""
        due = []
        with self._lock:
            for trigger in self.triggers:
                m, pattern, left, action = trigger
                if (
                    left > 0
                    and fnmatch.fnmatchcase(method, m)
                    and fnmatch.fnmatchcase(path, pattern)
                ):
                    trigger[2] = left - 1
                    if trigger[2] == 0:
                        due.append(action)
        for action in due:
            action()

    def _serve(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        parts = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        seen = Seen(method, parts.path, parse_qs(parts.query), dict(handler.headers.items()), body)
        with self._lock:
            self.seen.append(seen)
        if (
            handler.headers.get("APCA-API-KEY-ID") != self.key
            or handler.headers.get("APCA-API-SECRET-KEY") != self.secret
        ):
            self._reply(handler, 401, _ERROR_BODIES[401])
            return
        fault = self._take_fault(method, parts.path)
        if fault is None or fault.accept:
            status, reply = self._route(method, parts.path, seen.query, body)
            if fault is None or fault.kind == "none":
                self._reply(handler, status, reply)
                self._answered(method, parts.path)
                return
        if fault.kind == "drop":
            handler.close_connection = True
            try:
                handler.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        if fault.kind == "delay" and self._stop.wait(fault.delay_s):
            return
        try:
            self._reply(handler, fault.status, fault.body, fault.headers)
        except OSError:
            pass  # the client gave up waiting

    @staticmethod
    def _reply(
        handler: BaseHTTPRequestHandler,
        status: int,
        body: Body,
        headers: dict[str, str] | None = None,
    ) -> None:
        headers = headers or {}
        if isinstance(body, dict | list):
            data = json.dumps(body).encode()
            ctype = "application/json"
        elif isinstance(body, str):
            data = body.encode()
            ctype = "text/plain"
        else:
            data = body or b""
            ctype = "application/json"
        handler.send_response(status)
        handler.send_header("Content-Type", headers.get("Content-Type", ctype))
        handler.send_header("Content-Length", str(len(data)))
        for k, v in headers.items():
            if k != "Content-Type":
                handler.send_header(k, v)
        handler.end_headers()
        if data:
            handler.wfile.write(data)
