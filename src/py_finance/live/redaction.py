"""Secret redaction on every way out of the process that :mod:`py_finance.live.alerts` misses.

Log records and alerts are masked there (:func:`~py_finance.live.alerts.install_redaction`,
:class:`~py_finance.live.alerts.Alerter`). What is left: text written straight to stdout and
stderr (a CLI's ``error: ...`` line, a traceback, a ``print``), which cron appends to
``logs/cron.log``; the daily log's JSON; and exception messages a caller of the library
reads. A broker that echoes the API key in an error body reaches all three.
"""

from __future__ import annotations

import atexit
import io
import sys
from collections.abc import Callable, Iterable
from typing import Any, TextIO

from py_finance.live.alerts import Redactor, install_redaction

__all__ = [
    "RedactingStream",
    "excerpt",
    "install_output_redaction",
    "redact_exception",
    "redact_json",
]


class RedactingStream(io.TextIOBase):
    """A text stream that masks secrets in what is written to it, line by line.

    Lines are held until their newline (or a flush), so a secret written in two pieces, as
    ``print`` and the traceback printer do, is still seen whole.

    Parameters
    ----------
    stream
        Where the redacted text goes.
    redact
        Text -> text with the secrets masked.
    """

    def __init__(self, stream: TextIO, redact: Callable[[str], str]) -> None:
        super().__init__()
        self.stream = stream
        self.redact = redact
        self._pending = ""

    def writable(self) -> bool:
        """Always True."""
        return True

    def write(self, text: str) -> int:
        """Buffer ``text``; pass on every complete line, redacted."""
        self._pending += text
        cut = self._pending.rfind("\n")
        if cut >= 0:
            lines, self._pending = self._pending[: cut + 1], self._pending[cut + 1 :]
            self.stream.write(self.redact(lines))
        return len(text)

    def flush(self) -> None:
        """Pass on what is buffered (redacted) and flush the underlying stream."""
        if self._pending:
            pending, self._pending = self._pending, ""
            self.stream.write(self.redact(pending))
        self.stream.flush()

    def isatty(self) -> bool:
        """Whether the underlying stream is a terminal."""
        return self.stream.isatty()

    def fileno(self) -> int:
        """The underlying stream's file descriptor."""
        return self.stream.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        """The underlying stream's encoding."""
        return str(getattr(self.stream, "encoding", "utf-8"))


def install_output_redaction(secrets: Iterable[str]) -> Redactor:
    """Mask ``secrets`` on stdout, stderr and every log record of this process.

    Call it before logging is set up, so the log handler writes to the redacting stderr
    too. Calling it again replaces the secrets (the streams are wrapped once).

    Returns
    -------
    Redactor
        The redactor now in force.
    """
    redactor = Redactor(secrets)
    for name in ("stdout", "stderr"):
        current = getattr(sys, name)
        if isinstance(current, RedactingStream):
            current.flush()
            current.redact = redactor
        else:
            wrapped = RedactingStream(current, redactor)
            setattr(sys, name, wrapped)
            atexit.register(wrapped.flush)
    install_redaction(redactor.secrets)
    return redactor


def excerpt(text: str, redact: Callable[[str], str], limit: int) -> str:
    """A single-line excerpt of ``text`` of at most ``limit`` characters, masked first.

    The whole text is redacted before anything is cut: a secret cut at the limit (or
    wrapped across lines) would otherwise keep its head, which no longer matches it.
    """
    return " ".join(redact(text).split())[: max(limit, 0)]


def redact_json(obj: Any, redact: Callable[[str], str]) -> Any:
    """Return ``obj`` (plain JSON values) with every string, keys included, redacted."""
    if isinstance(obj, str):
        return redact(obj)
    if isinstance(obj, dict):
        return {redact(str(k)): redact_json(v, redact) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [redact_json(v, redact) for v in obj]
    return obj


def redact_exception(exc: BaseException, redact: Callable[[str], str]) -> None:
    """Mask secrets in the messages of ``exc`` and of every exception chained to it.

    In place, so the exception keeps its type and traceback for the caller; string
    arguments are redacted (``str(exc)`` is built from them).
    """
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        current = todo.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        current.args = tuple(redact(a) if isinstance(a, str) else a for a in current.args)
        for attr in ("_error",):  # alpaca-py's APIError keeps the raw body here too
            value = getattr(current, attr, None)
            if isinstance(value, str):
                try:
                    setattr(current, attr, redact(value))
                except AttributeError:
                    pass
        todo += [current.__cause__, current.__context__]
