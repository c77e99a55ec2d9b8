"""What every vendor source shares: API keys, bounded retries, a rate limit per vendor.

Retries (tenacity) cover 429, 5xx, timeouts and dropped connections, with exponential
backoff and a bounded number of attempts; anything else (401, 404, malformed JSON, a payload
without the expected keys) fails at once with a :class:`DataError` that names the vendor.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from py_finance.errors import DataError

log = logging.getLogger(__name__)
T = TypeVar("T")


class TransientError(Exception):
    """A failure worth retrying (rate limit, server error, timeout)."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Bounded exponential backoff: ``attempts`` tries, waits from ``base_s`` up to ``max_s``."""

    attempts: int = 5
    base_s: float = 1.0
    max_s: float = 30.0


def api_key(variable: str, source: str) -> str:
    """The key in ``variable`` from the environment or a ``.env`` file in the working dir."""
    value = os.environ.get(variable)
    if not value:
        from dotenv import dotenv_values

        env_file = Path.cwd() / ".env"
        if env_file.exists():
            value = dotenv_values(env_file).get(variable)
    if not value:
        raise DataError(
            f"the {source} source needs an API key: set {variable} in the environment "
            "or in a .env file in the working directory"
        )
    return str(value)


class RateLimiter:
    """At most ``per_second`` calls per second, shared by the threads of one vendor."""

    def __init__(self, per_second: float) -> None:
        self.interval = 1.0 / per_second if per_second > 0 else 0.0
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        """Block until the next call is allowed."""
        with self._lock:
            now = time.monotonic()
            delay = self._next - now
            self._next = max(now, self._next) + self.interval
        if delay > 0:
            time.sleep(delay)


def with_retries(
    call: Callable[[], T], *, vendor: str, what: str, policy: RetryPolicy, limiter: RateLimiter
) -> T:
    """Run ``call`` under the rate limit, retrying :class:`TransientError` with backoff."""
    from tenacity import (
        RetryError,
        Retrying,
        retry_if_exception_type,
        stop_after_attempt,
        wait_exponential_jitter,
    )

    def attempt() -> T:
        limiter.wait()
        return call()

    retrying = Retrying(
        stop=stop_after_attempt(policy.attempts),
        wait=wait_exponential_jitter(initial=policy.base_s, max=policy.max_s, jitter=policy.base_s),
        retry=retry_if_exception_type(TransientError),
        before_sleep=lambda state: log.warning(
            "%s %s: %s; retry %d of %d",
            vendor,
            what,
            state.outcome.exception() if state.outcome else "?",
            state.attempt_number,
            policy.attempts - 1,
        ),
        reraise=False,
    )
    try:
        return retrying(attempt)
    except RetryError as exc:
        last = exc.last_attempt.exception()
        raise DataError(
            f"{vendor} {what} failed after {policy.attempts} attempts ({last}); "
            "the vendor is rate limiting or down: try again later"
        ) from None


def get_json(
    url: str,
    params: dict[str, Any],
    *,
    vendor: str,
    what: str,
    policy: RetryPolicy,
    limiter: RateLimiter,
    headers: dict[str, str] | None = None,
    timeout: float = 30.0,
    session: Any = None,
) -> Any:
    """GET ``url`` and decode JSON, with retries; secrets in ``params`` never reach messages."""
    import requests

    http = session or requests

    def call() -> Any:
        try:
            resp = http.get(url, params=params, headers=headers, timeout=timeout)
        except (requests.Timeout, requests.ConnectionError) as exc:
            raise TransientError(f"{type(exc).__name__}") from exc
        if resp.status_code == 429 or resp.status_code >= 500:
            raise TransientError(f"HTTP {resp.status_code}")
        if resp.status_code in (401, 403):
            raise DataError(f"{vendor} refused the API key (HTTP {resp.status_code}): check it")
        if resp.status_code == 404:
            raise DataError(f"{vendor} {what}: not found (HTTP 404); check the symbol")
        if resp.status_code >= 400:
            raise DataError(f"{vendor} {what}: HTTP {resp.status_code}: {resp.text[:200]}")
        try:
            return resp.json()
        except ValueError:
            raise DataError(
                f"{vendor} {what} returned malformed JSON ({resp.text[:80]!r}); "
                "retry later or report it to the vendor"
            ) from None

    return with_retries(call, vendor=vendor, what=what, policy=policy, limiter=limiter)


def require(payload: Any, key: str, *, vendor: str, what: str) -> Any:
    """``payload[key]``, or a :class:`DataError` saying the vendor's payload lacks it."""
    if not isinstance(payload, dict) or key not in payload:
        raise DataError(
            f"{vendor} {what}: the response has no {key!r} field (the API changed?); "
            "report it or pin an older version"
        )
    return payload[key]
