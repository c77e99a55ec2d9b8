"""The ``data`` config group: which source, symbols, range and universe the pipeline ingests."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from py_finance.errors import ConfigError


@dataclass(frozen=True, slots=True)
class DataConfig:
    """Which data the pipeline ingests (``conf/data/``).

    Parameters
    ----------
    source
        Source name: ``bundled`` (offline default), ``yahoo``, ``tiingo`` or ``alpaca``.
    symbols
        Symbols to ingest; ``None`` means every symbol of the source (or the universe file).
    start, end
        Inclusive session range (ISO dates).
    calendar
        Exchange calendar the sessions are checked against.
    benchmark
        Benchmark symbol (``None``: the source's default, ``SP500`` for bundled, else SPY).
    universe
        CSV of membership spells ``symbol,start,end`` (``None``: derived from the data,
        which is survivorship-biased when the symbols were picked today).
    batch_size
        Symbols per committed snapshot during ingest (an interrupted ingest resumes from
        the last committed batch).
    options
        Keyword arguments for the source's constructor (e.g. ``base_url`` for a proxy,
        ``feed`` for alpaca, ``filing_lag_days`` for tiingo).
    """

    source: str = "bundled"
    symbols: tuple[str, ...] | None = None
    start: str = "1990-01-02"
    end: str = "2022-12-28"
    calendar: str = "XNYS"
    benchmark: str | None = None
    universe: str | None = None
    batch_size: int = 10
    options: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.options is not None:
            object.__setattr__(self, "options", dict(self.options))
        if self.symbols is not None:
            object.__setattr__(self, "symbols", tuple(str(s).upper() for s in self.symbols))
        try:
            start, end = self.start_date, self.end_date
        except ValueError as exc:
            raise ConfigError(f"data.start/data.end must be ISO dates: {exc}") from exc
        if end < start:
            raise ConfigError(f"data.end ({end}) is before data.start ({start})")
        if self.batch_size < 1:
            raise ConfigError(f"data.batch_size must be at least 1, got {self.batch_size}")
        from py_finance.data.sources.registry import SOURCES

        if self.source not in SOURCES:
            raise ConfigError(
                f"data.source {self.source!r} is unknown; choose one of {', '.join(SOURCES)}"
            )

    def universe_id(self) -> str:
        """A short, stable name of the universe this config trades (deployment names).

        ``bundled`` for the bundled data as shipped; otherwise the source and a digest of what
        picks the names and their data (symbols, universe file, benchmark, source options),
        e.g. ``files-3fa2c1``. The dates are left out: a refreshed store is the same universe.
        """
        if self.source == "bundled" and not (self.symbols or self.universe or self.options):
            return "bundled"
        import hashlib
        import json

        text = json.dumps(
            [
                sorted(self.symbols) if self.symbols else None,
                self.universe,
                self.benchmark,
                self.options or {},
            ],
            sort_keys=True,
            default=str,
        )
        return f"{self.source}-{hashlib.sha256(text.encode()).hexdigest()[:6]}"

    @property
    def start_date(self) -> dt.date:
        """``start`` as a date."""
        return dt.date.fromisoformat(str(self.start))

    @property
    def end_date(self) -> dt.date:
        """``end`` as a date."""
        return dt.date.fromisoformat(str(self.end))
