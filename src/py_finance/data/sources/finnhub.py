"""Company news from Finnhub (key: ``FINNHUB_API_KEY``); known at publication time."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from py_finance.data.sources.http import RateLimiter, RetryPolicy, api_key, get_json, require
from py_finance.errors import DataError

BASE_URL = "https://finnhub.io/api/v1"
KEY = "FINNHUB_API_KEY"
NEWS_COLUMNS = ["symbol", "id", "published_at", "headline", "source", "url", "summary"]
_LIMITER = RateLimiter(per_second=1.0)  # free tier: 60 calls per minute


class FinnhubSource:
    """Company news; one call per symbol and date range."""

    name = "finnhub"

    def __init__(
        self,
        base_url: str = BASE_URL,
        policy: RetryPolicy | None = None,
        limiter: RateLimiter | None = None,
        key: str | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.policy = policy or RetryPolicy()
        self.limiter = limiter or _LIMITER
        self._key = key

    def news(self, symbol: str, start: dt.date, end: dt.date) -> pd.DataFrame:
        """News about ``symbol`` published from ``start`` to ``end`` (dates inclusive)."""
        key = self._key or api_key(KEY, "finnhub")
        what = f"company news for {symbol}"
        payload = get_json(
            f"{self.base_url}/company-news",
            {"symbol": symbol, "from": start.isoformat(), "to": end.isoformat(), "token": key},
            vendor="finnhub",
            what=what,
            policy=self.policy,
            limiter=self.limiter,
        )
        if isinstance(payload, dict) and "error" in payload:
            raise DataError(f"finnhub {what}: {payload['error']}")
        if not isinstance(payload, list):
            raise DataError(f"finnhub {what}: expected a list of news items")
        rows = [
            {
                "symbol": symbol,
                "id": str(require(item, "id", vendor="finnhub", what=what)),
                "published_at": pd.Timestamp(
                    int(require(item, "datetime", vendor="finnhub", what=what)), unit="s", tz="UTC"
                ),
                "headline": str(require(item, "headline", vendor="finnhub", what=what)),
                "source": str(item.get("source", "")),
                "url": str(item.get("url", "")),
                "summary": str(item.get("summary", "")),
            }
            for item in payload
        ]
        return pd.DataFrame(rows, columns=NEWS_COLUMNS)
