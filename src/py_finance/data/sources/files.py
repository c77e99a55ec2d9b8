"""Daily bars a user brings as files: per-symbol CSVs or one long table (CSV or Parquet).

A directory holds either one file per symbol (``AAPL.csv``, ``AAPL.csv.gz`` or
``AAPL.parquet``; the symbol is the upper-cased file stem) or one long table ``bars.csv`` /
``bars.parquet`` with a ``symbol`` column (both may be mixed; a (symbol, date) given twice is
an error). Columns: ``date`` (or ``session``, ISO ``YYYY-MM-DD``), ``open, high, low, close,
volume`` and optional ``adj_close`` (defaults to ``close``); names are case-insensitive.

Reference files beside them (reserved names, not symbols), all optional:

- ``universe.csv``: membership spells ``symbol,start,end`` (empty end: still a member;
  several spells per symbol allowed). Without it the universe is survivorship-biased.
- ``delistings.csv``: ``symbol,date,delisting_return``; ``date`` is the first session the
  name no longer trades, ``delisting_return`` the return from the last close to what a holder
  receives (CRSP DLRET convention, >= -1).
- ``sectors.csv``: ``symbol,from,sector`` (optional ``name``); a sector applies from
  session ``from`` (empty: all history).

Values that cannot be parsed raise :class:`DataError` naming the file, the line (CSV: the
physical line, header = line 1; Parquet: ``row N`` counting data rows from 1) and the column.
Values that parse but are implausible (negative prices, high < low) are returned as given:
``validate_bars`` quarantines them at ingest, as for every vendor.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from py_finance.data.calendar import sessions as calendar_sessions
from py_finance.data.sources.base import SourceInfo, check_range
from py_finance.data.sources.vendor import BAR_FIELDS, Fetched, sectors_for
from py_finance.errors import DataError

log = logging.getLogger(__name__)

EXTENSIONS = (".csv.gz", ".csv", ".parquet")
LONG_TABLE = "bars"
REFERENCE = ("universe", "delistings", "sectors")
PRICES = ("open", "high", "low", "close")
MISSING = frozenset({"", "na", "n/a", "nan", "null", "none"})
NA_TOKENS = sorted({v for t in MISSING for v in (t, t.upper(), t.capitalize())} | {"NaN"})
NUMERIC = frozenset({*PRICES, "adj_close", "volume", "delisting_return"})
UNIVERSE_COLUMNS = ["symbol", "start", "end"]
DELISTING_COLUMNS = ["symbol", "date", "delisting_return"]
SECTOR_COLUMNS = ["symbol", "name", "sector", "from"]
EXPECTED = (
    "expected one <SYMBOL>.csv (or .csv.gz, .parquet) per symbol with columns "
    "date,open,high,low,close,volume[,adj_close], or one bars.csv/bars.parquet with a symbol "
    "column as well; optional universe.csv, delistings.csv, sectors.csv (see docs/data.md)"
)


def _split_name(name: str) -> tuple[str, str] | None:
    """``(stem, extension)`` of a data file name, ``None`` for other files."""
    if name.startswith("."):
        return None
    lower = name.lower()
    for ext in EXTENSIONS:
        if lower.endswith(ext) and len(name) > len(ext):
            return name[: -len(ext)], ext
    return None


@dataclass(frozen=True, slots=True)
class _Table:
    """One file's rows as read (CSV: strings; Parquet: its own dtypes), columns lower-cased.

    The index is the 0-based data row, so a row can be named in an error message.
    """

    name: str
    frame: pd.DataFrame
    is_csv: bool

    def where(self, row: int) -> str:
        """``AAPL.csv line 17`` (header = line 1) or ``bars.parquet row 16`` (from 1)."""
        return _where(self.name, row)

    def require(self, columns: Iterable[str], what: str) -> None:
        missing = [c for c in columns if c not in self.frame.columns]
        if missing:
            raise DataError(
                f"{self.name} lacks column(s) {', '.join(missing)}: {what} "
                f"(found: {', '.join(map(str, self.frame.columns)) or 'none'})"
            )


def _where(name: str, row: int) -> str:
    """Where data row ``row`` (0-based) of file ``name`` is, as a person finds it."""
    if name.lower().endswith(".parquet"):
        return f"{name} row {row + 1}"
    return f"{name} line {row + 2}"


def _read_table(path: Path, root: Path) -> _Table:
    name = path.relative_to(root).as_posix()
    is_csv = not name.lower().endswith(".parquet")
    try:
        if is_csv:
            # numbers parsed by the C reader (the slow path in ``_numbers`` only runs for a
            # column holding something else); every other column stays text, "NA" included
            head = pd.read_csv(path, nrows=0, encoding="utf-8-sig").columns
            numeric = [c for c in head if str(c).strip().lower() in NUMERIC]
            frame = pd.read_csv(
                path,
                dtype={c: str for c in head if c not in numeric},
                keep_default_na=False,
                na_values=dict.fromkeys(numeric, NA_TOKENS),
                skip_blank_lines=False,
                encoding="utf-8-sig",
            )
        else:
            frame = pd.read_parquet(path)
    except Exception as exc:  # parser, decompression, encoding and Arrow errors alike
        raise DataError(f"{name}: cannot read the file ({exc}); {EXPECTED}") from exc
    if not is_csv and not isinstance(frame.index, pd.RangeIndex):
        frame = frame.reset_index()  # a date (or symbol) index written by ``to_parquet``
    columns = [str(c).strip().lower() for c in frame.columns]
    doubled = sorted({c for c in columns if columns.count(c) > 1})
    if doubled:
        raise DataError(f"{name}: column(s) {', '.join(doubled)} appear more than once")
    frame.columns = pd.Index(columns)
    frame = frame.reset_index(drop=True)
    if is_csv and len(frame):
        blank = (frame.fillna("") == "").all(axis=1)
        if blank.any():
            frame = frame[~blank]
    return _Table(name=name, frame=frame, is_csv=is_csv)


def _is_missing(raw: pd.Series) -> pd.Series:
    if pd.api.types.is_numeric_dtype(raw) or pd.api.types.is_datetime64_any_dtype(raw):
        return raw.isna()
    text = raw.astype(object).where(raw.notna(), "").astype(str).str.strip().str.lower()
    return text.isin(MISSING)


def _is_empty(raw: pd.Series) -> pd.Series:
    """Empty cells of a text column (a ticker such as ``NA`` is a value, not a gap)."""
    return raw.isna() | (raw.astype(object).where(raw.notna(), "").astype(str).str.strip() == "")


def _first(mask: pd.Series) -> int:
    """Index label of the first true value of ``mask`` (the data row it names)."""
    return int(mask.index[np.flatnonzero(mask.to_numpy(dtype=bool))[0]])


def _show(value: object) -> str:
    """A cell as the message quotes it: ``'abc'`` for text, ``inf`` for a number."""
    return repr(value.item() if isinstance(value, np.generic) else value)


def _fail(table: _Table, row: Any, column: str, message: str) -> DataError:
    return DataError(f"{table.where(int(row))}, column {column}: {message}")


def _numbers(table: _Table, column: str, *, required: bool) -> pd.Series:
    """``column`` as float64; an empty cell is NaN unless ``required``."""
    raw = table.frame[column]
    fast = _clean_numbers(raw)
    if fast is not None and not (required and fast.isna().any()):
        return fast
    missing = _is_missing(raw)
    if pd.api.types.is_bool_dtype(raw):
        values = pd.Series(np.nan, index=raw.index)
        bad = ~missing
    elif pd.api.types.is_numeric_dtype(raw):
        values = raw.astype("float64")
        bad = ~missing & ~np.isfinite(values)
    else:
        text = raw.astype(object).where(~missing, None)
        values = pd.to_numeric(text.str.strip(), errors="coerce").astype("float64")
        bad = ~missing & ~np.isfinite(values.fillna(np.inf))
    if bad.any():
        row = _first(bad)
        raise _fail(table, row, column, f"{_show(raw[row])} is not a number")
    if required and missing.any():
        raise _fail(table, _first(missing), column, "empty value: a number is required")
    return values.where(~missing)


def _clean_numbers(raw: pd.Series) -> pd.Series | None:
    """``raw`` as float64 when every value is a finite number or empty, else ``None``."""
    if pd.api.types.is_bool_dtype(raw):
        return None
    try:
        values = pd.to_numeric(raw, errors="raise").astype("float64")
    except (ValueError, TypeError):
        return None
    return values if bool(np.isfinite(values.fillna(0.0)).all()) else None


def _dates(table: _Table, column: str, *, required: bool) -> pd.Series:
    """``column`` as normalized tz-naive datetime64; an empty cell is NaT unless ``required``."""
    raw = table.frame[column]
    if pd.api.types.is_string_dtype(raw) and not pd.api.types.is_object_dtype(raw):
        fast = pd.to_datetime(raw, format="%Y-%m-%d", errors="coerce")
        if fast.notna().all():  # the common case: every value an ISO date
            return fast.astype("datetime64[ns]")
    missing = _is_missing(raw)
    if pd.api.types.is_datetime64_any_dtype(raw):
        values = pd.Series(raw)
        if values.dt.tz is not None:
            values = values.dt.tz_localize(None)  # the wall-clock date where it was recorded
        values = values.dt.normalize()
    else:
        is_text = raw.map(lambda v: isinstance(v, str))
        text = raw.where(is_text & ~missing).astype(object)
        values = pd.to_datetime(text.str.strip(), format="%Y-%m-%d", errors="coerce")
        others = ~is_text & ~missing
        if others.any():  # Parquet date objects
            values[others] = pd.to_datetime(raw[others], errors="coerce")
        values = pd.Series(values, index=raw.index).dt.normalize()
    bad = ~missing & values.isna()
    if bad.any():
        row = _first(bad)
        raise _fail(table, row, column, f"{_show(raw[row])} is not an ISO date (YYYY-MM-DD)")
    if required and missing.any():
        raise _fail(table, _first(missing), column, "empty value: a date is required")
    return values.astype("datetime64[ns]")


def _symbols(table: _Table, column: str = "symbol") -> pd.Series:
    raw = table.frame[column]
    missing = _is_empty(raw)
    if missing.any():
        raise _fail(table, _first(missing), column, "empty value: a symbol is required")
    return raw.astype(str).str.strip().str.upper()


def _check_sessions(table: _Table, column: str, values: pd.Series, calendar: str) -> None:
    """Refuse dates that are not sessions: the store stamps knowledge at a session's close."""
    given = values.dropna()
    if given.empty:
        return
    try:
        valid = calendar_sessions(given.min(), given.max(), calendar)
    except Exception as exc:  # dates outside the calendar's bounds
        raise DataError(f"{table.name}, column {column}: cannot check the dates ({exc})") from exc
    off = given[~given.isin(valid)]
    if len(off):
        row = off.index[0]
        raise _fail(
            table, row, column, f"{off.iloc[0].date()} is not a {calendar} session: use a session"
        )


class FilesSource:
    """Daily bars, membership, delistings and sectors from a directory; see the module docstring.

    Parameters
    ----------
    path
        Directory holding the files (a relative path is taken from the working directory).
    benchmark_symbol
        Symbol whose bars are the benchmark (its file must exist when the benchmark is read).
    calendar
        Exchange calendar the reference dates (spells, delistings, sector changes) must fall on.
    """

    def __init__(
        self, path: str | Path, benchmark_symbol: str = "SPY", calendar: str = "XNYS"
    ) -> None:
        self.root = Path(path).expanduser()
        self.benchmark_symbol = str(benchmark_symbol).strip().upper()
        self.calendar = calendar
        if not self.root.is_dir():
            raise DataError(f"files source: {self.root} is not a directory; {EXPECTED}")
        self._symbol_files: dict[str, Path] = {}
        self._long: list[Path] = []
        self._reference: dict[str, Path] = {}
        self._scan()
        self._cache: dict[str, pd.DataFrame | None] = {}
        self._spans: dict[str, tuple[int, int]] = {}  # symbol -> its rows in the sorted bars
        self._coverage: tuple[dt.date, dt.date] | None = None
        self.info = SourceInfo(
            name="files",
            survivorship_biased="universe" not in self._reference,
            adjusted_only=False,
            notes=self._notes(),
        )

    # ----------------------------------------------------------------------------- files

    def _scan(self) -> None:
        for path in sorted(self.root.iterdir()):
            parts = _split_name(path.name)
            if parts is None or not path.is_file():
                continue
            stem, _ = parts
            key = stem.strip().lower()
            if key == LONG_TABLE:
                self._long.append(path)
            elif key in REFERENCE:
                if key in self._reference:
                    raise DataError(
                        f"{self.root}: both {self._reference[key].name} and {path.name} given; "
                        f"keep one {key} file"
                    )
                self._reference[key] = path
            else:
                symbol = stem.strip().upper()
                if symbol in self._symbol_files:
                    raise DataError(
                        f"{self.root}: both {self._symbol_files[symbol].name} and {path.name} "
                        f"hold {symbol}; keep one file per symbol"
                    )
                self._symbol_files[symbol] = path
        if not self._symbol_files and not self._long:
            raise DataError(f"files source: {self.root} holds no bar files; {EXPECTED}")

    def _notes(self) -> tuple[str, ...]:
        ref = self._reference
        notes = [f"bars read from files in {self.root}; adj_close defaults to close when absent"]
        notes.append(
            f"membership from {ref['universe'].name} (point in time)"
            if "universe" in ref
            else "no universe.csv: symbols are whatever files were given (survivorship-biased)"
        )
        notes.append(
            f"delisting returns from {ref['delistings'].name}"
            if "delistings" in ref
            else "no delistings.csv: final returns of delisted names are unknown"
        )
        notes.append(
            f"point-in-time sectors from {ref['sectors'].name}"
            if "sectors" in ref
            else "no sectors.csv: today's sectors from the repo's reference file"
        )
        return tuple(notes)

    def _all_bars(self) -> pd.DataFrame:
        """Every bar of every file, read once; ``_file``/``_pos`` say where each came from."""
        cached = self._cache.get("bars")
        if cached is not None:
            return cached
        frames = [self._parse_bars(p, None) for p in self._long]
        frames += [self._parse_bars(p, s) for s, p in self._symbol_files.items()]
        frames = [f for f in frames if len(f)]
        if not frames:
            raise DataError(f"files source: the bar files in {self.root} hold no rows; {EXPECTED}")
        bars = pd.concat(frames, ignore_index=True)
        self._check_duplicates(bars)
        bars = bars.sort_values(["symbol", "session"], kind="stable").reset_index(drop=True)
        self._check_delisted(bars)
        symbols = bars["symbol"].to_numpy()
        cuts = np.flatnonzero(symbols[1:] != symbols[:-1]) + 1
        starts, stops = np.r_[0, cuts], np.r_[cuts, len(bars)]
        self._spans = {
            str(symbols[a]): (int(a), int(b)) for a, b in zip(starts, stops, strict=True)
        }
        first, last = bars["session"].min(), bars["session"].max()
        self._coverage = (first.date(), last.date())
        self._cache["bars"] = bars
        return bars

    def _parse_bars(self, path: Path, symbol: str | None) -> pd.DataFrame:
        table = _read_table(path, self.root)
        columns = table.frame.columns
        if "date" in columns and "session" in columns:
            raise DataError(f"{table.name} has both date and session columns; keep one")
        date_col = "session" if "session" in columns else "date"
        wanted = [date_col, *PRICES, "volume"]
        if symbol is None:
            wanted = ["symbol", *wanted]
        what = "bar files need date (or session), open, high, low, close, volume" + (
            " and symbol" if symbol is None else ""
        )
        table.require(wanted, what)
        frame = table.frame
        out = pd.DataFrame(index=frame.index)
        if symbol is None:
            out["symbol"] = _symbols(table)
        else:
            out["symbol"] = symbol
            if "symbol" in columns:
                given = frame["symbol"].astype(str).str.strip().str.upper()
                other = ~_is_empty(frame["symbol"]) & (given != symbol)
                if other.any():
                    row = _first(other)
                    raise _fail(
                        table,
                        row,
                        "symbol",
                        f"{frame['symbol'][row]!r} in the file of {symbol} "
                        "(a per-symbol file holds one symbol)",
                    )
        out["session"] = _dates(table, date_col, required=True)
        for col in PRICES:
            out[col] = _numbers(table, col, required=col == "close")
        out["adj_close"] = (
            _numbers(table, "adj_close", required=True) if "adj_close" in columns else out["close"]
        )
        out["volume"] = _numbers(table, "volume", required=False)
        out["_file"] = pd.Categorical([table.name] * len(out))
        out["_pos"] = frame.index.to_numpy(dtype="int64")
        return out.reset_index(drop=True)

    def _check_duplicates(self, bars: pd.DataFrame) -> None:
        dup = bars.duplicated(["symbol", "session"], keep=False)
        if not dup.any():
            return
        rows = bars[dup].sort_values(["symbol", "session"], kind="stable")
        first, second = rows.iloc[0], rows.iloc[1]
        raise DataError(
            f"{_where(first['_file'], first['_pos'])} and "
            f"{_where(second['_file'], second['_pos'])} both hold {first['symbol']} "
            f"{first['session'].date()}: keep one row per symbol and date"
        )

    def _check_delisted(self, bars: pd.DataFrame) -> None:
        delisted = self._delistings_table()
        if delisted.empty:
            return
        on = bars.merge(delisted[["symbol", "date", "_row"]], on="symbol")
        late = on[on["session"] >= on["date"]]
        if len(late):
            hit = late.iloc[0]
            raise DataError(
                f"{_where(hit['_file'], hit['_pos'])}: {hit['symbol']} has a bar on "
                f"{hit['session'].date()} but {hit['_row']} delists it on {hit['date'].date()} "
                "(the first session it no longer trades): drop the bars from that date or fix "
                "the delisting date"
            )

    def _reference_table(self, key: str) -> _Table | None:
        path = self._reference.get(key)
        return None if path is None else _read_table(path, self.root)

    def _universe_table(self) -> pd.DataFrame | None:
        if "universe" in self._cache:
            return self._cache["universe"]
        table = self._reference_table("universe")
        if table is None:
            self._cache["universe"] = None
            return None
        table.require(UNIVERSE_COLUMNS, "membership spells need symbol,start,end")
        spells = pd.DataFrame(
            {
                "symbol": _symbols(table),
                "start": _dates(table, "start", required=True),
                "end": _dates(table, "end", required=False),
            }
        )
        _check_sessions(table, "start", spells["start"], self.calendar)
        _check_sessions(table, "end", spells["end"], self.calendar)
        backwards = spells["end"].notna() & (spells["end"] < spells["start"])
        if backwards.any():
            row = _first(backwards)
            raise _fail(
                table,
                row,
                "end",
                f"spell of {spells['symbol'][row]} ends {spells['end'][row].date()}, before it "
                f"starts {spells['start'][row].date()}",
            )
        ordered = spells.sort_values(["symbol", "start"], kind="stable")
        prev_end = ordered.groupby("symbol")["end"].shift(1)
        prev_open = ordered.groupby("symbol")["end"].shift(1).isna() & ordered.groupby(
            "symbol"
        ).cumcount().gt(0)
        overlap = prev_open | (prev_end.notna() & (ordered["start"] <= prev_end))
        if overlap.any():
            row = _first(overlap)
            raise _fail(
                table,
                row,
                "start",
                f"spell of {spells['symbol'][row]} starting {spells['start'][row].date()} "
                "overlaps an earlier spell of the same symbol",
            )
        out = ordered.reset_index(drop=True)[UNIVERSE_COLUMNS]
        self._cache["universe"] = out
        return out

    def _delistings_table(self) -> pd.DataFrame:
        cached = self._cache.get("delistings")
        if cached is not None:
            return cached
        table = self._reference_table("delistings")
        if table is None:
            out = pd.DataFrame(
                {
                    "symbol": pd.Series(dtype=str),
                    "date": pd.Series(dtype="datetime64[ns]"),
                    "delisting_return": pd.Series(dtype="float64"),
                    "_row": pd.Series(dtype=str),
                }
            )
            self._cache["delistings"] = out
            return out
        table.require(DELISTING_COLUMNS, "delistings need symbol,date,delisting_return")
        out = pd.DataFrame(
            {
                "symbol": _symbols(table),
                "date": _dates(table, "date", required=True),
                "delisting_return": _numbers(table, "delisting_return", required=True),
            }
        )
        _check_sessions(table, "date", out["date"], self.calendar)
        below = out["delisting_return"] < -1
        if below.any():
            row = _first(below)
            raise _fail(
                table,
                row,
                "delisting_return",
                f"{out['delisting_return'][row]:g} is below -1 (a holder cannot lose more than "
                "everything; -1 is a total loss)",
            )
        twice = out.duplicated("symbol", keep=False)
        if twice.any():
            rows = out.index[twice & (out["symbol"] == out["symbol"][_first(twice)])]
            raise DataError(
                f"{table.where(int(rows[0]))} and {table.where(int(rows[1]))} both delist "
                f"{out['symbol'][rows[0]]}: keep one delisting per symbol"
            )
        out["_row"] = [table.where(int(i)) for i in out.index]
        out = out.sort_values(["date", "symbol"], kind="stable").reset_index(drop=True)
        self._cache["delistings"] = out
        return out

    def _sectors_table(self) -> pd.DataFrame | None:
        if "sectors" in self._cache:
            return self._cache["sectors"]
        table = self._reference_table("sectors")
        if table is None:
            self._cache["sectors"] = None
            return None
        table.require(["symbol", "from", "sector"], "sector labels need symbol,from,sector")
        symbol = _symbols(table)
        sector = table.frame["sector"]
        empty = _is_empty(sector)
        if empty.any():
            raise _fail(table, _first(empty), "sector", "empty value: a sector is required")
        name = (
            table.frame["name"].astype(object).where(~_is_empty(table.frame["name"]), None)
            if "name" in table.frame.columns
            else pd.Series(None, index=table.frame.index, dtype=object)
        )
        out = pd.DataFrame(
            {
                "symbol": symbol,
                "name": name.fillna(symbol).astype(str).str.strip(),
                "sector": sector.astype(str).str.strip(),
                "from": _dates(table, "from", required=False),
            }
        )
        _check_sessions(table, "from", out["from"], self.calendar)
        twice = out.duplicated(["symbol", "from"], keep=False)
        if twice.any():
            first = _first(twice)
            same = out.index[twice & (out["symbol"] == out["symbol"][first])]
            raise DataError(
                f"{table.where(int(same[0]))} and {table.where(int(same[1]))} both label "
                f"{out['symbol'][first]} from the same date: keep one"
            )
        out = out.sort_values(["symbol", "from"], kind="stable", na_position="first")
        out = out.reset_index(drop=True)[SECTOR_COLUMNS]
        self._cache["sectors"] = out
        return out

    # ----------------------------------------------------------------------------- protocol

    def symbols(self) -> list[str]:
        """Every symbol with bars, the benchmark excluded, sorted."""
        return sorted(self._known() - {self.benchmark_symbol})

    def _known(self) -> set[str]:
        self._all_bars()
        return set(self._spans)

    def check_symbols(self, symbols: list[str]) -> list[str]:
        """Upper-case ``symbols`` and fail on any without bars (the benchmark counts)."""
        wanted = [str(s).strip().upper() for s in symbols]
        known = self._known()
        unknown = [s for s in wanted if s not in known]
        if unknown:
            listed = sorted(known)
            more = f" and {len(listed) - 20} more" if len(listed) > 20 else ""
            raise DataError(
                f"unknown symbol(s) {', '.join(unknown)} for the files source in {self.root} "
                f"(add <SYMBOL>.csv); available: {', '.join(listed[:20])}{more}"
            )
        return wanted

    def coverage(self) -> tuple[dt.date, dt.date]:
        """First and last session over every file (benchmark included)."""
        self._all_bars()
        assert self._coverage is not None
        return self._coverage

    def _check_range(self, start: dt.date, end: dt.date) -> None:
        check_range(start, end, self.coverage(), f"the files in {self.root} cover")

    def _select(self, symbols: list[str], start: dt.date, end: dt.date) -> pd.DataFrame:
        bars = self._all_bars()
        parts = []
        for sym in dict.fromkeys(symbols):
            a, b = self._spans.get(sym, (0, 0))
            one = bars.iloc[a:b]
            sessions = one["session"]
            parts.append(one[(sessions >= pd.Timestamp(start)) & (sessions <= pd.Timestamp(end))])
        out = pd.concat(parts, ignore_index=True) if parts else bars.iloc[:0]
        out = out[BAR_FIELDS].reset_index(drop=True)
        out["symbol"] = out["symbol"].astype(str)
        return out

    def bars(self, symbols: list[str], start: dt.date, end: dt.date) -> pd.DataFrame:
        """Bars of ``symbols`` for sessions in ``[start, end]``, as given (not validated).

        Long table ``symbol, session, open, high, low, close, adj_close, volume``.
        """
        wanted = self.check_symbols(symbols)
        self._check_range(start, end)
        return self._select(wanted, start, end)

    def benchmark(self, start: dt.date, end: dt.date) -> pd.DataFrame:
        """Bars of ``benchmark_symbol`` for sessions in ``[start, end]``."""
        self._check_range(start, end)
        if self.benchmark_symbol not in self._known():
            raise DataError(
                f"no bars for the benchmark {self.benchmark_symbol} in {self.root}: add "
                f"{self.benchmark_symbol}.csv (same columns as the other symbol files) or set "
                "the benchmark_symbol option"
            )
        return self._select([self.benchmark_symbol], start, end)

    def fetch(self, symbol: str, start: dt.date, end: dt.date) -> Fetched:
        """One symbol's bars (the benchmark symbol reads the benchmark); files hold no actions."""
        if symbol.strip().upper() == self.benchmark_symbol:
            return Fetched(bars=self.benchmark(start, end))
        return Fetched(bars=self.bars([symbol], start, end))

    def sectors(self, symbols: list[str]) -> pd.DataFrame:
        """Sector labels ``symbol, name, sector, from`` of ``symbols``.

        From ``sectors.csv`` (every label of a symbol, each applying from session ``from``);
        a symbol missing there gets ``Unknown <SYM>`` with ``from`` NaT. Without the file,
        today's sectors from the repo's reference file (``from`` NaT: not point in time).
        """
        wanted = self.check_symbols(symbols)
        table = self._sectors_table()
        if table is None:
            out = sectors_for(wanted)
            out["from"] = pd.Series(pd.NaT, index=out.index, dtype="datetime64[ns]")
            return out[SECTOR_COLUMNS]
        rows = [table[table["symbol"].isin(wanted)]]
        absent = [s for s in wanted if s not in set(table["symbol"])]
        if absent:
            log.warning("%s: no sector for %s", self._reference["sectors"].name, absent)
            rows.append(
                pd.DataFrame(
                    {
                        "symbol": absent,
                        "name": absent,
                        "sector": [f"Unknown {s}" for s in absent],
                        "from": pd.Series([pd.NaT] * len(absent), dtype="datetime64[ns]"),
                    }
                )
            )
        out = pd.concat(rows, ignore_index=True)
        order = {s: i for i, s in enumerate(dict.fromkeys(wanted))}
        out = out.assign(_order=out["symbol"].map(order))
        out = out.sort_values(["_order", "from"], kind="stable", na_position="first")
        return out.drop(columns="_order").reset_index(drop=True)[SECTOR_COLUMNS]

    def universe(self) -> pd.DataFrame | None:
        """Membership spells ``symbol, start, end`` (end NaT: still a member); None without file.

        ``end`` is the last session of membership, as in ``--universe`` files.
        """
        spells = self._universe_table()
        if spells is None:
            return None
        missing = sorted(set(spells["symbol"]) - self._known())
        if missing:
            log.warning("%s names symbols without bars: %s", self._reference["universe"], missing)
        return spells.copy()

    def delistings(self) -> pd.DataFrame:
        """Delistings ``symbol, date, delisting_return`` (empty without ``delistings.csv``).

        ``date`` is the first session the name no longer trades; ``delisting_return`` the
        return from its last close to what a holder receives (>= -1).
        """
        self._all_bars()  # a delisted name's bars on or after its date are an error
        return self._delistings_table()[DELISTING_COLUMNS].copy()
