"""Bitemporal bar store: Parquet files queried with DuckDB through an as-of API.

Every row has an event time (``session``) and a knowledge time (``available_at``, tz-aware
UTC). Ingesting never rewrites a stored row: new facts and restatements are appended as new
Parquet parts, and a read "as of T" sees, per (symbol, session), the latest row known at T.

Layout under the store root::

    bars/part-<hash>.parquet        stock bars
    benchmark/part-<hash>.parquet   benchmark series (same schema)
    reference/sectors.parquet       symbol, name, sector, available_at
    meta.json                       source facts (survivorship bias) and calendar check
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from py_finance.data.calendar import session_closes
from py_finance.data.sources.base import BAR_COLUMNS
from py_finance.errors import DataError
from py_finance.io import atomic_path, write_json

log = logging.getLogger(__name__)

TABLES = ("bars", "benchmark")
VALUE_COLUMNS = ("open", "high", "low", "close", "adj_close", "volume")


def to_utc(ts: dt.datetime | pd.Timestamp | str) -> pd.Timestamp:
    """A tz-aware UTC timestamp; naive input is rejected (point-in-time reads need a zone)."""
    out = pd.Timestamp(ts)
    if out.tzinfo is None:
        raise DataError(f"as_of {ts!r} has no time zone: pass a tz-aware time (e.g. UTC)")
    return out.tz_convert("UTC")


def end_of_day_utc(day: dt.date | str) -> pd.Timestamp:
    """The last instant of ``day`` in New York, in UTC: everything of that session is known."""
    return (pd.Timestamp(day) + pd.Timedelta(days=1)).tz_localize("America/New_York").tz_convert(
        "UTC"
    ) - pd.Timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class IngestSummary:
    """What one write did."""

    table: str
    rows_in: int
    rows_added: int
    rows_unchanged: int
    symbols: tuple[str, ...]


class Store:
    """DuckDB over the Parquet parts under ``root``; see the module docstring."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    # ----------------------------------------------------------------- writing
    def write_bars(
        self,
        bars: pd.DataFrame,
        *,
        table: str = "bars",
        calendar: str = "XNYS",
        now: pd.Timestamp | None = None,
    ) -> IngestSummary:
        """Append the rows of ``bars`` that the store does not already know.

        A (symbol, session) seen for the first time is stamped ``available_at`` = that
        session's close; a changed value for a known key is a restatement, stamped ``now``
        (UTC). Identical rows add nothing, so ingesting twice is a no-op.
        """
        if table not in TABLES:
            raise DataError(f"unknown table {table!r}; tables: {TABLES}")
        missing = [c for c in BAR_COLUMNS if c != "available_at" and c not in bars.columns]
        if missing:
            raise DataError(f"bars are missing columns {missing}")
        new = bars[[c for c in BAR_COLUMNS if c != "available_at"]].copy()
        new["session"] = pd.to_datetime(new["session"]).dt.normalize()
        new["symbol"] = new["symbol"].astype(str)
        for col in VALUE_COLUMNS:
            new[col] = new[col].astype("float64")
        if new.duplicated(["symbol", "session"]).any():
            raise DataError("bars contain duplicate (symbol, session) rows")
        if (new["adj_close"] <= 0).any():
            raise DataError("bars contain non-positive adjusted closes")

        known = self._latest_all(table, symbols=sorted(new["symbol"].unique()))
        if known.empty:
            added = new.assign(
                available_at=session_closes(pd.DatetimeIndex(new["session"]), calendar)
            )
            unchanged = 0
        else:
            merged = new.merge(
                known[["symbol", "session", *VALUE_COLUMNS]],
                on=["symbol", "session"],
                how="left",
                suffixes=("", "_known"),
                indicator=True,
            )
            is_new = merged["_merge"] == "left_only"
            changed = np.zeros(len(merged), dtype=bool)
            for col in VALUE_COLUMNS:
                a, b = merged[col].to_numpy(), merged[f"{col}_known"].to_numpy()
                changed |= ~((a == b) | (np.isnan(a) & np.isnan(b)))
            changed &= ~is_new.to_numpy()
            stamp = to_utc(now) if now is not None else pd.Timestamp.now(tz="UTC")
            first_seen = merged.loc[is_new, new.columns]
            first_seen = first_seen.assign(
                available_at=session_closes(pd.DatetimeIndex(first_seen["session"]), calendar)
            )
            restated = merged.loc[changed, new.columns].assign(available_at=stamp)
            added = pd.concat([first_seen, restated], ignore_index=True)
            unchanged = int(len(new) - len(added))
            if len(restated):
                log.info("%d restated rows in %s, stamped %s", len(restated), table, stamp)
        if len(added):
            self._write_part(table, added)
        return IngestSummary(
            table=table,
            rows_in=len(new),
            rows_added=len(added),
            rows_unchanged=unchanged,
            symbols=tuple(sorted(new["symbol"].unique())),
        )

    def _write_part(self, table: str, rows: pd.DataFrame) -> Path:
        import pyarrow as pa
        import pyarrow.parquet as pq

        rows = rows.sort_values(["symbol", "session", "available_at"]).reset_index(drop=True)
        arrow = pa.Table.from_pandas(rows, preserve_index=False)
        arrow = arrow.set_column(
            arrow.schema.get_field_index("session"),
            "session",
            arrow.column("session").cast(pa.date32()),
        )
        digest = hashlib.sha256(
            pd.util.hash_pandas_object(rows, index=False).to_numpy().tobytes()
        ).hexdigest()[:16]
        path = self.root / table / f"part-{digest}.parquet"
        with atomic_path(path) as tmp:
            pq.write_table(arrow, tmp)
        log.info("wrote %d rows to %s", len(rows), path)
        return path

    def write_sectors(self, sectors: pd.DataFrame, available_at: pd.Timestamp) -> Path:
        """Store the sector map (``symbol, name, sector``) known from ``available_at``."""
        frame = sectors[["symbol", "name", "sector"]].copy()
        frame["available_at"] = to_utc(available_at)
        path = self.root / "reference" / "sectors.parquet"
        with atomic_path(path) as tmp:
            frame.to_parquet(tmp, index=False)
        return path

    def write_meta(self, meta: dict[str, Any]) -> Path:
        """Store source facts and checks as ``meta.json``."""
        return write_json(meta, self.root / "meta.json")

    # ----------------------------------------------------------------- reading
    def fingerprint(self) -> str:
        """Short hash of the stored parts (their names are content hashes)."""
        names = sorted(str(p.relative_to(self.root)) for t in TABLES for p in self._parts(t))
        return hashlib.sha256("\n".join(names).encode()).hexdigest()[:12]

    def meta(self) -> dict[str, Any]:
        """Contents of ``meta.json`` (empty when absent)."""
        path = self.root / "meta.json"
        if not path.exists():
            return {}
        return dict(json.loads(path.read_text(encoding="utf-8")))

    def _parts(self, table: str) -> list[Path]:
        return sorted((self.root / table).glob("part-*.parquet"))

    def _query(self, sql: str, params: Sequence[Any], table: str) -> pd.DataFrame:
        import duckdb

        parts = self._parts(table)
        if not parts:
            raise DataError(
                f"the store at {self.root} has no {table}: run the ingest stage first "
                "(`dvc repro ingest` or `python scripts/ingest_bars.py`)"
            )
        try:
            with duckdb.connect() as con:
                con.execute("SET TimeZone = 'UTC'")
                frame = con.execute(sql.format(files=_sql_list(parts)), list(params)).df()
        except duckdb.Error as exc:
            bad = _find_corrupt(parts)
            where = f" ({bad})" if bad else ""
            raise DataError(
                f"cannot read the {table} Parquet files{where}: {str(exc).splitlines()[0]}; "
                "delete the store and re-run ingest"
            ) from exc
        return frame

    def _latest_all(self, table: str, symbols: Sequence[str]) -> pd.DataFrame:
        if not self._parts(table):
            return pd.DataFrame(columns=list(BAR_COLUMNS))
        return self._read(table, symbols, None, None, None)

    def _read(
        self,
        table: str,
        symbols: Sequence[str] | None,
        start: dt.date | None,
        end: dt.date | None,
        as_of: pd.Timestamp | None,
    ) -> pd.DataFrame:
        where: list[str] = []
        params: list[Any] = []
        if symbols is not None:
            where.append("symbol IN (SELECT UNNEST(?))")
            params.append(list(symbols))
        if start is not None:
            where.append("session >= ?")
            params.append(start)
        if end is not None:
            where.append("session <= ?")
            params.append(end)
        if as_of is not None:
            where.append("available_at <= ?")
            params.append(as_of.floor("us").to_pydatetime())
        clause = ("WHERE " + " AND ".join(where)) if where else ""
        sql = (
            "SELECT * FROM read_parquet({files}, union_by_name=true) "
            f"{clause} QUALIFY row_number() OVER "
            "(PARTITION BY symbol, session ORDER BY available_at DESC) = 1 "
            "ORDER BY session, symbol"
        )
        frame = self._query(sql, params, table)
        frame["session"] = pd.to_datetime(frame["session"])
        frame["available_at"] = pd.to_datetime(frame["available_at"], utc=True)
        return frame[list(BAR_COLUMNS)].reset_index(drop=True)

    def bars(
        self,
        symbols: Sequence[str] | None,
        start: dt.date | str | None,
        end: dt.date | str | None,
        as_of: dt.datetime | pd.Timestamp | str,
        *,
        table: str = "bars",
    ) -> pd.DataFrame:
        """Bars of ``symbols`` (None: all) with sessions in ``[start, end]`` as known at ``as_of``.

        ``as_of`` is required and tz-aware: research code never reads "the latest".
        Unknown symbols raise :class:`DataError`.
        """
        as_of_utc = to_utc(as_of)
        start_d = pd.Timestamp(start).date() if start is not None else None
        end_d = pd.Timestamp(end).date() if end is not None else None
        if start_d and end_d and end_d < start_d:
            raise DataError(f"end date {end_d} is before start date {start_d}")
        if symbols is not None:
            symbols = [s.upper() for s in symbols]
            unknown = sorted(set(symbols) - set(self.symbols(table=table)))
            if unknown:
                raise DataError(
                    f"unknown symbol(s) {', '.join(unknown)} in the store at {self.root}; "
                    f"known: {', '.join(self.symbols(table=table))}"
                )
        return self._read(table, symbols, start_d, end_d, as_of_utc)

    def benchmark(
        self,
        start: dt.date | str | None,
        end: dt.date | str | None,
        as_of: dt.datetime | pd.Timestamp | str,
    ) -> pd.DataFrame:
        """Benchmark bars as known at ``as_of``."""
        return self.bars(None, start, end, as_of, table="benchmark")

    def symbols(self, *, table: str = "bars") -> list[str]:
        """Every symbol ever stored in ``table``."""
        frame = self._query(
            "SELECT DISTINCT symbol FROM read_parquet({files}) ORDER BY symbol", [], table
        )
        return [str(s) for s in frame["symbol"]]

    def sectors(self, as_of: dt.datetime | pd.Timestamp | str) -> pd.Series:
        """Sector per symbol as known at ``as_of``."""
        path = self.root / "reference" / "sectors.parquet"
        if not path.exists():
            raise DataError(f"no sector map in the store at {self.root}: run ingest first")
        frame = pd.read_parquet(path)
        frame = frame[pd.to_datetime(frame["available_at"], utc=True) <= to_utc(as_of)]
        return frame.set_index("symbol")["sector"].astype(str)

    def wide(
        self,
        field: str,
        symbols: Sequence[str] | None,
        start: dt.date | str | None,
        end: dt.date | str | None,
        as_of: dt.datetime | pd.Timestamp | str,
        *,
        table: str = "bars",
    ) -> pd.DataFrame:
        """``session x symbol`` matrix of one bar field (e.g. ``adj_close``)."""
        long = self.bars(symbols, start, end, as_of, table=table)
        wide = long.pivot(index="session", columns="symbol", values=field).sort_index()
        wide.columns.name = None
        return wide.astype("float64")


def _sql_list(parts: Sequence[Path]) -> str:
    return "[" + ", ".join("'" + str(p).replace("'", "''") + "'" for p in parts) + "]"


def _find_corrupt(parts: Sequence[Path]) -> str | None:
    import pyarrow.parquet as pq

    for part in parts:
        try:
            pq.read_metadata(part)
        except Exception:
            return str(part)
    return None
