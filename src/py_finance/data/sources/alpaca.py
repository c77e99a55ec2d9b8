"""Alpaca daily bars through alpaca-py's ``StockHistoricalDataClient``.

Keys: ``ALPACA_API_KEY`` and ``ALPACA_SECRET_KEY``. Bars are requested with
``adjustment=all`` (alpaca returns unadjusted bars unless asked), so open/high/low/close are
split- and dividend-adjusted and ``adj_close`` equals ``close``; no raw prices or actions.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd

from py_finance.data.sources.base import SourceInfo
from py_finance.data.sources.http import (
    RateLimiter,
    RetryPolicy,
    TransientError,
    api_key,
    with_retries,
)
from py_finance.data.sources.vendor import BAR_FIELDS, Fetched, empty_bars, sectors_for
from py_finance.errors import DataError

INFO = SourceInfo(
    name="alpaca",
    survivorship_biased=False,
    adjusted_only=True,
    notes=(
        "Alpaca market data, adjustment=all: OHLC adjusted as of the ingest date, no raw prices",
        "history starts in 2016; the free feed is IEX",
    ),
)
_LIMITER = RateLimiter(per_second=3.0)  # 200 requests per minute


class AlpacaSource:
    """Adjusted daily bars from Alpaca; see the module docstring."""

    info = INFO

    def __init__(
        self,
        url_override: str | None = None,
        policy: RetryPolicy | None = None,
        limiter: RateLimiter | None = None,
        feed: str = "iex",
        keys: tuple[str, str] | None = None,
    ) -> None:
        self.url_override = url_override
        self.policy = policy or RetryPolicy()
        self.limiter = limiter or _LIMITER
        self.feed = feed
        self._keys = keys
        self._client: Any = None

    def client(self) -> Any:
        """The alpaca-py client (built once)."""
        if self._client is None:
            from alpaca.data.historical import StockHistoricalDataClient

            key, secret = self._keys or (
                api_key("ALPACA_API_KEY", "alpaca"),
                api_key("ALPACA_SECRET_KEY", "alpaca"),
            )
            client = StockHistoricalDataClient(
                key, secret, raw_data=True, url_override=self.url_override
            )
            # alpaca-py sleeps and retries 429s itself; our bounded retries own that policy.
            client._retry = 0
            self._client = client
        return self._client

    def check_symbols(self, symbols: list[str]) -> list[str]:
        """Upper-cased symbols."""
        return [s.upper() for s in symbols]

    def fetch(self, symbol: str, start: dt.date, end: dt.date) -> Fetched:
        """Adjusted bars of one symbol for sessions in ``[start, end]``."""
        return with_retries(
            lambda: self._fetch_once(symbol, start, end),
            vendor="alpaca",
            what=f"bars for {symbol}",
            policy=self.policy,
            limiter=self.limiter,
        )

    def _fetch_once(self, symbol: str, start: dt.date, end: dt.date) -> Fetched:
        import requests
        from alpaca.common.exceptions import APIError
        from alpaca.data.enums import Adjustment, DataFeed
        from alpaca.data.requests import StockBarsRequest
        from alpaca.data.timeframe import TimeFrame

        request = StockBarsRequest(
            symbol_or_symbols=symbol,
            timeframe=TimeFrame.Day,
            start=dt.datetime.combine(start, dt.time(0), tzinfo=dt.UTC),
            end=dt.datetime.combine(end, dt.time(23, 59), tzinfo=dt.UTC),
            adjustment=Adjustment.ALL,
            feed=DataFeed(self.feed),
        )
        try:
            raw = self.client().get_stock_bars(request)
        except APIError as exc:
            code = exc.status_code or 0
            if code == 429 or code >= 500:
                raise TransientError(f"HTTP {code}") from exc
            if code in (401, 403):
                raise DataError(f"alpaca refused the API keys (HTTP {code}): check them") from exc
            raise DataError(f"alpaca bars for {symbol}: {exc}") from exc
        except (requests.Timeout, requests.ConnectionError) as exc:
            raise TransientError(type(exc).__name__) from exc
        except ValueError as exc:
            raise DataError(
                f"alpaca bars for {symbol} returned malformed JSON; retry later"
            ) from exc
        if not isinstance(raw, dict):
            raise DataError(f"alpaca bars for {symbol}: unexpected response {type(raw).__name__}")
        items = raw.get(symbol) or []
        if not items:
            return Fetched(bars=empty_bars())
        rows = []
        for item in items:
            try:
                t = pd.Timestamp(item["t"]).tz_convert("America/New_York")
                rows.append(
                    {
                        "symbol": symbol,
                        "session": t.tz_localize(None).normalize(),
                        "open": item["o"],
                        "high": item["h"],
                        "low": item["l"],
                        "close": item["c"],
                        "adj_close": item["c"],
                        "volume": item["v"],
                    }
                )
            except KeyError as exc:
                raise DataError(
                    f"alpaca bars for {symbol}: a bar has no {exc.args[0]!r} field"
                ) from None
        bars = pd.DataFrame(rows)[BAR_FIELDS]
        bars["session"] = bars["session"].astype("datetime64[us]")
        return Fetched(bars=bars)

    def bars(self, symbols: list[str], start: dt.date, end: dt.date) -> pd.DataFrame:
        """Bars of ``symbols``."""
        return pd.concat([self.fetch(s, start, end).bars for s in symbols], ignore_index=True)

    def sectors(self, symbols: list[str]) -> pd.DataFrame:
        """Sectors from the repo's reference list (unknown names get their own bucket)."""
        return sectors_for(symbols)
