"""Alpaca (paper or live) through alpaca-py's ``TradingClient``; implements ``Broker``.

Alpaca is the source of truth for cash, positions and orders; the local SQLite file keeps
only the equity recorded per session, for :meth:`AlpacaBroker.equity_history`.

Fault handling is ours, not the SDK's: alpaca-py retries 429/504 blindly (POST included),
sets no request timeout and raises raw ``requests`` errors on a dropped connection. Here its
retry is off, every request has a timeout, and a POST whose reply is lost or an error is
never sent again before the order is looked up by its ``client_order_id``: if Alpaca has it,
that order is the answer; if not, the same id is sent again a bounded number of times. A
second order with a known id is refused by Alpaca anyway, so nothing is ever filled twice.

An order that no try got confirmed is ``unconfirmed``, not rejected: Alpaca may or may not
have it, and the next run looks it up before sending it. A circuit breaker stops sending
orders after ``breaker_failures`` consecutive 429/5xx/no-reply answers (or a
``Retry-After`` longer than ``max_retry_after_s``), so a rate-limited API is not hammered
order after order; reads (lookups, the account) go on, each with its own bounded tries,
so the run can still log what it knows. A ``Retry-After`` is always waited for in full.

The endpoint is ``live.alpaca.base_url``, else ``$APCA_API_BASE_URL`` (the variable
alpaca-py users know), else Alpaca's own (:func:`resolve_base_url`).

The fill model (``backtest.fill``) picks the order type: ``next_open`` sends market-on-open
orders (time in force ``opg``: they execute in the next opening auction only), ``next_close``
market-on-close orders (``cls``: the next closing auction only). Alpaca refuses ``opg``
orders submitted between 09:28 and 19:00 ET and ``cls`` orders between 15:50 and 19:00 ET
(later ones are queued for the next session's auction), and trades fractional shares in
``day`` orders only: auction orders are whole shares, and a plan is refused in one line,
before anything is sent, when Alpaca's clock is inside the window
(:meth:`AlpacaBroker.order_window`). Without a fill model the orders are ``day`` market
orders (queued after the close, they fill at the next open).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import email.utils
import json
import logging
import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import ZoneInfo

import pandas as pd
import requests

from py_finance.errors import PyFinanceError
from py_finance.live.alerts import Redactor
from py_finance.live.brokers._common import StateFileBroker, session_key, utc_now
from py_finance.live.brokers.base import (
    Account,
    BrokerUnavailable,
    Fill,
    MarketClock,
    OrdersLeftOpen,
)
from py_finance.live.orders import QTY_EPS, OrderIntent, order_mismatch
from py_finance.live.redaction import excerpt
from py_finance.live.state_db import connect, transaction

log = logging.getLogger(__name__)
T = TypeVar("T")

KEY_VARIABLES = ("APCA_API_KEY_ID", "ALPACA_API_KEY")
SECRET_VARIABLES = ("APCA_API_SECRET_KEY", "ALPACA_SECRET_KEY")
BASE_URL_VARIABLE = "APCA_API_BASE_URL"
PAPER_URL = "https://paper-api.alpaca.markets"
LIVE_URL = "https://api.alpaca.markets"
# Plain http sends the API keys in clear text: only to this machine (a proxy, a fake).
_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})

# Alpaca takes fractional share quantities with up to 9 decimals.
_QTY_DECIMALS = 9
_OPEN_ORDERS_LIMIT = 500  # Alpaca's maximum page size for GET /v2/orders

# Alpaca order statuses under which the order may still fill (more).
_WORKING = frozenset(
    {
        "new",
        "accepted",
        "pending_new",
        "accepted_for_bidding",
        "partially_filled",
        "pending_cancel",
        "pending_replace",
        "pending_review",
        "held",
        "stopped",
        "suspended",
    }
)
# Statuses after which nothing more fills; what was filled stays filled.
_ENDED = {
    "canceled": "canceled",
    "replaced": "canceled",
    "expired": "expired",
    "done_for_day": "expired",  # a day order done for the day will not fill tomorrow
    "calculated": "expired",  # done for the day, settlement figures pending
}
# Queued outside market hours: no point waiting for a fill now.
_QUEUED = frozenset({"accepted", "held"})

# The time in force of each fill model, and when (ET) Alpaca refuses it: "OPG orders
# submitted after 9:28am but before 7:00pm ET will be rejected", "CLS orders submitted after
# 3:50pm but before 7:00pm ET will be rejected" (Orders at Alpaca, Time in Force); later ones
# are queued for the next session's auction.
TIME_IN_FORCE = {"next_open": "opg", "next_close": "cls"}
_AUCTION = {
    "opg": ("market-on-open", dt.time(9, 28), "before 09:28 ET of the next session"),
    "cls": ("market-on-close", dt.time(15, 50), "before 15:50 ET of the next session"),
}
_QUEUE_FROM = dt.time(19, 0)
_EXCHANGE_TZ = "America/New_York"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS equity (
    session TEXT PRIMARY KEY,
    equity REAL NOT NULL,
    recorded_at TEXT NOT NULL
)
"""


class _TimeoutSession(requests.Session):
    """A ``requests`` session whose every request has a timeout (alpaca-py sets none)."""

    def __init__(self, timeout_s: float) -> None:
        super().__init__()
        self.timeout_s = timeout_s

    def request(self, method: Any, url: Any, *args: Any, **kwargs: Any) -> requests.Response:
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.timeout_s
        return super().request(method, url, *args, **kwargs)


@dataclass(frozen=True, slots=True)
class _Failure:
    """A failed request, told apart without trusting the body to be JSON."""

    status: int | None  # HTTP status, None when no reply came (timeout, dropped connection)
    message: str
    retry_after_s: float | None = None

    @property
    def transient(self) -> bool:
        return self.status is None or self.status == 429 or self.status >= 500

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def auth(self) -> bool:
        return self.status == 401

    @property
    def duplicate_id(self) -> bool:
        # Alpaca's code for this (40010001) is the one of every invalid request, so the
        # message tells which it is.
        return self.status == 422 and "client_order_id" in self.message.lower()

    def describe(self) -> str:
        if self.status is None:
            return self.message
        return f"HTTP {self.status}: {self.message}" if self.message else f"HTTP {self.status}"


def resolve_base_url(configured: str | None, env: Mapping[str, str], *, paper: bool) -> str | None:
    """The trading endpoint: ``configured`` (``live.alpaca.base_url``), else ``$APCA_API_BASE_URL``.

    Returns None when neither is set (alpaca-py then uses Alpaca's paper or live endpoint).
    A trailing ``/v2`` is dropped: alpaca-py adds it to every path.

    Raises
    ------
    PyFinanceError
        The URL is not http(s), carries credentials, a query or a fragment, is plain http
        to another machine (the keys would travel unencrypted), or is Alpaca's endpoint of
        the other account kind (paper keys and orders must never reach the live account).
    """
    source, url = "live.alpaca.base_url", (configured or "").strip()
    if not url:
        source, url = BASE_URL_VARIABLE, (env.get(BASE_URL_VARIABLE) or "").strip()
    if not url:
        return None
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        has_credentials = parts.username is not None or parts.password is not None
    except ValueError:
        parts, host, has_credentials = urlsplit(""), "", False
    if parts.scheme not in ("http", "https") or not host:
        raise PyFinanceError(f"{source} must be an http(s) URL such as {PAPER_URL}, got {url!r}")
    if has_credentials or parts.query or parts.fragment:
        raise PyFinanceError(
            f"{source} must be a plain endpoint URL (no user:password@, query or fragment)"
        )
    if parts.scheme == "http" and host not in _LOOPBACK_HOSTS:
        raise PyFinanceError(
            f"{source} {url!r} would send the API keys unencrypted: use https "
            "(plain http only to 127.0.0.1 or localhost)"
        )
    kind, other, own = ("paper", LIVE_URL, PAPER_URL) if paper else ("live", PAPER_URL, LIVE_URL)
    if host == urlsplit(other).hostname:
        raise PyFinanceError(
            f"{source} points the {kind} broker at {other}, Alpaca's endpoint for the other "
            f"kind of account: use {own} (or unset it), or pick the matching --broker"
        )
    path = parts.path.rstrip("/")
    path = path.removesuffix("/v2")
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def _retry_after(value: str | None, now: dt.datetime) -> float | None:
    """Seconds a ``Retry-After`` header asks for (delta-seconds or an HTTP date)."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        seconds = (when - now).total_seconds()
    return max(seconds, 0.0) if math.isfinite(seconds) else None


class _Breaker:
    """Circuit breaker on sending orders: open after ``threshold`` consecutive failures.

    Sends and reads are counted apart (either count opens it): in a storm on
    ``POST /v2/orders`` alone, the lookups between the sends answer 404 and must not hide
    that every send failed. Once open it stays open for the broker's life (one run).
    """

    def __init__(self, threshold: int) -> None:
        self.threshold = threshold
        self.sends = 0
        self.reads = 0
        self.reason: str | None = None

    @property
    def open(self) -> bool:
        return self.reason is not None

    def answered(self, send: bool) -> None:
        """Alpaca answered (any status but 429/5xx): the API is up."""
        self.reads = 0
        if send:
            self.sends = 0

    def failed(self, what: str, failure: _Failure, send: bool) -> None:
        if send:
            self.sends += 1
        else:
            self.reads += 1
        count = max(self.sends, self.reads)
        if count >= self.threshold and self.reason is None:
            self.trip(f"{count} consecutive failed requests, last {what}: {failure.describe()}")

    def trip(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason
            log.error("alpaca circuit breaker open (%s): nothing more is sent in this run", reason)

    def check(self) -> None:
        """Raise :class:`BrokerUnavailable` when open (called before each send)."""
        if self.reason is not None:
            raise BrokerUnavailable(
                f"alpaca circuit breaker open ({self.reason}); no more orders were sent: run "
                "the loop again for the same session once Alpaca answers"
            )


def _failure(exc: BaseException, scrub: Callable[[str], str] = str) -> _Failure | None:
    """Classify an exception raised by a client call; None when it is not a request failure.

    ``scrub`` masks the keys in the error body, whole, before anything of it is cut.
    """
    from alpaca.common.exceptions import APIError

    if isinstance(exc, APIError):
        response = exc.response
        status = response.status_code if response is not None else None
        body = scrub(str(exc))
        message = ""
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            message = str(parsed.get("message") or "")
        if not message:
            # A gateway's HTML page or plain text: a short, single-line excerpt, cut only
            # after the whole body was masked (a page may echo the request's headers).
            message = excerpt(body, scrub, 120)
            if message.lstrip().startswith("<"):
                message = "non-JSON error page"
        retry_after = None
        if response is not None:
            retry_after = _retry_after(response.headers.get("Retry-After"), utc_now())
        return _Failure(status, message, retry_after)
    if isinstance(exc, requests.Timeout):
        return _Failure(None, "no reply before the request timeout")
    if isinstance(exc, requests.ConnectionError):
        return _Failure(None, "connection dropped without a reply")
    if isinstance(exc, requests.RequestException):
        # Includes a 2xx reply whose body is not JSON.
        return _Failure(None, f"unreadable reply ({type(exc).__name__})")
    if isinstance(exc, ValueError):
        # A JSON body that alpaca-py's models do not accept.
        return _Failure(None, f"unreadable reply ({type(exc).__name__})")
    return None


def _float(value: Any) -> float:
    if value is None or value == "":
        return 0.0
    if not isinstance(value, str | int | float):
        raise ValueError(f"expected a number, got {type(value).__name__}")
    return float(value)


def _round_down(qty: float, decimals: int) -> float:
    """``qty`` cut (never rounded up) to ``decimals``; float noise is not cut (0.3 stays 0.3)."""
    scale = 10**decimals
    # 0.3 * 1e9 is 299999999.99999994: a millionth of the last unit absorbs such noise.
    return round(math.floor(qty * scale + 1e-6) / scale, decimals)


def _aware(value: dt.datetime) -> dt.datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        return value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


def broker_environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The variables the broker reads: ``environ``, else ``.env`` of the cwd then the process's."""
    if environ is not None:
        return dict(environ)
    env: dict[str, str] = {}
    env_file = Path.cwd() / ".env"
    if env_file.exists():
        from dotenv import dotenv_values

        env.update({k: v for k, v in dotenv_values(env_file).items() if v})
    env.update(os.environ)
    return env


def api_keys(paper: bool, environ: Mapping[str, str] | None = None) -> tuple[str, str]:
    """The API key and secret of the environment (see :func:`broker_environment`).

    Raises
    ------
    PyFinanceError
        When the key or the secret is not set, naming the variables to set.
    """
    env = broker_environment(environ)
    key = next((env[v] for v in KEY_VARIABLES if env.get(v)), "")
    secret = next((env[v] for v in SECRET_VARIABLES if env.get(v)), "")
    missing = [
        " or ".join(names)
        for names, value in ((KEY_VARIABLES, key), (SECRET_VARIABLES, secret))
        if not value
    ]
    if missing:
        raise PyFinanceError(
            f"the Alpaca {'paper' if paper else 'live'} broker needs API keys: set "
            + " and ".join(missing)
            + " in the environment or in a .env file in the working directory"
        )
    return key, secret


class AlpacaBroker(StateFileBroker):
    """Alpaca trading account (paper or live endpoint); implements ``Broker``.

    Parameters
    ----------
    api_key, secret_key
        Alpaca API credentials (paper keys for the paper endpoint). They are handed to the
        client and never logged or put in messages.
    paper
        True for the paper endpoint, False for the live one.
    state_path
        SQLite file keeping the equity recorded per session (created if missing).
    url_override
        Base URL instead of Alpaca's (tests point it at a loopback fake).
    request_timeout_s
        Timeout of every HTTP request, seconds.
    fill_timeout_s
        How long :meth:`submit` waits for a just-accepted order to become final before it
        returns its open state (0: return at once). Orders Alpaca queues outside market
        hours (status ``accepted``) are not waited for.
    poll_interval_s
        Pause between order polls while waiting, seconds.
    max_attempts
        Tries per request (and sends per order) before giving up on transient failures.
    retry_base_s, retry_max_s
        Exponential backoff between tries: ``retry_base_s * 2**(try - 1)``, capped; a
        ``Retry-After`` is waited for in full.
    breaker_failures
        Consecutive 429/5xx/no-reply answers that open the circuit breaker: every later
        :meth:`submit` raises :class:`BrokerUnavailable` without sending anything.
    max_retry_after_s
        A ``Retry-After`` longer than this opens the breaker instead of being waited for.
    retry_budget_s
        All the pauses between tries of this broker's life (one run), reads and sends
        together, add up to at most this; a try that would need more is not made (the
        breaker opens), so replies that alternate 429 + ``Retry-After`` with answers
        cannot stretch a run beyond it.
    fill
        The fill model (``backtest.fill``): ``next_open`` sends market-on-open orders
        (``opg``), ``next_close`` market-on-close (``cls``), both in whole shares; None sends
        ``day`` market orders.
    clock
        Current tz-aware time (stamps of open orders and rejections); injected for tests.
    sleep, monotonic
        Pause and elapsed-time functions; injected so tests neither wait nor race.
    """

    _label = "Alpaca broker"

    def __init__(
        self,
        api_key: str,
        secret_key: str,
        *,
        paper: bool,
        state_path: str | os.PathLike[str],
        url_override: str | None = None,
        request_timeout_s: float = 10.0,
        fill_timeout_s: float = 10.0,
        poll_interval_s: float = 0.5,
        max_attempts: int = 4,
        retry_base_s: float = 0.5,
        retry_max_s: float = 8.0,
        breaker_failures: int = 5,
        max_retry_after_s: float = 30.0,
        retry_budget_s: float = 60.0,
        fill: str | None = None,
        clock: Callable[[], dt.datetime] = utc_now,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if not api_key or not secret_key:
            raise PyFinanceError(
                "the Alpaca broker needs an API key and a secret key: set "
                f"{KEY_VARIABLES[0]} and {SECRET_VARIABLES[0]}"
            )
        for name, value in (
            ("request_timeout_s", request_timeout_s),
            ("poll_interval_s", poll_interval_s),
        ):
            if not (math.isfinite(value) and value > 0):
                raise PyFinanceError(f"{name} must be a finite number > 0, got {value}")
        for name, value in (
            ("fill_timeout_s", fill_timeout_s),
            ("retry_base_s", retry_base_s),
            ("retry_max_s", retry_max_s),
            ("max_retry_after_s", max_retry_after_s),
            ("retry_budget_s", retry_budget_s),
        ):
            if not (math.isfinite(value) and value >= 0):
                raise PyFinanceError(f"{name} must be a finite number >= 0, got {value}")
        if max_attempts < 1 or breaker_failures < 1:
            raise PyFinanceError(
                f"max_attempts and breaker_failures must be >= 1, got {max_attempts} and "
                f"{breaker_failures}"
            )
        if fill is not None and fill not in TIME_IN_FORCE:
            raise PyFinanceError(
                f"fill must be one of {', '.join(TIME_IN_FORCE)} or None, got {fill!r}"
            )
        from alpaca.trading.client import TradingClient

        self.fill = fill
        self.time_in_force = "day" if fill is None else TIME_IN_FORCE[fill]
        self.paper = bool(paper)
        self.url_override = url_override
        self.request_timeout_s = float(request_timeout_s)
        self.fill_timeout_s = float(fill_timeout_s)
        self.poll_interval_s = float(poll_interval_s)
        self.max_attempts = int(max_attempts)
        self.retry_base_s = float(retry_base_s)
        self.retry_max_s = float(retry_max_s)
        self.max_retry_after_s = float(max_retry_after_s)
        self.retry_budget_s = float(retry_budget_s)
        self._paused_s = 0.0  # pauses between tries so far, against retry_budget_s
        self._breaker = _Breaker(int(breaker_failures))
        # Alpaca may echo a key in an error body: it never gets into a message of ours.
        self._scrub = Redactor([api_key, secret_key])
        self.state_path = Path(state_path)
        self._clock = clock
        self._sleep = sleep
        self._monotonic = monotonic
        self._assets: dict[str, dict[str, Any] | None] = {}

        # raw_data: the order JSON may carry fields the SDK's models drop (commission), and
        # its status enum would refuse a status Alpaca adds later. Other replies are still
        # validated with the SDK's models below.
        client = TradingClient(
            api_key, secret_key, paper=self.paper, raw_data=True, url_override=url_override
        )
        # The SDK would resend a POST on 429/504 without asking whether the order exists.
        client._retry = 0
        client._retry_codes = []
        client._session.close()
        client._session = _TimeoutSession(self.request_timeout_s)
        # Any: raw_data=True makes every method return plain JSON, not the annotated models.
        self._client: Any = client

        self._conn = connect(self.state_path)
        try:
            with transaction(self._conn) as conn:
                conn.execute(_SCHEMA)
        except BaseException:
            self._conn.close()
            raise
        log.info(
            "alpaca %s broker (%s), equity marks in %s",
            "paper" if self.paper else "LIVE",
            url_override or "alpaca endpoint",
            self.state_path,
        )

    @classmethod
    def from_env(
        cls,
        paper: bool,
        state_path: str | os.PathLike[str],
        *,
        environ: Mapping[str, str] | None = None,
        base_url: str | None = None,
        **options: Any,
    ) -> AlpacaBroker:
        """Build a broker with keys from the environment (or a ``.env`` in the working dir).

        Parameters
        ----------
        paper
            True for the paper endpoint.
        state_path
            SQLite file of the equity marks.
        environ
            Variables to read instead of ``os.environ`` (then no ``.env`` is read).
        base_url
            ``live.alpaca.base_url``; when None, ``APCA_API_BASE_URL`` of the environment
            (see :func:`resolve_base_url`). An explicit ``url_override`` option wins.
        **options
            Passed to the constructor (timeouts, retries, ...).

        Raises
        ------
        PyFinanceError
            When the key or the secret is not set, or the endpoint is refused.
        """
        env = broker_environment(environ)
        key, secret = api_keys(paper, env)
        if options.get("url_override") is None:
            options["url_override"] = resolve_base_url(base_url, env, paper=paper)
        return cls(key, secret, paper=paper, state_path=state_path, **options)

    def __repr__(self) -> str:
        return f"AlpacaBroker(paper={self.paper}, url_override={self.url_override!r})"

    # -- lifecycle -------------------------------------------------------------------------

    def close(self) -> None:
        """Close the HTTP session and the SQLite connection."""
        self._client._session.close()
        self._conn.close()

    # -- plumbing --------------------------------------------------------------------------

    @property
    def breaker_open(self) -> str | None:
        """Why the circuit breaker is open, or None while it is closed."""
        return self._breaker.reason

    def _classify(self, exc: BaseException) -> _Failure | None:
        failure = _failure(exc, self._scrub)
        if failure is None:
            return None
        return dataclasses.replace(failure, message=self._scrub(failure.message))

    def _backoff(self, attempt: int, failure: _Failure) -> float:
        """Seconds before the next try; a ``Retry-After`` is honoured in full."""
        wait = min(self.retry_max_s, self.retry_base_s * 2 ** (attempt - 1))
        if failure.retry_after_s is not None and failure.retry_after_s > 0:
            wait = max(wait, failure.retry_after_s)
        return wait

    def _pause(self, attempt: int, failure: _Failure, what: str, *, send: bool) -> None:
        """Wait before try ``attempt + 1``; open the breaker rather than wait too long.

        Raises
        ------
        BrokerUnavailable
            Alpaca asks for a longer wait than ``max_retry_after_s``, or the wait would
            overrun ``retry_budget_s`` (the breaker opens), or ``send`` and the breaker is
            open.
        """
        wait = self._backoff(attempt, failure)
        if failure.retry_after_s is not None and failure.retry_after_s > self.max_retry_after_s:
            reason = (
                f"{what}: alpaca asks to wait {failure.retry_after_s:g}s (Retry-After), more "
                f"than max_retry_after_s={self.max_retry_after_s:g}"
            )
            self._breaker.trip(reason)
            raise BrokerUnavailable(f"alpaca {reason}; not tried again in this run")
        if send:
            self._breaker.check()
        if self._paused_s + wait > self.retry_budget_s:
            reason = (
                f"{what}: the run's retry budget is spent ({self._paused_s:.3g}s of "
                f"retry_budget_s={self.retry_budget_s:g} waited; the next try needs "
                f"{wait:.3g}s more)"
            )
            self._breaker.trip(reason)
            raise BrokerUnavailable(f"alpaca {reason}; not tried again in this run")
        self._paused_s += wait
        log.warning(
            "alpaca %s: %s; try %d of %d in %.2fs",
            what,
            failure.describe(),
            attempt + 1,
            self.max_attempts,
            wait,
        )
        self._sleep(wait)

    def _unavailable(self, what: str, failure: _Failure, attempts: int) -> BrokerUnavailable:
        tries = f" after {attempts} attempts" if attempts > 1 else ""
        return BrokerUnavailable(f"alpaca {what} failed{tries}: {failure.describe()}")

    def _error(self, what: str, failure: _Failure, attempts: int) -> PyFinanceError:
        if failure.auth:
            return PyFinanceError(
                f"alpaca refused the API keys ({what}, HTTP 401): check "
                f"{KEY_VARIABLES[0]}/{SECRET_VARIABLES[0]} "
                f"({'paper' if self.paper else 'live'} keys for this endpoint)"
            )
        tries = f" after {attempts} attempts" if attempts > 1 else ""
        return PyFinanceError(f"alpaca {what} failed{tries}: {failure.describe()}")

    def _call(self, what: str, call: Callable[[], Any], parse: Callable[[Any], T]) -> T:
        """Run one idempotent request, retrying transient failures with backoff.

        ``parse`` reads the reply (and refuses one it cannot read: an empty body, a field
        of the wrong type); a reply it refuses is retried like a 5xx, never a traceback.

        Raises
        ------
        BrokerUnavailable
            Every try failed with 429/5xx/no reply/an unreadable reply, a ``Retry-After``
            was too long, or the run's retry budget is spent.
        PyFinanceError
            Alpaca refused the request (keys, a bad request).
        """
        attempt = 0
        while True:
            attempt += 1
            try:
                raw = call()
            except Exception as exc:
                failure = self._classify(exc)
                if failure is None:
                    raise
            else:
                try:
                    value = parse(raw)
                except (TypeError, ValueError, KeyError, AttributeError) as exc:
                    # Only the type: a validation error quotes the values it refused.
                    failure = _Failure(None, f"unreadable reply ({type(exc).__name__})")
                else:
                    self._breaker.answered(send=False)
                    return value
            # Raised outside the except block, so the SDK's error (its body may echo a key)
            # is not chained to ours.
            if not failure.transient:
                self._breaker.answered(send=False)
                raise self._error(what, failure, attempt)
            self._breaker.failed(what, failure, send=False)
            if attempt >= self.max_attempts:
                raise self._unavailable(what, failure, attempt)
            self._pause(attempt, failure, what, send=False)

    def _get_or_none(
        self, what: str, get: Callable[[], Any], parse: Callable[[Any], T]
    ) -> T | None:
        """``get()`` through :meth:`_call`; None when Alpaca answers "not found"."""
        from alpaca.common.exceptions import APIError

        missing = object()

        def call() -> Any:
            try:
                return get()
            except APIError as exc:
                failure = self._classify(exc)
                if failure is not None and failure.not_found:
                    return missing
                raise

        return self._call(what, call, lambda raw: None if raw is missing else parse(raw))

    def _lookup(self, client_order_id: str) -> dict[str, Any] | None:
        """Return the raw order with ``client_order_id``, or None when Alpaca has none.

        A reply about another order (a proxy's or a cache's mix-up) is not an answer: it
        is retried like an unreadable reply.
        """

        def parse(raw: Any) -> dict[str, Any]:
            order = _order(raw)
            if order["client_order_id"] != client_order_id:
                raise ValueError("the reply is about another order")
            return order

        return self._get_or_none(
            f"order lookup {client_order_id}",
            lambda: self._client.get_order_by_client_id(client_order_id),
            parse,
        )

    def _asset(self, symbol: str) -> dict[str, Any] | None:
        """Return the asset of ``symbol`` (cached), or None when Alpaca does not know it."""
        if symbol in self._assets:
            return self._assets[symbol]
        from alpaca.trading.models import Asset

        def parse(raw: Any) -> dict[str, Any]:
            Asset(**raw)  # refuse a reply the SDK's model would not accept
            return dict(raw)

        asset = self._get_or_none(f"asset {symbol}", lambda: self._client.get_asset(symbol), parse)
        self._assets[symbol] = asset
        return asset

    def _fill(self, raw: dict[str, Any]) -> Fill:
        """Map an Alpaca order to a ``Fill``."""
        status = str(raw.get("status") or "")
        filled = _float(raw.get("filled_qty"))
        ordered = _float(raw.get("qty")) if raw.get("qty") not in (None, "") else None
        price = _float(raw.get("filled_avg_price")) if filled > QTY_EPS else 0.0
        commission = _float(raw.get("commission"))
        reason = ""
        if status == "filled" or (
            status in _ENDED and ordered is not None and filled >= ordered - QTY_EPS
        ):
            ours, is_open = "filled", False
        elif status == "rejected":
            ours, is_open, reason = "rejected", False, "alpaca rejected the order"
        elif status in _ENDED:
            is_open = False
            if filled > QTY_EPS:
                ours = "partially_filled"
                of = f" of {ordered:.9g}" if ordered is not None else ""
                reason = f"order {status} at alpaca after {filled:.9g}{of} sh filled"
            else:
                ours = _ENDED[status]
                reason = f"order {status} at alpaca"
        else:
            if status not in _WORKING:
                log.warning(
                    "order %s: unknown alpaca status %r, treated as open",
                    raw.get("client_order_id"),
                    status,
                )
            ours, is_open = ("partially_filled" if filled > QTY_EPS else "pending"), True
        when: dt.datetime | None = None
        if not is_open:
            for field in ("filled_at", "canceled_at", "expired_at", "failed_at", "replaced_at"):
                if raw.get(field):
                    when = _aware(pd.Timestamp(raw[field]).to_pydatetime())
                    break
            if when is None and raw.get("updated_at"):
                when = _aware(pd.Timestamp(raw["updated_at"]).to_pydatetime())
        side = raw.get("side")
        return Fill(
            client_order_id=str(raw["client_order_id"]),
            symbol=str(raw.get("symbol") or ""),
            side=str(side or ""),
            qty_filled=filled,
            price=price,
            commission=commission,
            status=ours,
            filled_at=when or self._now(),
            reason=reason,
            broker_order_id=str(raw.get("id") or ""),
            open=is_open,
            qty_ordered=ordered,
        )

    def _rejected(self, intent: OrderIntent, reason: str) -> Fill:
        log.warning(
            "rejected %s %s %s: %s", intent.client_order_id, intent.side, intent.symbol, reason
        )
        return Fill.unfilled(intent, "rejected", self._now(), reason)

    def _unconfirmed(self, intent: OrderIntent, reason: str) -> Fill:
        log.error(
            "unconfirmed %s %s %s: %s (the next run looks it up and sends it only if alpaca "
            "never got it)",
            intent.client_order_id,
            intent.side,
            intent.symbol,
            reason,
        )
        return Fill.unfilled(intent, "unconfirmed", self._now(), reason)

    # -- reads -----------------------------------------------------------------------------

    def account(self) -> Account:
        """Return cash, equity and positions as Alpaca reports them now."""
        cash, equity = self._call("account", self._client.get_account, _cash_equity)
        return Account(cash=cash, equity=equity, positions=self.positions())

    def positions(self) -> dict[str, float]:
        """Return shares held per symbol (non-zero holdings; shorts are negative)."""
        from alpaca.trading.models import Position

        def parse(raw: Any) -> dict[str, float]:
            if not isinstance(raw, list):
                raise ValueError("expected a list of positions")
            held: dict[str, float] = {}
            for item in raw:
                position = Position(**item)
                qty = float(position.qty)
                if abs(qty) > QTY_EPS:
                    held[position.symbol] = qty
            return dict(sorted(held.items()))

        return self._call("positions", self._client.get_all_positions, parse)

    def get_order(self, client_order_id: str) -> Fill | None:
        """Return the state of the order with ``client_order_id``, or None if Alpaca has none."""
        raw = self._lookup(client_order_id)
        return None if raw is None else self._fill(raw)

    def open_orders(self) -> list[Fill]:
        """Return the orders Alpaca may still fill (pending or partly filled)."""
        from alpaca.trading.enums import QueryOrderStatus
        from alpaca.trading.requests import GetOrdersRequest

        request = GetOrdersRequest(status=QueryOrderStatus.OPEN, limit=_OPEN_ORDERS_LIMIT)
        raw = self._call("open orders", lambda: self._client.get_orders(request), _orders)
        fills = [self._fill(item) for item in raw]
        return [f for f in fills if f.open]

    def wait_for_fills(self, client_order_ids: list[str], timeout_s: float) -> list[Fill]:
        """Poll until every order is final or ``timeout_s`` passes.

        Parameters
        ----------
        client_order_ids
            Orders to wait for; ids Alpaca does not know are left out of the result.
        timeout_s
            Longest wait, seconds (0: read the states once).

        Returns
        -------
        list of Fill
            The latest state of each known order, in the order asked, open ones included.
        """
        ids = list(dict.fromkeys(client_order_ids))
        deadline = self._monotonic() + max(float(timeout_s), 0.0)
        states: dict[str, Fill] = {}
        unknown: set[str] = set()
        while True:
            for coid in ids:
                if coid in unknown or (coid in states and states[coid].final):
                    continue
                fill = self.get_order(coid)
                if fill is None:
                    log.warning("order %s: alpaca does not know it", coid)
                    unknown.add(coid)
                else:
                    states[coid] = fill
            waiting = [c for c in ids if c in states and states[c].open]
            left = deadline - self._monotonic()
            if not waiting or left <= 0:
                break
            self._sleep(min(self.poll_interval_s, left))
        if waiting:
            log.info("%d order(s) still open after %.1fs", len(waiting), timeout_s)
        return [states[c] for c in ids if c in states]

    def clock(self) -> MarketClock | None:
        """Return Alpaca's market clock (``/v2/clock``)."""
        from alpaca.trading.models import Clock

        def parse(raw: Any) -> MarketClock:
            parsed = Clock(**raw)
            return MarketClock(
                timestamp=_aware(parsed.timestamp),
                is_open=bool(parsed.is_open),
                next_open=_aware(parsed.next_open),
                next_close=_aware(parsed.next_close),
            )

        return self._call("clock", self._client.get_clock, parse)

    def order_window(self) -> str | None:
        """Why Alpaca would refuse this broker's auction orders now (one line), or None.

        Read from Alpaca's clock: ``opg`` orders are refused from 09:28 to 19:00 ET, ``cls``
        orders from 15:50 to 19:00 ET. ``day`` orders are always taken (queued when closed).
        """
        if self.time_in_force not in _AUCTION:
            return None
        clock = self.clock()
        now = (clock.timestamp if clock is not None else self._clock()).astimezone(
            ZoneInfo(_EXCHANGE_TZ)
        )
        kind, cutoff, before = _AUCTION[self.time_in_force]
        if not cutoff <= now.time() < _QUEUE_FROM:
            return None
        return (
            f"alpaca refuses {kind} orders (time_in_force {self.time_in_force}, "
            f"backtest.fill={self.fill}) sent between {cutoff:%H:%M} and {_QUEUE_FROM:%H:%M} "
            f"ET and it is {now:%H:%M} ET: nothing was sent; run the loop again after "
            f"{_QUEUE_FROM:%H:%M} ET or {before} (the journaled plan is sent then)"
        )

    def fractionable(self, symbols: list[str]) -> dict[str, bool]:
        """Return per symbol whether Alpaca trades fractional shares of it (cached).

        Auction orders (``opg``, ``cls``) trade whole shares only: False for every symbol.

        Raises
        ------
        PyFinanceError
            When Alpaca does not know a symbol.
        """
        out: dict[str, bool] = {}
        for symbol in symbols:
            asset = self._asset(symbol)
            if asset is None:
                raise PyFinanceError(
                    f"alpaca does not know symbol {symbol!r}; remove it from the universe"
                )
            out[symbol] = bool(asset.get("fractionable")) and self.time_in_force == "day"
        return out

    # -- writes ----------------------------------------------------------------------------

    def submit(self, intent: OrderIntent, price: float) -> Fill:
        """Send ``intent`` as a market order with its ``client_order_id``.

        Its time in force is the fill model's (:attr:`time_in_force`: ``opg``, ``cls``, or
        ``day`` without one); auction orders are sent in whole shares.

        Parameters
        ----------
        intent
            The order; its ``client_order_id`` makes the submit idempotent.
        price
            Reference price per share (logged only: Alpaca fills at the market).

        Returns
        -------
        Fill
            The order's state once Alpaca has it (after waiting up to ``fill_timeout_s``
            for a final one); a ``rejected`` fill when Alpaca refused it (buying power,
            wash trade, not tradable, ...), does not know the symbol, or a non-fractionable
            quantity rounds down to zero; an ``unconfirmed`` fill when it was sent but no
            try got an answer (429/5xx/no reply, or the circuit breaker opened), so Alpaca
            may or may not have it. An id Alpaca already has returns that order's state
            and sends nothing.

        Raises
        ------
        BrokerUnavailable
            Nothing was sent: the circuit breaker is open, or Alpaca could not be asked
            whether the order exists.
        PyFinanceError
            The keys are refused, or the order id belongs to another symbol/side.
        """
        price = float(price)
        if not (math.isfinite(price) and price > 0):
            raise PyFinanceError(
                f"order {intent.client_order_id}: price must be a finite number > 0, got {price}"
            )
        coid = intent.client_order_id
        self._breaker.check()
        existing = self._lookup(coid)
        if existing is not None:
            fill = self._checked(intent, existing)
            log.info("order %s already at alpaca (%s); not sent again", coid, fill.status)
            return fill

        asset = self._asset(intent.symbol)
        if asset is None:
            return self._rejected(intent, f"alpaca does not know symbol {intent.symbol!r}")
        qty = _round_down(intent.qty, _QTY_DECIMALS)
        auction = self.time_in_force != "day"
        if auction or not asset.get("fractionable"):
            why = (
                f"{self.time_in_force} orders trade whole shares"
                if auction
                else f"{intent.symbol} is not fractionable at alpaca"
            )
            whole = math.floor(intent.qty + QTY_EPS)
            if whole < 1:
                return self._rejected(
                    intent, f"{why} and {intent.qty:.6g} sh rounds down to 0 whole shares"
                )
            if whole != intent.qty:
                log.info("%s: order %s sends %d of %.6g sh", why, coid, whole, intent.qty)
            qty = float(whole)
        if qty <= 0:
            return self._rejected(intent, f"qty {intent.qty:.3g} rounds down to 0 at alpaca")

        from alpaca.trading.enums import OrderSide, TimeInForce
        from alpaca.trading.requests import MarketOrderRequest

        request = MarketOrderRequest(
            symbol=intent.symbol,
            qty=qty,
            side=OrderSide(intent.side),
            time_in_force=TimeInForce(self.time_in_force),
            client_order_id=coid,
        )
        failure: _Failure | None = None
        for attempt in range(1, self.max_attempts + 1):
            try:
                raw = _order(self._client.submit_order(request))
            except Exception as exc:
                failure = self._classify(exc)
                if failure is None:
                    raise
                if failure.transient:
                    self._breaker.failed(f"order {coid}", failure, send=True)
                else:
                    self._breaker.answered(send=True)
            else:
                other = (
                    f"order {raw['client_order_id']}"
                    if raw["client_order_id"] != coid
                    else _mismatch(intent, raw, qty)
                )
                if other is not None:
                    # Not an answer about the order sent (a proxy's or cache's mix-up): the
                    # journal must not call it submitted. Ask Alpaca; never send it again.
                    failure = _Failure(None, f"the reply is about {other}, not the order sent")
                    self._breaker.failed(f"order {coid}", failure, send=True)
                    return self._confirm_or_unconfirmed(intent, failure)
                self._breaker.answered(send=True)
                fill = self._fill(raw)
                log.info(
                    "sent %s %s %.9g sh %s (ref %.4f): %s",
                    intent.side,
                    intent.symbol,
                    qty,
                    coid,
                    price,
                    fill.status,
                )
                return self._settle(fill, raw)
            assert failure is not None
            if failure.auth:  # outside the except block: nothing of the SDK's is chained
                raise self._error(f"order {coid}", failure, 1)
            # The reply is an error or lost, but the order may exist all the same: ask
            # before anything is sent again.
            try:
                found = self._lookup(coid)
            except BrokerUnavailable as exc:
                return self._unconfirmed(
                    intent,
                    f"sent ({failure.describe()}), but alpaca could not be asked whether it "
                    f"has the order: {exc}",
                )
            if found is not None:
                log.warning(
                    "order %s: send failed (%s) but alpaca has the order; using it",
                    coid,
                    failure.describe(),
                )
                fill = self._checked(intent, found)
                return self._settle(fill, found)
            if not (failure.transient or failure.duplicate_id):
                return self._rejected(intent, f"alpaca refused the order: {failure.describe()}")
            if attempt < self.max_attempts:
                try:
                    self._pause(attempt, failure, f"order {coid} (not at alpaca)", send=True)
                except BrokerUnavailable as exc:
                    return self._unconfirmed(intent, f"not confirmed after {attempt} tries: {exc}")
        assert failure is not None
        if failure.duplicate_id:
            raise PyFinanceError(
                f"alpaca says client_order_id {coid} is taken but does not return that "
                "order; check the account's orders before running again"
            )
        return self._unconfirmed(
            intent,
            f"alpaca did not confirm the order after {self.max_attempts} attempts "
            f"(last: {failure.describe()})",
        )

    def _checked(self, intent: OrderIntent, raw: dict[str, Any]) -> Fill:
        mismatch = _mismatch(intent, raw)
        if mismatch is not None:
            raise PyFinanceError(
                f"client_order_id {intent.client_order_id} was already used at alpaca for "
                f"{mismatch}, not {intent.side} {intent.symbol} {intent.qty:.9g} sh; order ids "
                "must be unique: cancel or check that order at alpaca before running again"
            )
        return self._fill(raw)

    def _confirm_or_unconfirmed(self, intent: OrderIntent, failure: _Failure) -> Fill:
        """After a reply that did not confirm the order sent: Alpaca's order, or unconfirmed."""
        try:
            found = self._lookup(intent.client_order_id)
        except BrokerUnavailable as exc:
            found, why = None, f"; alpaca could not be asked whether it has the order: {exc}"
        else:
            why = "; alpaca has no such order (yet)"
        if found is not None:
            fill = self._checked(intent, found)
            return self._settle(fill, found)
        return self._unconfirmed(intent, f"sent, but {failure.describe()}{why}")

    def _settle(self, fill: Fill, raw: dict[str, Any]) -> Fill:
        """Wait up to ``fill_timeout_s`` for a just-accepted order to become final."""
        if fill.final or self.fill_timeout_s <= 0 or str(raw.get("status")) in _QUEUED:
            return fill
        try:
            settled = self.wait_for_fills([fill.client_order_id], self.fill_timeout_s)
        except BrokerUnavailable as exc:  # accepted: its state is read again later
            log.warning(
                "order %s accepted; its fill could not be read: %s", fill.client_order_id, exc
            )
            return fill
        return settled[0] if settled else fill

    def cancel_open_orders(self) -> int:
        """Cancel every open order at Alpaca; return how many it canceled.

        Alpaca answers the mass cancel with one result per order (HTTP 207): each is
        counted, and an order it did not cancel is named.

        Raises
        ------
        OrdersLeftOpen
            Alpaca did not cancel some orders: they are named, and may still fill.
        BrokerUnavailable
            The cancel request itself failed.
        """
        from alpaca.trading.requests import CancelOrderResponse

        def parse(raw: Any) -> list[CancelOrderResponse]:
            if raw is None:  # nothing was open: an empty reply
                return []
            if not isinstance(raw, list):
                raise ValueError("expected a list of per-order results")
            return [CancelOrderResponse(**item) for item in raw]

        results = self._call("cancel open orders", self._client.cancel_orders, parse)
        canceled = [r for r in results if 200 <= r.status < 300]
        failed = [r for r in results if not 200 <= r.status < 300]
        if failed:
            try:  # name them by our ids, as the journal and the daily logs do
                names = {
                    f.broker_order_id: f"{f.client_order_id} ({f.side} {f.symbol})"
                    for f in self.open_orders()
                }
            except PyFinanceError as exc:
                log.warning("could not list the open orders to name them: %s", exc)
                names = {}
            left = []
            for r in failed:
                message = self._scrub(str((r.body or {}).get("message") or ""))
                name = names.get(str(r.id), f"alpaca order {r.id}")
                left.append(f"{name}: HTTP {r.status}" + (f" {message}" if message else ""))
            raise OrdersLeftOpen(
                f"alpaca canceled {len(canceled)} of {len(results)} open order(s); "
                f"{len(failed)} left open: " + "; ".join(left)
            )
        log.info("canceled %d open order(s) at alpaca", len(canceled))
        return len(canceled)

    def mark_to_market(self, prices: Mapping[str, float], session: dt.date) -> float:
        """Read the account's equity from Alpaca and record it as the equity of ``session``.

        Parameters
        ----------
        prices
            The loop's prices; unused (Alpaca values positions at its own last trades).
        session
            Session the equity point belongs to; marking it again replaces the point.

        Returns
        -------
        float
            Alpaca's account equity, account currency.
        """
        _, equity = self._call("account", self._client.get_account, _cash_equity)
        with transaction(self._conn) as conn:
            conn.execute(
                "INSERT INTO equity (session, equity, recorded_at) VALUES (?, ?, ?) "
                "ON CONFLICT(session) DO UPDATE SET equity = excluded.equity, "
                "recorded_at = excluded.recorded_at",
                (session_key(session), equity, self._now().isoformat()),
            )
        log.info("equity %s: %.2f (alpaca)", session_key(session), equity)
        return equity


def _cash_equity(raw: Any) -> tuple[float, float]:
    """Cash and equity of an account reply (refused when the SDK's model refuses it)."""
    from alpaca.trading.models import TradeAccount

    TradeAccount(**raw)
    return _float(raw.get("cash")), _float(raw.get("equity") or raw.get("portfolio_value"))


def _orders(raw: Any) -> list[dict[str, Any]]:
    if not isinstance(raw, list):
        raise ValueError("expected a list of orders")
    return [_order(item) for item in raw]


def _mismatch(intent: OrderIntent, raw: Mapping[str, Any], sent: float | None = None) -> str | None:
    """Why Alpaca's order ``raw`` is not ``intent`` (None when it is).

    ``sent``: the quantity this run sent (the intent's, cut to what Alpaca takes).
    """
    ordered = _float(raw.get("qty")) if raw.get("qty") not in (None, "") else None
    symbol, side = str(raw.get("symbol") or ""), str(raw.get("side") or "")
    if sent is not None and ordered is not None and (symbol, side) == (intent.symbol, intent.side):
        return None if abs(ordered - sent) <= QTY_EPS else f"{side} {symbol} {ordered:.9g} sh"
    return order_mismatch(intent, symbol, side, ordered)


def _order(raw: Any) -> dict[str, Any]:
    """Check that ``raw`` is an order this module can read, and return it.

    Deliberately looser than alpaca-py's ``Order`` model, whose status enum would refuse a
    status Alpaca adds later; such an order is read as open instead.
    """
    if not isinstance(raw, dict):
        raise ValueError(f"expected an order object, got {type(raw).__name__}")
    for name in ("id", "client_order_id", "status", "symbol", "side"):
        if not isinstance(raw.get(name), str) or not raw[name]:
            raise ValueError(f"order without {name!r}")
    for name in ("qty", "filled_qty", "filled_avg_price", "commission"):
        value = _float(raw.get(name))
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"order {name} is {value}")
    return raw
