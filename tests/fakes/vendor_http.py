"""A loopback HTTP server that replays vendor payloads (Yahoo, Tiingo, Alpaca, Finnhub).

Routes map a path prefix to a queue of scripted responses (status, body) served in order;
when a route's queue is empty its default answers. Every request is recorded, so tests can
assert on retries, parameters and headers. Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pandas as pd

Body = str | bytes | dict | list | None


@dataclass
class Reply:
    status: int = 200
    body: Body = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]


class FakeVendor:
    """``with FakeVendor() as fake: fake.route('/x', Reply(...)); fake.url``."""

    def __init__(self) -> None:
        self.routes: dict[str, list[Reply]] = {}
        self.defaults: dict[str, Reply | Callable[[Seen], Reply]] = {}
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                seen = Seen("GET", parts.path, parse_qs(parts.query), dict(self.headers.items()))
                reply = fake._next(seen)
                if reply.delay_s:
                    threading.Event().wait(reply.delay_s)
                body = reply.body
                if isinstance(body, dict | list):
                    data = json.dumps(body).encode()
                    ctype = "application/json"
                elif isinstance(body, str):
                    data = body.encode()
                    ctype = "text/plain"
                else:
                    data = body or b""
                    ctype = "application/octet-stream"
                self.send_response(reply.status)
                self.send_header("Content-Type", reply.headers.get("Content-Type", ctype))
                self.send_header("Content-Length", str(len(data)))
                for k, v in reply.headers.items():
                    if k != "Content-Type":
                        self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def route(self, prefix: str, *replies: Reply, default: Reply | None = None) -> FakeVendor:
        with self._lock:
            self.routes.setdefault(prefix, []).extend(replies)
            if default is not None:
                self.defaults[prefix] = default
        return self

    def calls(self, prefix: str) -> list[Seen]:
        return [s for s in self.seen if s.path.startswith(prefix)]

    def _next(self, seen: Seen) -> Reply:
        with self._lock:
            self.seen.append(seen)
            for prefix in sorted(self.routes.keys() | self.defaults.keys(), key=len, reverse=True):
                if seen.path.startswith(prefix):
                    queue = self.routes.get(prefix) or []
                    if queue:
                        return queue.pop(0)
                    default = self.defaults.get(prefix)
                    if default is not None:
                        return default(seen) if callable(default) else default
            return Reply(404, {"detail": "Not found."})

    def __enter__(self) -> FakeVendor:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


# ---------------------------------------------------------------- payloads
def sessions(start: str, end: str) -> list[pd.Timestamp]:
    from py_finance.data.calendar import sessions as xnys

    return list(xnys(start, end))


def _price_path(days: list[pd.Timestamp], base: float) -> list[tuple[float, float, float, float]]:
    out = []
    price = base
    for i, _ in enumerate(days):
        o = round(price * (1 + 0.001 * ((i % 5) - 2)), 4)
        c = round(price * (1 + 0.002 * ((i % 7) - 3)), 4)
        h = round(max(o, c) * 1.01, 4)
        lo = round(min(o, c) * 0.99, 4)
        out.append((o, h, lo, c))
        price = c
    return out


def yahoo_chart(
    symbol: str,
    days: list[pd.Timestamp],
    base: float = 100.0,
    dividends: dict[str, float] | None = None,
    splits: dict[str, tuple[float, float]] | None = None,
) -> dict[str, Any]:
    """A /v8/finance/chart payload shaped like Yahoo's (timestamps at the 09:30 ET open)."""
    stamps = [
        int(d.tz_localize("America/New_York").replace(hour=9, minute=30).timestamp()) for d in days
    ]
    ohlc = _price_path(days, base)
    events: dict[str, Any] = {}

    def stamp(day: str) -> int:
        return int(
            pd.Timestamp(day).tz_localize("America/New_York").replace(hour=9, minute=30).timestamp()
        )

    if dividends:
        events["dividends"] = {
            str(stamp(d)): {"amount": v, "date": stamp(d)} for d, v in dividends.items()
        }
    if splits:
        events["splits"] = {
            str(stamp(d)): {
                "date": stamp(d),
                "numerator": n,
                "denominator": m,
                "splitRatio": f"{n:g}:{m:g}",
            }
            for d, (n, m) in splits.items()
        }
    return {
        "chart": {
            "result": [
                {
                    "meta": {
                        "currency": "USD",
                        "symbol": symbol,
                        "exchangeName": "NMS",
                        "fullExchangeName": "NasdaqGS",
                        "instrumentType": "EQUITY",
                        "firstTradeDate": 345479400,
                        "regularMarketTime": stamps[-1] if stamps else 0,
                        "hasPrePostMarketData": True,
                        "gmtoffset": -18000,
                        "timezone": "EST",
                        "exchangeTimezoneName": "America/New_York",
                        "regularMarketPrice": ohlc[-1][3] if ohlc else 0,
                        "priceHint": 2,
                        "dataGranularity": "1d",
                        "range": "",
                        "validRanges": [
                            "1d",
                            "5d",
                            "1mo",
                            "3mo",
                            "6mo",
                            "1y",
                            "2y",
                            "5y",
                            "10y",
                            "ytd",
                            "max",
                        ],
                    },
                    "timestamp": stamps,
                    "events": events,
                    "indicators": {
                        "quote": [
                            {
                                "open": [r[0] for r in ohlc],
                                "high": [r[1] for r in ohlc],
                                "low": [r[2] for r in ohlc],
                                "close": [r[3] for r in ohlc],
                                "volume": [1_000_000 + i for i in range(len(ohlc))],
                            }
                        ],
                        "adjclose": [{"adjclose": [round(r[3] * 0.98, 4) for r in ohlc]}],
                    },
                }
            ],
            "error": None,
        }
    }


def yahoo_error(
    code: str = "Not Found", description: str = "No data found, symbol may be delisted"
) -> dict[str, Any]:
    return {"chart": {"result": None, "error": {"code": code, "description": description}}}


def tiingo_prices(
    days: list[pd.Timestamp],
    base: float = 50.0,
    dividends: dict[str, float] | None = None,
    splits: dict[str, float] | None = None,
) -> list[dict[str, Any]]:
    """A /tiingo/daily/<ticker>/prices payload."""
    rows = []
    for d, (o, h, lo, c) in zip(days, _price_path(days, base), strict=True):
        key = d.date().isoformat()
        rows.append(
            {
                "date": f"{key}T00:00:00.000Z",
                "close": c,
                "high": h,
                "low": lo,
                "open": o,
                "volume": 2_000_000,
                "adjClose": round(c * 0.97, 4),
                "adjHigh": round(h * 0.97, 4),
                "adjLow": round(lo * 0.97, 4),
                "adjOpen": round(o * 0.97, 4),
                "adjVolume": 2_000_000,
                "divCash": (dividends or {}).get(key, 0.0),
                "splitFactor": (splits or {}).get(key, 1.0),
            }
        )
    return rows


def tiingo_statements() -> list[dict[str, Any]]:
    """A /tiingo/fundamentals/<ticker>/statements payload: two quarters and a year."""

    def stmt(date: str, year: int, quarter: int, revenue: float, eps: float) -> dict[str, Any]:
        return {
            "date": date,
            "year": year,
            "quarter": quarter,
            "statementData": {
                "incomeStatement": [
                    {"dataCode": "revenue", "value": revenue},
                    {"dataCode": "eps", "value": eps},
                ],
                "balanceSheet": [{"dataCode": "totalAssets", "value": revenue * 3}],
                "cashFlow": [{"dataCode": "freeCashFlow", "value": revenue / 5}],
                "overview": [{"dataCode": "roe", "value": 0.31}],
            },
        }

    return [
        stmt("2023-06-30", 2023, 3, 81.8e9, 1.26),
        stmt("2023-03-31", 2023, 2, 94.8e9, 1.52),
    ]


def alpaca_bars(symbol: str, days: list[pd.Timestamp], base: float = 300.0) -> dict[str, Any]:
    """A /v2/stocks/bars payload (adjustment=all)."""
    bars = [
        {
            "t": d.tz_localize("America/New_York").tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%SZ"),
            "o": o,
            "h": h,
            "l": lo,
            "c": c,
            "v": 3_000_000,
            "n": 41_000,
            "vw": round((h + lo) / 2, 4),
        }
        for d, (o, h, lo, c) in zip(days, _price_path(days, base), strict=True)
    ]
    return {"bars": {symbol: bars} if bars else {}, "next_page_token": None}


def finnhub_news(symbol: str, published: list[str]) -> list[dict[str, Any]]:
    """A /company-news payload."""
    return [
        {
            "category": "company",
            "datetime": int(pd.Timestamp(p).timestamp()),
            "headline": f"{symbol} headline {i}",
            "id": 120_000_000 + i,
            "image": "",
            "related": symbol,
            "source": "Reuters",
            "summary": f"Summary {i} about {symbol}.",
            "url": f"https://example.invalid/{symbol}/{i}",
        }
        for i, p in enumerate(published)
    ]


def today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()
