"""Tiingo daily prices and fundamentals over its REST API (key: ``TIINGO_API_KEY``).

Prices carry raw OHLCV, Tiingo's adjusted close, and per-day ``divCash`` and
``splitFactor``, which become corporate actions. Statements have no filing time, only the
statement date, so a value is taken as known ``filing_lag_days`` later (SEC deadlines for
10-Q/10-K are 40-90 days), at the close of the next session: conservative, never early.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd

from py_finance.data.sources.base import SourceInfo
from py_finance.data.sources.http import RateLimiter, RetryPolicy, api_key, get_json, require
from py_finance.data.sources.vendor import (
    ACTION_COLUMNS,
    BAR_FIELDS,
    Fetched,
    empty_bars,
    sectors_for,
)
from py_finance.errors import DataError

BASE_URL = "https://api.tiingo.com"
KEY = "TIINGO_API_KEY"
INFO = SourceInfo(
    name="tiingo",
    survivorship_biased=False,
    adjusted_only=False,
    notes=(
        "Tiingo REST API; covers delisted tickers, so survivorship depends on the universe",
        "fundamentals known filing_lag_days after the statement date (no filing time given)",
    ),
)
_LIMITER = RateLimiter(per_second=4.0)


class TiingoSource:
    """Tiingo prices, actions and fundamentals; see the module docstring."""

    info = INFO

    def __init__(
        self,
        base_url: str = BASE_URL,
        policy: RetryPolicy | None = None,
        limiter: RateLimiter | None = None,
        filing_lag_days: int = 45,
        key: str | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.policy = policy or RetryPolicy()
        self.limiter = limiter or _LIMITER
        self.filing_lag_days = filing_lag_days
        self._key = key

    def _headers(self) -> dict[str, str]:
        key = self._key or api_key(KEY, "tiingo")
        return {"Authorization": f"Token {key}", "Content-Type": "application/json"}

    def check_symbols(self, symbols: list[str]) -> list[str]:
        """Upper-cased symbols (Tiingo answers 404 for unknown ones)."""
        return [s.upper() for s in symbols]

    def fetch(self, symbol: str, start: dt.date, end: dt.date) -> Fetched:
        """Bars and actions of one symbol for sessions in ``[start, end]``."""
        what = f"prices for {symbol}"
        payload = get_json(
            f"{self.base_url}/tiingo/daily/{symbol.lower()}/prices",
            {"startDate": start.isoformat(), "endDate": end.isoformat(), "format": "json"},
            vendor="tiingo",
            what=what,
            policy=self.policy,
            limiter=self.limiter,
            headers=self._headers(),
        )
        if isinstance(payload, dict) and "detail" in payload:
            raise DataError(f"tiingo {what}: {payload['detail']}")
        if not isinstance(payload, list):
            raise DataError(
                f"tiingo {what}: expected a list of daily rows, got {type(payload).__name__}"
            )
        if not payload:
            return Fetched(bars=empty_bars())
        rows, actions = [], []
        for item in payload:
            # Tiingo stamps a session at midnight UTC of its own date: the date is the session
            session = pd.Timestamp(str(require(item, "date", vendor="tiingo", what=what))[:10])
            rows.append(
                {
                    "symbol": symbol,
                    "session": session,
                    **{
                        k: require(item, k, vendor="tiingo", what=what)
                        for k in ("open", "high", "low", "close", "volume")
                    },
                    "adj_close": require(item, "adjClose", vendor="tiingo", what=what),
                }
            )
            if float(item.get("divCash") or 0.0) > 0:
                actions.append((symbol, session, "dividend", float(item["divCash"])))
            if float(item.get("splitFactor") or 1.0) != 1.0:
                actions.append((symbol, session, "split", float(item["splitFactor"])))
        bars = pd.DataFrame(rows)[BAR_FIELDS]
        bars["session"] = bars["session"].astype("datetime64[us]")
        return Fetched(bars=bars, actions=pd.DataFrame(actions, columns=ACTION_COLUMNS))

    def bars(self, symbols: list[str], start: dt.date, end: dt.date) -> pd.DataFrame:
        """Bars of ``symbols``."""
        return pd.concat([self.fetch(s, start, end).bars for s in symbols], ignore_index=True)

    def sectors(self, symbols: list[str]) -> pd.DataFrame:
        """Sectors from the repo's reference list (unknown names get their own bucket)."""
        return sectors_for(symbols)

    def fundamentals(self, symbol: str, start: dt.date, end: dt.date) -> pd.DataFrame:
        """Statement values: ``symbol, period_end, period, field, value, available_at``."""
        from py_finance.data.store import date_known_at

        what = f"fundamentals for {symbol}"
        payload = get_json(
            f"{self.base_url}/tiingo/fundamentals/{symbol.lower()}/statements",
            {"startDate": start.isoformat(), "endDate": end.isoformat()},
            vendor="tiingo",
            what=what,
            policy=self.policy,
            limiter=self.limiter,
            headers=self._headers(),
        )
        if not isinstance(payload, list):
            raise DataError(f"tiingo {what}: expected a list of statements")
        rows: list[dict[str, Any]] = []
        for stmt in payload:
            period_end = (
                pd.Timestamp(require(stmt, "date", vendor="tiingo", what=what))
                .tz_localize(None)
                .normalize()
            )
            quarter = int(stmt.get("quarter") or 0)
            period = f"{stmt.get('year')}{'FY' if quarter == 0 else f'Q{quarter}'}"
            lag = self.filing_lag_days * (2 if quarter == 0 else 1)
            known = date_known_at(period_end + pd.Timedelta(days=lag))
            data = require(stmt, "statementData", vendor="tiingo", what=what) or {}
            for section in data.values():
                for item in section or []:
                    rows.append(
                        {
                            "symbol": symbol,
                            "period_end": period_end,
                            "period": period,
                            "field": str(require(item, "dataCode", vendor="tiingo", what=what)),
                            "value": item.get("value"),
                            "available_at": known,
                        }
                    )
        frame = pd.DataFrame(
            rows, columns=["symbol", "period_end", "period", "field", "value", "available_at"]
        )
        # an annual and a Q4 statement share a period end; keep both apart by period label
        frame = frame.drop_duplicates(["symbol", "period_end", "field"], keep="last")
        return frame
