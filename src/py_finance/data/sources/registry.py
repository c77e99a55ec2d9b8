"""Sources by name. Every bar source has ``info``, ``check_symbols``, ``fetch`` and ``sectors``."""

from __future__ import annotations

from typing import Any

from py_finance.errors import ConfigError

SOURCES = ("bundled", "files", "synthetic", "yahoo", "tiingo", "alpaca")
NEWS_SOURCES = ("finnhub",)
FUNDAMENTALS_SOURCES = ("tiingo",)


def get_source(name: str, **options: Any) -> Any:
    """Build the bar source ``name`` (keyword ``options`` go to its constructor)."""
    if name == "bundled":
        from py_finance.data.sources.bundled import BundledSource

        return BundledSource()
    if name == "files":
        from py_finance.data.sources.files import FilesSource

        return FilesSource(**options)
    if name == "synthetic":
        from py_finance.data.sources.synthetic import SyntheticSource

        return SyntheticSource(**options)
    if name == "yahoo":
        from py_finance.data.sources.yahoo import YahooSource

        return YahooSource(**options)
    if name == "tiingo":
        from py_finance.data.sources.tiingo import TiingoSource

        return TiingoSource(**options)
    if name == "alpaca":
        from py_finance.data.sources.alpaca import AlpacaSource

        return AlpacaSource(**options)
    raise ConfigError(f"unknown data source {name!r}; available: {', '.join(SOURCES)}")


def default_benchmark(source: Any) -> str:
    """The source's own benchmark symbol, else SPY."""
    return str(getattr(source, "benchmark_symbol", "SPY"))
