"""Shared pieces of the vendor sources: results, sector fallback, date helpers."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from importlib import resources

import pandas as pd

from py_finance.data.sources.base import BAR_COLUMNS

BAR_FIELDS = [c for c in BAR_COLUMNS if c != "available_at"]
ACTION_COLUMNS = ["symbol", "ex_date", "kind", "value"]


@dataclass(frozen=True, slots=True)
class Fetched:
    """What one symbol's fetch returned: bars and the corporate actions in the range."""

    bars: pd.DataFrame
    actions: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=ACTION_COLUMNS))


def empty_bars() -> pd.DataFrame:
    """A bar table with no rows."""
    return pd.DataFrame({c: pd.Series(dtype="float64") for c in BAR_FIELDS}).astype(
        {"symbol": str, "session": "datetime64[us]"}
    )


def sectors_for(symbols: list[str]) -> pd.DataFrame:
    """GICS sectors from the repo's reference file; unknown names get their own bucket.

    A symbol without a known sector is put in ``Unknown <symbol>`` so a sector cap never
    lumps unrelated names together.
    """
    frames = []
    for name in ("sectors_bundled.csv", "sectors_known.csv"):
        ref = resources.files("py_finance.data.sources").joinpath(name)
        with ref.open("r", encoding="utf-8") as fh:
            frames.append(pd.read_csv(fh))
    table = pd.concat(frames).drop_duplicates("symbol").set_index("symbol")
    rows = []
    for sym in symbols:
        if sym in table.index:
            rows.append({"symbol": sym, **table.loc[sym].to_dict()})
        else:
            rows.append({"symbol": sym, "name": sym, "sector": f"Unknown {sym}"})
    return pd.DataFrame(rows, columns=["symbol", "name", "sector"])


def day_iso(day: dt.date) -> str:
    """ISO date string."""
    return day.isoformat()
