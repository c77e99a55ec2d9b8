"""Yahoo Finance daily bars through ``yfinance`` (no key needed).

Raw OHLC, Yahoo's adjusted close, and the dividends and splits Yahoo reports, which are
stored as corporate actions. Yahoo has no delisted tickers, so any universe built from it
is survivorship-biased. Unofficial API: Yahoo rate limits aggressively, so calls go through
the shared rate limiter and bounded retries.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import pandas as pd

from py_finance.data.sources.base import SourceInfo
from py_finance.data.sources.http import RateLimiter, RetryPolicy, TransientError, with_retries
from py_finance.data.sources.vendor import ACTION_COLUMNS, BAR_FIELDS, Fetched, sectors_for
from py_finance.errors import DataError

INFO = SourceInfo(
    name="yahoo",
    survivorship_biased=True,
    adjusted_only=False,
    notes=(
        "Yahoo Finance via yfinance (unofficial API); no delisted tickers: survivorship-biased",
        "adj_close is Yahoo's split- and dividend-adjusted close as of the ingest date",
    ),
)

_LIMITER = RateLimiter(per_second=2.0)
log = logging.getLogger(__name__)


def _tracking_session(base: type, redirect: str | None) -> Any:
    """A session of ``base``'s class that records status codes and may redirect Yahoo hosts."""

    class Tracking(base):
        statuses: list[int]

        def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
            if redirect is not None:
                parts = urlsplit(url)
                if parts.hostname and parts.hostname.endswith("yahoo.com"):
                    target = urlsplit(redirect)
                    url = urlunsplit((target.scheme, target.netloc, parts.path, parts.query, ""))
            resp = super().request(method, url, *args, **kwargs)
            self.statuses.append(int(resp.status_code))
            return resp

    session = Tracking()
    session.statuses = []
    return session


class YahooSource:
    """Daily bars from Yahoo Finance; see the module docstring.

    Parameters
    ----------
    base_url
        Send every Yahoo request to this URL instead (tests point it at a loopback fake).
    policy
        Retry policy for rate limits, server errors and timeouts.
    """

    info = INFO
    _lock = threading.Lock()

    def __init__(
        self,
        base_url: str | None = None,
        policy: RetryPolicy | None = None,
        limiter: RateLimiter | None = None,
    ) -> None:
        self.base_url = base_url
        self.policy = policy or RetryPolicy()
        self.limiter = limiter or _LIMITER

    def _session(self) -> Any:
        if self.base_url is not None:
            import requests

            return _tracking_session(requests.Session, self.base_url)
        from curl_cffi import requests as curl_requests

        return _tracking_session(curl_requests.Session, None)

    def check_symbols(self, symbols: list[str]) -> list[str]:
        """Upper-cased symbols (Yahoo's own errors name unknown ones at fetch time)."""
        return [s.upper() for s in symbols]

    def fetch(self, symbol: str, start: dt.date, end: dt.date) -> Fetched:
        """Bars and actions of one symbol for sessions in ``[start, end]``."""
        return with_retries(
            lambda: self._fetch_once(symbol, start, end),
            vendor="yahoo",
            what=f"bars for {symbol}",
            policy=self.policy,
            limiter=self.limiter,
        )

    def _fetch_once(self, symbol: str, start: dt.date, end: dt.date) -> Fetched:
        import yfinance as yf
        from yfinance import exceptions as yfx

        session = self._session()
        with self._lock:  # yfinance keeps one global session; one request at a time
            yf.config.debug.hide_exceptions = False
            yf.config.network.retries = 0
            # yfinance memoises past-range responses, failed ones included: a retry must ask
            # Yahoo again rather than replay the 500 it cached.
            yf.data.YfData.cache_get.cache_clear()
            try:
                ticker = yf.Ticker(symbol, session=session)
                frame = ticker.history(
                    start=start.isoformat(),
                    end=(end + dt.timedelta(days=1)).isoformat(),
                    interval="1d",
                    auto_adjust=False,
                    actions=True,
                )
            except yfx.YFRateLimitError as exc:
                raise TransientError("HTTP 429") from exc
            except Exception as exc:
                log.debug("yahoo %s: %r after statuses %s", symbol, exc, session.statuses)
                if any(code == 429 or code >= 500 for code in session.statuses):
                    raise TransientError(f"HTTP {session.statuses[-1]}") from exc
                if _is_network(exc):
                    raise TransientError(type(exc).__name__) from exc
                if isinstance(exc, yfx.YFPricesMissingError | yfx.YFTzMissingError):
                    return Fetched(bars=_empty(symbol))
                raise DataError(f"yahoo bars for {symbol}: {exc}") from exc
        if any(code >= 500 for code in session.statuses[-1:]):
            raise TransientError(f"HTTP {session.statuses[-1]}")
        return _parse(symbol, frame)

    def bars(self, symbols: list[str], start: dt.date, end: dt.date) -> pd.DataFrame:
        """Bars of ``symbols``."""
        frames = [self.fetch(s, start, end).bars for s in self.check_symbols(symbols)]
        return pd.concat(frames, ignore_index=True)

    def sectors(self, symbols: list[str]) -> pd.DataFrame:
        """Sectors from the repo's reference list (unknown names get their own bucket)."""
        return sectors_for(symbols)


def _is_network(exc: BaseException) -> bool:
    name = type(exc).__name__
    return any(k in name for k in ("Timeout", "ConnectionError", "CurlError"))


def _empty(symbol: str) -> pd.DataFrame:
    from py_finance.data.sources.vendor import empty_bars

    return empty_bars()


def _parse(symbol: str, frame: pd.DataFrame) -> Fetched:
    if frame is None or frame.empty:
        return Fetched(bars=_empty(symbol))
    index = pd.DatetimeIndex(frame.index)
    if index.tz is not None:
        index = index.tz_convert("America/New_York").tz_localize(None)
    sessions = index.normalize()
    col = {c.lower().replace(" ", "_"): c for c in frame.columns}
    need = ["open", "high", "low", "close", "volume"]
    missing = [c for c in need if c not in col]
    if missing:
        raise DataError(f"yahoo bars for {symbol}: the response has no {missing} columns")
    bars = pd.DataFrame(
        {
            "symbol": symbol,
            "session": sessions.astype("datetime64[us]"),
            **{c: frame[col[c]].to_numpy(dtype="float64") for c in need},
        }
    )
    bars["adj_close"] = (
        frame[col["adj_close"]].to_numpy(dtype="float64")
        if "adj_close" in col
        else bars["close"].to_numpy()
    )
    bars = bars[BAR_FIELDS]
    actions = []
    if "dividends" in col:
        div = frame[col["dividends"]].to_numpy(dtype="float64")
        for day, value in zip(sessions[div > 0], div[div > 0], strict=True):
            actions.append((symbol, day, "dividend", float(value)))
    if "stock_splits" in col:
        spl = frame[col["stock_splits"]].to_numpy(dtype="float64")
        hit = np.nan_to_num(spl) > 0
        for day, value in zip(sessions[hit], spl[hit], strict=True):
            actions.append((symbol, day, "split", float(value)))
    return Fetched(bars=bars, actions=pd.DataFrame(actions, columns=ACTION_COLUMNS))
