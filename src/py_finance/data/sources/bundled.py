"""The default, offline source: the S&P 500 sample that ships with ``skfolio``.

Twenty large US stocks (daily adjusted close, 1990-01-02 to 2022-12-28) and the S&P 500
price index over the same dates. The twenty names are today's survivors, picked with
hindsight: every result on them is survivorship-biased. The index is a price index (no
dividends); it stands in for SPY buy-and-hold and understates SPY's total return.
"""

from __future__ import annotations

import datetime as dt
import functools
import importlib.util
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from py_finance.data.config import DataConfig
from py_finance.data.sources.base import BAR_COLUMNS, SourceInfo, check_range
from py_finance.data.sources.vendor import Fetched
from py_finance.errors import DataError

BENCHMARK_SYMBOL = "SP500"

INFO = SourceInfo(
    name="bundled",
    survivorship_biased=True,
    adjusted_only=True,
    notes=(
        "20 large caps chosen as 2022 survivors: results are survivorship-biased",
        "adjusted close only (no open/high/low/volume); prices rounded to 0.001",
        "benchmark is the S&P 500 price index (no dividends), standing in for SPY",
    ),
)


def _data_dir() -> Path:
    # Located without importing skfolio (its import pulls in scikit-learn and scipy: ~2 s).
    spec = importlib.util.find_spec("skfolio")
    if spec is None or spec.origin is None:
        raise DataError("the bundled data needs the skfolio package: run `make install`")
    return Path(spec.origin).parent / "datasets" / "data"


@functools.lru_cache(maxsize=1)
def _wide(name: str) -> pd.DataFrame:
    path = _data_dir() / name
    if not path.exists():
        raise DataError(f"bundled data file {path} is missing: reinstall skfolio (`make install`)")
    frame = pd.read_csv(path, index_col="Date", parse_dates=["Date"])
    frame.index.name = "session"
    return frame.astype("float64")


def _to_long(wide: pd.DataFrame) -> pd.DataFrame:
    stacked = pd.Series(wide.rename_axis(columns="symbol").stack(), name="adj_close")
    long = stacked.reset_index()
    long = long.dropna(subset=["adj_close"])
    long["session"] = pd.to_datetime(long["session"]).dt.normalize()
    for col in ("open", "high", "low", "close", "volume"):
        long[col] = np.nan
    long["symbol"] = long["symbol"].astype(str)
    return long[[c for c in BAR_COLUMNS if c != "available_at"]]


class BundledSource:
    """Offline bars from the ``skfolio`` S&P 500 sample; see the module docstring."""

    info = INFO
    benchmark_symbol = BENCHMARK_SYMBOL

    def symbols(self) -> list[str]:
        """The 20 bundled symbols."""
        return [str(c) for c in _wide("sp500_dataset.csv.gz").columns]

    def coverage(self) -> tuple[dt.date, dt.date]:
        """First and last session in the bundled files."""
        index = _wide("sp500_dataset.csv.gz").index
        return index[0].date(), index[-1].date()

    def _check_range(self, start: dt.date, end: dt.date) -> None:
        check_range(start, end, self.coverage(), "the bundled data covers")

    def check_symbols(self, symbols: list[str]) -> list[str]:
        """Upper-case ``symbols`` and fail on any the source does not have."""
        wanted = [s.upper() for s in symbols]
        known = set(self.symbols())
        unknown = [s for s in wanted if s not in known]
        if unknown:
            raise DataError(
                f"unknown symbol(s) {', '.join(unknown)} for the bundled source; "
                f"available: {', '.join(sorted(known))}"
            )
        return wanted

    def bars(self, symbols: list[str], start: dt.date, end: dt.date) -> pd.DataFrame:
        """Adjusted closes of ``symbols`` for sessions in ``[start, end]``."""
        wanted = self.check_symbols(symbols)
        self._check_range(start, end)
        wide = _wide("sp500_dataset.csv.gz").loc[str(start) : str(end), wanted]
        return _to_long(wide)

    def benchmark(self, start: dt.date, end: dt.date) -> pd.DataFrame:
        """The S&P 500 price index as symbol ``SP500``."""
        self._check_range(start, end)
        wide = _wide("sp500_index.csv.gz").loc[str(start) : str(end)]
        wide = wide.set_axis([BENCHMARK_SYMBOL], axis=1)
        return _to_long(wide)

    def fetch(self, symbol: str, start: dt.date, end: dt.date) -> Fetched:
        """One symbol's bars (``SP500`` is the index); the bundled data has no actions."""
        if symbol.upper() == BENCHMARK_SYMBOL:
            return Fetched(bars=self.benchmark(start, end))
        return Fetched(bars=self.bars([symbol], start, end))

    def sectors(self, symbols: list[str]) -> pd.DataFrame:
        """GICS sectors of the bundled names (kept in the repo)."""
        wanted = self.check_symbols(symbols)
        ref = resources.files("py_finance.data.sources").joinpath("sectors_bundled.csv")
        with ref.open("r", encoding="utf-8") as fh:
            table = pd.read_csv(fh)
        return table.set_index("symbol").loc[wanted].reset_index()


def get_source(name: str, **options: object) -> Any:
    """Source by name (``bundled``, ``yahoo``, ``tiingo``, ``alpaca``); see ``registry``."""
    from py_finance.data.sources.registry import get_source as _get

    return _get(name, **options)


__all__ = ["BENCHMARK_SYMBOL", "INFO", "BundledSource", "DataConfig", "get_source"]
