"""The protocol every data source implements, and the bar table's columns."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Protocol

import pandas as pd

BAR_COLUMNS = (
    "symbol",
    "session",
    "open",
    "high",
    "low",
    "close",
    "adj_close",
    "volume",
    "available_at",
)


@dataclass(frozen=True, slots=True)
class SourceInfo:
    """What a source is and what its data can and cannot be trusted for."""

    name: str
    survivorship_biased: bool
    adjusted_only: bool
    notes: tuple[str, ...] = field(default_factory=tuple)


class BarSource(Protocol):
    """A source of daily bars, a benchmark series and sector labels."""

    info: SourceInfo

    def symbols(self) -> list[str]:
        """Symbols the source can deliver."""
        ...

    def bars(self, symbols: list[str], start: dt.date, end: dt.date) -> pd.DataFrame:
        """Long bar table (``BAR_COLUMNS`` without ``available_at``), sessions in range."""
        ...

    def benchmark(self, start: dt.date, end: dt.date) -> pd.DataFrame:
        """Long bar table of the benchmark series (one symbol)."""
        ...

    def sectors(self, symbols: list[str]) -> pd.DataFrame:
        """Columns ``symbol, name, sector`` (GICS sector)."""
        ...


def check_range(
    start: dt.date, end: dt.date, coverage: tuple[dt.date, dt.date], what: str, hint: str = ""
) -> None:
    """Fail unless ``start..end`` is inside ``coverage``; ``what`` says whose (``the X cover``)."""
    from py_finance.errors import DataError

    if end < start:
        raise DataError(f"end date {end} is before start date {start}")
    first, last = coverage
    if start < first or end > last:
        raise DataError(
            f"requested {start}..{end} but {what} {first}..{last}: "
            f"choose dates inside that range{hint}"
        )
