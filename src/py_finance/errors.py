"""The project's one user-facing exception type and its CLI handling."""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

log = logging.getLogger(__name__)


class PyFinanceError(Exception):
    """An error a user can cause and fix (bad symbol, bad dates, missing champion, ...).

    The message says what went wrong and what to do. CLIs print it on one line, without a
    traceback, and exit with status 2.
    """


class DataError(PyFinanceError):
    """Input data is missing, corrupt, or does not cover what was asked for."""


class ConfigError(PyFinanceError):
    """A configuration value is invalid."""


class ModelNotFoundError(PyFinanceError):
    """A registered model or alias (e.g. ``@champion``) does not exist."""


def cli_errors(func: Callable[..., T]) -> Callable[..., T]:
    """Wrap a CLI ``main`` so a :class:`PyFinanceError` prints one line and exits 2."""

    @functools.wraps(func)
    def wrapper(*args: object, **kwargs: object) -> T:
        try:
            return func(*args, **kwargs)
        except PyFinanceError as exc:
            print(f"error: {exc}", file=sys.stderr)
            raise SystemExit(2) from None

    return wrapper
