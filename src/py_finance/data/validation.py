"""Bar validation: every refused row goes to quarantine with its reason; nothing is dropped.

Rules, each with its own reason text (the prefix before ``:`` is the rule name):

- ``schema``: a value that is not a number, or a session that is not a date;
- ``duplicate``: a second row for the same ``(symbol, session)``;
- ``non-positive``: a price at or below zero, or a negative volume;
- ``ohlc``: high below open/close/low, or low above open/close;
- ``calendar``: a date that is not a session of the exchange calendar;
- ``split-jump``: a day-over-day adjusted-close ratio close to a common split ratio that no
  recorded split explains (an unadjusted split in "adjusted" data).

Sessions missing between a symbol's first and last row are reported as gaps (they are not
rows, so nothing is quarantined for them).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from py_finance.data.calendar import sessions as calendar_sessions
from py_finance.data.sources.base import BAR_COLUMNS
from py_finance.errors import DataError

PRICE_COLUMNS = ("open", "high", "low", "close", "adj_close")
NUMERIC_COLUMNS = (*PRICE_COLUMNS, "volume")
SPLIT_RATIOS = (2.0, 3.0, 4.0, 5.0, 8.0, 10.0, 20.0, 1.5, 1 / 2, 1 / 3, 1 / 4, 1 / 5, 1 / 10, 2 / 3)
SPLIT_TOLERANCE = 0.03
QUARANTINE_COLUMNS = ("table", "symbol", "session", "reason", "source", "row")


@dataclass(frozen=True, slots=True)
class Validated:
    """Clean rows, refused rows (with ``reason``) and missing sessions per symbol."""

    clean: pd.DataFrame
    quarantine: pd.DataFrame
    gaps: dict[str, tuple[str, ...]] = field(default_factory=dict)
    suspect: pd.DataFrame | None = None  # kept rows a rule flagged (``split_jumps="report"``)

    @property
    def n_gaps(self) -> int:
        """Number of missing sessions over all symbols."""
        return sum(len(v) for v in self.gaps.values())


def validate_bars(
    bars: pd.DataFrame,
    *,
    calendar: str = "XNYS",
    splits: pd.DataFrame | None = None,
    table: str = "bars",
    source: str = "",
    split_jumps: str = "quarantine",
) -> Validated:
    """Split ``bars`` into clean rows and quarantined rows; see the module docstring.

    ``splits`` (``symbol, ex_date``) lists recorded splits that explain a jump.
    ``split_jumps="report"`` keeps rows that only the split-jump rule flags and lists them in
    ``suspect``: for a source whose prices are already split-adjusted a jump of a split-like
    ratio is a real move (AMD +52% on 2016-04-22), and dropping it would delete a real price.
    """
    if split_jumps not in ("quarantine", "report"):
        raise ValueError(f"split_jumps must be 'quarantine' or 'report', got {split_jumps!r}")
    missing = [c for c in BAR_COLUMNS if c != "available_at" and c not in bars.columns]
    if missing:
        raise DataError(
            f"{source or 'source'} bars are missing columns {missing}: "
            "the source returned an unexpected schema"
        )
    raw = bars[[c for c in BAR_COLUMNS if c != "available_at"]].reset_index(drop=True)
    frame = raw.copy()
    frame["symbol"] = frame["symbol"].astype(str).str.upper()
    reasons = pd.Series("", index=frame.index, dtype=object)

    def flag(mask: pd.Series | np.ndarray, reason: str) -> None:
        mask = pd.Series(np.asarray(mask, dtype=bool), index=frame.index) & (reasons == "")
        reasons[mask] = reason

    session = pd.to_datetime(frame["session"], errors="coerce")
    flag(session.isna(), "schema: session is not a date")
    frame["session"] = session.dt.tz_localize(None) if session.dt.tz is not None else session
    frame["session"] = frame["session"].dt.normalize()
    for col in NUMERIC_COLUMNS:
        num = pd.to_numeric(frame[col], errors="coerce")
        flag(num.isna() & raw[col].notna(), f"schema: {col} is not a number")
        frame[col] = num.astype("float64")

    dup = frame.duplicated(["symbol", "session"], keep="first") & frame["session"].notna()
    flag(dup, "duplicate: (symbol, session) already in this batch")

    for col in PRICE_COLUMNS:
        flag(frame[col] <= 0, f"non-positive: {col} <= 0")
    flag(frame["volume"] < 0, "non-positive: volume < 0")

    o, h, lo, c = (frame[k] for k in ("open", "high", "low", "close"))
    top = pd.concat([o, c, lo], axis=1).max(axis=1)
    bottom = pd.concat([o, c], axis=1).min(axis=1)
    flag(h.notna() & (h < top), "ohlc: high below open/close/low")
    flag(lo.notna() & (lo > bottom), "ohlc: low above open/close")

    valid_dates = frame["session"].dropna()
    if len(valid_dates):
        expected = calendar_sessions(valid_dates.min(), valid_dates.max(), calendar)
        flag(
            frame["session"].notna() & ~frame["session"].isin(expected),
            f"calendar: not a {calendar} session",
        )

    before = reasons.copy()
    _flag_split_jumps(frame, reasons, splits)
    suspect = None
    if split_jumps == "report":
        jumps = (before == "") & (reasons != "")
        suspect = _quarantine_rows(raw[jumps], reasons[jumps], table=table, source=source)
        reasons[jumps] = ""

    bad = reasons != ""
    clean = frame[~bad].reset_index(drop=True)
    quarantined = _quarantine_rows(raw[bad], reasons[bad], table=table, source=source)
    gaps = _gaps(clean, calendar)
    return Validated(clean=clean, quarantine=quarantined, gaps=gaps, suspect=suspect)


def _flag_split_jumps(frame: pd.DataFrame, reasons: pd.Series, splits: pd.DataFrame | None) -> None:
    explained: set[tuple[str, pd.Timestamp]] = set()
    if splits is not None and len(splits):
        explained = {
            (str(s), pd.Timestamp(d).normalize())
            for s, d in zip(splits["symbol"], splits["ex_date"], strict=True)
        }
    ok = reasons == ""
    view = frame[ok & frame["adj_close"].notna()].sort_values(["symbol", "session"])
    prev = view.groupby("symbol")["adj_close"].shift(1)
    ratio = (view["adj_close"] / prev).to_numpy()
    hits = np.zeros(len(view), dtype=bool)
    best = np.full(len(view), np.nan)
    for r in SPLIT_RATIOS:
        near = np.abs(ratio * r - 1.0) < SPLIT_TOLERANCE
        best = np.where(near & ~hits, r, best)
        hits |= near
    for idx, r, sym, day in zip(
        view.index[hits], best[hits], view["symbol"][hits], view["session"][hits], strict=True
    ):
        if (sym, day) in explained:
            continue
        new_per_old = float(r)
        label = f"{new_per_old:g}:1" if new_per_old >= 1 else f"1:{1 / new_per_old:g}"
        reasons[idx] = (
            f"split-jump: price x{1 / r:.3g} vs previous session looks like an unadjusted "
            f"{label} split"
        )


def _quarantine_rows(
    raw: pd.DataFrame, reasons: pd.Series, *, table: str, source: str
) -> pd.DataFrame:
    if raw.empty:
        return pd.DataFrame(columns=list(QUARANTINE_COLUMNS))
    rows = [
        json.dumps({k: _jsonable(v) for k, v in rec.items()}, sort_keys=True)
        for rec in raw.to_dict("records")
    ]
    return pd.DataFrame(
        {
            "table": table,
            "symbol": raw["symbol"].astype(str).str.upper().to_numpy(),
            "session": [str(_jsonable(v)) for v in raw["session"]],
            "reason": reasons.to_numpy(),
            "source": source,
            "row": rows,
        }
    )


def _jsonable(value: object) -> object:
    if isinstance(value, pd.Timestamp):
        return value.date().isoformat() if value == value.normalize() else value.isoformat()
    if isinstance(value, float) and np.isnan(value):
        return None
    if isinstance(value, np.generic):
        return value.item()
    return value if isinstance(value, str | int | float | type(None)) else str(value)


def _gaps(clean: pd.DataFrame, calendar: str) -> dict[str, tuple[str, ...]]:
    out: dict[str, tuple[str, ...]] = {}
    for sym, group in clean.groupby("symbol"):
        days = pd.DatetimeIndex(group["session"])
        expected = calendar_sessions(days.min(), days.max(), calendar)
        missing = expected.difference(days)
        if len(missing):
            out[str(sym)] = tuple(d.date().isoformat() for d in missing)
    return out
