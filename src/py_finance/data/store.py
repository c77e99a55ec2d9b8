"""Bitemporal store: append-only Parquet parts, queried through an as-of API.

Every row has an event time (``session``, ``ex_date``, ``period_end``, ...) and a knowledge
time (``available_at``, tz-aware UTC). Writes never rewrite a stored row: new facts and
restatements are appended as new Parquet parts, and when a restatement replaces a version the
replaced version's ``superseded_at`` (the new version's ``available_at``) is appended to a
small supersession table. "As known at T" is then the plain filter
``available_at <= T < superseded_at`` (``superseded_at`` missing = never).

Layout under the store root::

    manifest.json                   the committed snapshot: parts per table, row counts,
                                    content hash, the last ingest (source, symbols, range),
                                    and the sha256 of every data file below
    <table>/part-<hash>.parquet     rows (immutable, named by content hash)
    <table>/sup-<hash>.parquet      key, available_at, superseded_at of replaced versions
    _index/<table>-<hash>/          read index of a bar table (derived; see ``index.py``)
    quarantine/part-<hash>.parquet  rows validation refused, with the reason
    reference/sectors.parquet       symbol, name, sector, available_at
    meta.json                       source facts (survivorship bias) and calendar check

Tables: ``bars`` and ``benchmark`` (daily bars), ``actions`` (splits and dividends),
``fundamentals``, ``news``, ``universe`` (membership spells), ``delistings`` (the session a
name stopped trading and the return from its last close to what a holder received). A write
is a transaction under a file lock: new parts are written first, then ``manifest.json`` is
replaced atomically. A crash before that rename leaves the previous snapshot exactly as it
was (the new parts are unreferenced, and a rerun writes the same content-named parts again).

Every file a read uses (parts, supersession files, the read index, the sector map) is checked
against its sha256 in the manifest before its first use in a process; a mismatch, or a file
that is missing, raises :class:`DataError` naming it and the way to restore or rebuild the
store. Manifests written before checksums were recorded are read with a size check only and
a warning; the next committed write (any ingest) records the checksums.
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import io
import json
import logging
import os
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from py_finance.data.calendar import session_closes
from py_finance.data.index import NEVER, BarIndex
from py_finance.data.sources.base import BAR_COLUMNS
from py_finance.errors import DataError
from py_finance.io import atomic_path, relative_to_cwd, sha256_file, write_json

log = logging.getLogger(__name__)

TABLES = ("bars", "benchmark")
VALUE_COLUMNS = ("open", "high", "low", "close", "adj_close", "volume")
MANIFEST = "manifest.json"
FORMAT = 3  # 3: sha256 of every data file under "checksums"
SECTORS = "reference/sectors.parquet"
INDEX_FILES = ("index.bin", "index.json")


@dataclass(frozen=True, slots=True)
class TableSpec:
    """Key, value and date columns of one versioned table."""

    key: tuple[str, ...]
    values: tuple[str, ...]
    dates: tuple[str, ...]
    times: tuple[str, ...] = ()


SPECS: dict[str, TableSpec] = {
    "bars": TableSpec(("symbol", "session"), VALUE_COLUMNS, ("session",)),
    "benchmark": TableSpec(("symbol", "session"), VALUE_COLUMNS, ("session",)),
    "actions": TableSpec(("symbol", "ex_date", "kind"), ("value",), ("ex_date",)),
    "fundamentals": TableSpec(
        ("symbol", "period_end", "field"), ("value", "period"), ("period_end",)
    ),
    "news": TableSpec(
        ("symbol", "id"),
        ("published_at", "headline", "source", "url", "summary"),
        (),
        ("published_at",),
    ),
    "universe": TableSpec(("symbol", "start"), ("end",), ("start", "end")),
    "delistings": TableSpec(("symbol", "date"), ("delisting_return",), ("date",)),
}


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
    """What one write did (``rows_restated`` of ``rows_added`` replaced known versions)."""

    table: str
    rows_in: int
    rows_added: int
    rows_unchanged: int
    symbols: tuple[str, ...]
    rows_restated: int = 0


# Process-wide read caches keyed by (root, table, content hash): parts are immutable, so a
# hash names one content forever.
_INDEXES: dict[tuple[str, str, str], BarIndex] = {}
_VERSIONS: dict[tuple[str, str, str], pd.DataFrame] = {}
_MANIFESTS: dict[str, tuple[tuple[int, int, int], dict[str, Any]]] = {}
# Files whose sha256 was checked in this process: path -> (stat signature, digest). A file
# rewritten since (new size, mtime or inode) is checked again.
_VERIFIED: dict[str, tuple[tuple[int, int, int], str]] = {}
_UNVERIFIED_WARNED: set[str] = set()


class Store:
    """Append-only Parquet parts under ``root`` with as-of reads; see the module docstring."""

    def __init__(self, root: str | Path, *, lock_timeout: float = 600.0) -> None:
        self.root = Path(root)
        self._cache_root = str(self.root.resolve())
        self.lock_timeout = lock_timeout
        self._txn: dict[str, Any] | None = None
        self._unindexed: set[str] = set()

    # ------------------------------------------------------------ snapshots
    def manifest(self) -> dict[str, Any]:
        """The committed snapshot (``manifest.json``); legacy stores are listed from disk."""
        if self._txn is not None:
            return self._txn
        path = self.root / MANIFEST
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return self._legacy_manifest()
        sig = (st.st_mtime_ns, st.st_size, st.st_ino)
        cached = _MANIFESTS.get(str(path))
        if cached is not None and cached[0] == sig:
            return cached[1]
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise DataError(
                f"cannot read {path}: {exc}; delete the store and re-run ingest"
            ) from exc
        _MANIFESTS[str(path)] = (sig, manifest)
        return dict(manifest)

    def _legacy_manifest(self) -> dict[str, Any]:
        tables: dict[str, Any] = {}
        for table in SPECS:
            parts = sorted((self.root / table).glob("part-*.parquet"))
            if parts:
                tables[table] = {
                    "parts": {p.name: p.stat().st_size for p in parts},
                    "superseded": {},
                    "rows": None,
                }
        return {"format": 1, "tables": tables}

    @contextmanager
    def transaction(self, *, build_index: bool = True) -> Iterator[Store]:
        """Group writes into one snapshot under the store's file lock.

        Parts are written as the block runs; the snapshot is committed (``manifest.json``
        replaced atomically) only when the block ends without an exception.
        ``build_index=False`` leaves the read index of changed bar tables to the next commit
        that builds one (a batched ingest builds it once, at its last commit); until then a
        read builds it from the parts.
        """
        if self._txn is not None:  # nested: the outer block commits
            yield self
            return
        from filelock import FileLock, Timeout

        self.root.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(self.root / ".lock"), timeout=self.lock_timeout)
        try:
            lock.acquire()
        except Timeout:
            raise DataError(
                f"another ingest holds the lock on {self.root} (waited {self.lock_timeout:.0f}s): "
                "wait for it to finish"
            ) from None
        try:
            # holding the lock, any temp file is a dead writer's: never referenced, remove it
            for stale in self.root.glob("*/.*.tmp"):
                if stale.is_dir():
                    shutil.rmtree(stale, ignore_errors=True)
                else:
                    stale.unlink(missing_ok=True)
            base = copy.deepcopy(self.manifest())
            base.setdefault("tables", {})
            # a snapshot written before checksums were recorded gets them at this commit
            upgrade = "checksums" not in base and bool(base["tables"])
            base.setdefault("checksums", {})
            if upgrade:
                base["_unverified"] = True  # until then its files get the size check
            self._txn = base
            before = _state(base)
            yield self
            if upgrade or _state(self._txn) != before or (build_index and self._unindexed):
                self._commit(self._txn, build_index=build_index)
        finally:
            self._txn = None
            lock.release()

    def _commit(self, manifest: dict[str, Any], *, build_index: bool = True) -> None:
        dirty = set(manifest.get("_dirty", [])) | self._unindexed
        manifest = {k: v for k, v in manifest.items() if not k.startswith("_")}
        for entry in manifest["tables"].values():
            entry["hash"] = _table_hash(entry)
        for table, entry in manifest["tables"].items():
            if table in dirty and build_index:
                self._save_index(table, entry["hash"], self._build_index(table))
        self._unindexed = set() if build_index else dirty
        manifest["format"] = FORMAT
        manifest["content_hash"] = _content_hash(manifest["tables"])
        manifest["checksums"] = self._checksums(manifest)
        write_json(manifest, self.root / MANIFEST)
        self._drop_stale_indexes(manifest)
        log.info("committed snapshot %s", manifest["content_hash"])

    def _checksums(self, manifest: dict[str, Any]) -> dict[str, str]:
        """sha256 of every data file of ``manifest``: recorded ones kept, others hashed now."""
        known = manifest.get("checksums") or {}
        names: list[str] = []
        for table, entry in manifest["tables"].items():
            for kind in ("parts", "superseded"):
                names += [f"{table}/{name}" for name in sorted(entry.get(kind) or {})]
            directory = f"_index/{table}-{entry.get('hash')}"
            if table in TABLES and (self.root / directory).is_dir():
                names += [f"{directory}/{name}" for name in INDEX_FILES]
        if (self.root / SECTORS).exists():
            names.append(SECTORS)
        return {n: known.get(n) or sha256_file(self.root / n) for n in sorted(names)}

    def _save_index(self, table: str, table_hash: str, index: BarIndex) -> None:
        directory = self.root / "_index" / f"{table}-{table_hash}"
        if not directory.exists():
            index.save(directory)

    def _drop_stale_indexes(self, manifest: dict[str, Any]) -> None:
        keep = {f"{t}-{e['hash']}" for t, e in manifest["tables"].items() if "hash" in e}
        for path in (self.root / "_index").glob("*"):
            if path.name not in keep and not path.name.startswith("."):
                shutil.rmtree(path, ignore_errors=True)

    def record_ingest(self, info: dict[str, Any]) -> None:
        """Attach ``info`` (source, symbols, range, counts) to the snapshot being written.

        Recorded only when the transaction changes the data: a no-op ingest writes nothing.
        """
        if self._txn is None:
            raise DataError("record_ingest is only valid inside Store.transaction()")
        self._txn["last_ingest"] = info

    def fingerprint(self) -> str:
        """Short content hash of the committed snapshot (MLflow runs reference it)."""
        manifest = self.manifest()
        return str(manifest.get("content_hash") or _content_hash(manifest.get("tables", {})))[:12]

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
        (UTC, default: the wall clock). Identical rows add nothing, so ingesting twice is a
        no-op. Rows must already be valid (see :mod:`py_finance.data.validation`).
        """
        if table not in TABLES:
            raise DataError(f"unknown table {table!r}; tables: {TABLES}")
        missing = [c for c in BAR_COLUMNS if c != "available_at" and c not in bars.columns]
        if missing:
            raise DataError(f"bars are missing columns {missing}")
        new = bars[[c for c in BAR_COLUMNS if c != "available_at"]].copy()
        new["session"] = pd.to_datetime(new["session"]).dt.normalize()
        for col in VALUE_COLUMNS:
            new[col] = new[col].astype("float64")
        if (new["adj_close"] <= 0).any():
            raise DataError("bars contain non-positive adjusted closes")
        new["available_at"] = session_closes(pd.DatetimeIndex(new["session"]), calendar)
        return self._append(table, new, now=now)

    def write_actions(
        self, actions: pd.DataFrame, now: pd.Timestamp | None = None
    ) -> IngestSummary:
        """Store corporate actions: ``symbol, ex_date, kind ('split'|'dividend'), value``.

        ``value`` is the split ratio (new shares per old share, 4.0 for 4:1) or the cash
        dividend per share. ``available_at`` defaults to the close of the session before
        the ex-date (when the action is announced at the latest).
        """
        frame = actions.copy()
        bad = sorted(set(frame["kind"]) - {"split", "dividend"})
        if bad:
            raise DataError(f"unknown corporate action kind(s) {bad}; use 'split' or 'dividend'")
        if (pd.to_numeric(frame["value"]) <= 0).any():
            raise DataError("corporate action values must be positive")
        if "available_at" not in frame.columns:
            ex = pd.DatetimeIndex(pd.to_datetime(frame["ex_date"]).dt.normalize())
            frame["available_at"] = _previous_close(ex)
        frame["value"] = frame["value"].astype("float64")
        return self._append("actions", frame, now=now)

    def write_fundamentals(
        self, rows: pd.DataFrame, now: pd.Timestamp | None = None
    ) -> IngestSummary:
        """Store fundamentals: ``symbol, period_end, field, value[, period], available_at``.

        ``available_at`` is the filing/publication time; a row with only a filing date gets
        the close of the next session after it (see :func:`date_known_at`).
        """
        frame = rows.copy()
        if "period" not in frame.columns:
            frame["period"] = ""
        frame["value"] = pd.to_numeric(frame["value"], errors="coerce").astype("float64")
        return self._append("fundamentals", frame, now=now)

    def write_news(self, rows: pd.DataFrame, now: pd.Timestamp | None = None) -> IngestSummary:
        """Store news items: ``symbol, id, published_at, headline, source, url, summary``.

        Known from ``published_at``.
        """
        frame = rows.copy()
        frame["published_at"] = pd.to_datetime(frame["published_at"], utc=True)
        frame["id"] = frame["id"].astype(str)
        for col in ("headline", "source", "url", "summary"):
            frame[col] = frame[col].fillna("").astype(str) if col in frame else ""
        frame["available_at"] = frame["published_at"]
        return self._append("news", frame, now=now)

    def write_universe(
        self, membership: pd.DataFrame, now: pd.Timestamp | None = None
    ) -> IngestSummary:
        """Store membership spells ``symbol, start, end, available_at`` (``end`` NaT: open).

        Use :func:`membership_versions` to turn a final membership list into the versions
        known over time (a spell is open until its end is known).
        """
        frame = membership.copy()
        frame["end"] = pd.to_datetime(frame["end"])
        return self._append("universe", frame, now=now)

    def write_delistings(
        self, delistings: pd.DataFrame, calendar: str = "XNYS", now: pd.Timestamp | None = None
    ) -> IngestSummary:
        """Store delistings ``symbol, date, delisting_return``.

        ``date`` is the delisting session, the first session on which the name no longer
        trades; ``delisting_return`` is the return from its last close to what a holder
        receives (>= -1). A delisting is known from the close of its session.
        """
        frame = delistings[["symbol", "date", "delisting_return"]].copy()
        if frame.empty:
            return IngestSummary("delistings", 0, 0, 0, ())
        frame["symbol"] = frame["symbol"].astype(str).str.upper()
        frame["date"] = pd.to_datetime(frame["date"]).dt.normalize()
        frame["delisting_return"] = frame["delisting_return"].astype("float64")
        bad = frame[~(frame["delisting_return"] >= -1.0)]
        if len(bad):
            row = bad.iloc[0]
            raise DataError(
                f"delisting return of {row['symbol']} on {row['date'].date()} is "
                f"{row['delisting_return']}: it must be a number >= -1"
            )
        frame["available_at"] = session_closes(pd.DatetimeIndex(frame["date"]), calendar)
        return self._append("delistings", frame, now=now)

    def delistings(self, as_of: dt.datetime | pd.Timestamp | str) -> pd.DataFrame:
        """Delistings (``symbol, date, delisting_return``) known at ``as_of``."""
        frame = self._as_of("delistings", as_of)
        if frame.empty:
            return pd.DataFrame(
                {
                    "symbol": pd.Series(dtype=str),
                    "date": pd.Series(dtype="datetime64[us]"),
                    "delisting_return": pd.Series(dtype="float64"),
                }
            )
        frame = frame[["symbol", "date", "delisting_return"]]
        return frame.sort_values(["date", "symbol"]).reset_index(drop=True)

    def write_quarantine(self, rows: pd.DataFrame) -> int:
        """Append refused rows (``table, symbol, session, reason, source, row``); returns added."""
        if rows.empty:
            return 0
        frame = rows[["table", "symbol", "session", "reason", "source", "row"]].copy()
        frame = frame.astype(str)
        known = self.quarantine()
        if not known.empty:
            seen = set(map(tuple, known[list(frame.columns)].astype(str).to_numpy()))
            frame = frame[[tuple(r) not in seen for r in frame.to_numpy()]]
        frame = frame.drop_duplicates()
        if frame.empty:
            return 0
        with self.transaction():
            self._write_part("quarantine", frame, kind="parts")
        return len(frame)

    def _append(self, table: str, rows: pd.DataFrame, now: pd.Timestamp | None) -> IngestSummary:
        spec = SPECS[table]
        cols = [*spec.key, *spec.values, "available_at"]
        missing = [c for c in cols if c not in rows.columns]
        if missing:
            raise DataError(f"{table} rows are missing columns {missing}")
        new = rows[cols].copy()
        new["symbol"] = new["symbol"].astype(str).str.upper()
        for col in spec.dates:
            new[col] = pd.to_datetime(new[col]).dt.normalize().astype("datetime64[us]")
        new["available_at"] = pd.to_datetime(new["available_at"], utc=True).astype(
            "datetime64[ns, UTC]"
        )
        if new["available_at"].isna().any():
            raise DataError(f"{table} rows without available_at")
        if new.duplicated(list(spec.key)).any():
            raise DataError(f"{table} rows contain duplicate {spec.key} keys")
        symbols = tuple(sorted(new["symbol"].unique()))
        with self.transaction():
            current = self._current(table, symbols)
            added, superseded = _diff(new, current, spec, now)
            if len(added):
                self._write_part(table, added, kind="parts")
            if len(superseded):
                self._write_part(table, superseded, kind="superseded")
                log.info("%d restated rows in %s", len(superseded), table)
            if len(added) and table in TABLES:
                assert self._txn is not None
                self._txn.setdefault("_dirty", []).append(table)
        return IngestSummary(
            table=table,
            rows_in=len(new),
            rows_added=len(added),
            rows_unchanged=len(new) - len(added),
            symbols=symbols,
            rows_restated=len(superseded),
        )

    def _current(self, table: str, symbols: Sequence[str]) -> pd.DataFrame:
        versions = self._versions(table)
        if versions.empty:
            return versions
        latest = versions[versions["superseded_at"].isna()]
        return latest[latest["symbol"].isin(list(symbols))]

    def _write_part(self, table: str, rows: pd.DataFrame, *, kind: str) -> Path:
        import pyarrow as pa
        import pyarrow.parquet as pq

        assert self._txn is not None, "writes happen inside a transaction"
        sort = [c for c in ("symbol", *SPECS.get(table, TableSpec((), (), ())).key) if c in rows]
        sort = list(dict.fromkeys([*sort, "available_at"] if "available_at" in rows else sort))
        rows = rows.sort_values(sort).reset_index(drop=True) if sort else rows
        arrow = pa.Table.from_pandas(rows, preserve_index=False)
        for col in SPECS.get(table, TableSpec((), (), ())).dates:
            if col in arrow.column_names:
                i = arrow.schema.get_field_index(col)
                arrow = arrow.set_column(i, col, arrow.column(col).cast(pa.date32()))
        digest = hashlib.sha256(
            pd.util.hash_pandas_object(rows, index=False).to_numpy().tobytes()
            + ",".join(rows.columns).encode()
        ).hexdigest()[:16]
        prefix = "part" if kind == "parts" else "sup"
        path = self.root / table / f"{prefix}-{digest}.parquet"
        if not path.exists():  # same content already written by an interrupted ingest
            with atomic_path(path) as tmp:
                pq.write_table(arrow, tmp)
        entry = self._txn["tables"].setdefault(table, {"parts": {}, "superseded": {}, "rows": 0})
        entry.setdefault(kind, {})[path.name] = path.stat().st_size
        self._txn.setdefault("checksums", {})[f"{table}/{path.name}"] = sha256_file(path)
        entry.pop("hash", None)  # recomputed at commit; stale inside the transaction
        if kind == "parts":
            entry["rows"] = int(entry.get("rows") or 0) + len(rows)
        log.info("wrote %d rows to %s", len(rows), path)
        return path

    def write_sectors(
        self, sectors: pd.DataFrame, available_at: pd.Timestamp, calendar: str = "XNYS"
    ) -> Path:
        """Store the sector map (``symbol, name, sector`` and optionally ``from``).

        Without ``from`` (or where it is NaT) a label is known from ``available_at`` and
        applies to all history (today's labels: not point in time). A row with ``from`` is
        a point-in-time label: it applies from session ``from`` on and is known from that
        session's close.
        """
        frame = sectors[["symbol", "name", "sector"]].copy()
        start = (
            pd.to_datetime(sectors["from"]).dt.normalize()
            if "from" in sectors
            else pd.Series(pd.NaT, index=frame.index, dtype="datetime64[ns]")
        )
        frame["from"] = start.astype("datetime64[us]")
        known = pd.Series(to_utc(available_at), index=frame.index)
        dated = start.notna()
        if dated.any():
            known[dated] = session_closes(pd.DatetimeIndex(start[dated]), calendar)
        frame["available_at"] = known.astype("datetime64[ns, UTC]")
        path = self.root / SECTORS
        buffer = io.BytesIO()
        frame.to_parquet(buffer, index=False)
        data = buffer.getvalue()
        digest = hashlib.sha256(data).hexdigest()
        with self.transaction():
            assert self._txn is not None
            sums = self._txn.setdefault("checksums", {})
            # the same map again writes nothing, like any no-op ingest
            if sums.get(SECTORS) != digest or not path.exists():
                with atomic_path(path) as tmp:
                    tmp.write_bytes(data)
                sums[SECTORS] = digest
        return path

    def write_meta(self, meta: dict[str, Any]) -> Path:
        """Store source facts and checks as ``meta.json``."""
        return write_json(meta, self.root / "meta.json")

    # ------------------------------------------------------------ raw access
    def meta(self) -> dict[str, Any]:
        """Contents of ``meta.json`` (empty when absent)."""
        path = self.root / "meta.json"
        if not path.exists():
            return {}
        return dict(json.loads(path.read_text(encoding="utf-8")))

    def _files(self, table: str, kind: str = "parts") -> list[Path]:
        entry = self.manifest().get("tables", {}).get(table) or {}
        return [self.root / table / name for name in sorted(entry.get(kind) or {})]

    def _parts(self, table: str) -> list[Path]:
        return self._files(table, "parts")

    def _table_hash(self, table: str) -> str:
        entry = self.manifest().get("tables", {}).get(table)
        if not entry:
            return "empty"
        return str(entry.get("hash") or _table_hash(entry))

    def _versions(self, table: str) -> pd.DataFrame:
        """Every stored version of ``table`` with its ``superseded_at`` (NaT: current)."""
        key = (self._cache_root, table, self._table_hash(table))
        cached = _VERSIONS.get(key)
        if cached is not None:
            return cached
        spec = SPECS[table]
        parts = self._parts(table)
        if not parts:
            return pd.DataFrame(columns=[*spec.key, *spec.values, "available_at", "superseded_at"])
        frame = self._read_parquet(table, parts)
        sups = self._files(table, "superseded")
        for col in spec.dates:
            frame[col] = pd.to_datetime(frame[col]).astype("datetime64[us]")
        frame["available_at"] = pd.to_datetime(frame["available_at"], utc=True).astype(
            "datetime64[ns, UTC]"
        )
        if sups:
            marks = self._read_parquet(table, sups)
            for col in spec.dates:
                if col in spec.key:
                    marks[col] = pd.to_datetime(marks[col]).astype("datetime64[us]")
            for col in ("available_at", "superseded_at"):
                marks[col] = pd.to_datetime(marks[col], utc=True).astype("datetime64[ns, UTC]")
            marks = marks.drop_duplicates([*spec.key, "available_at"])
            frame = frame.merge(marks, on=[*spec.key, "available_at"], how="left")
        else:
            frame["superseded_at"] = pd.Series(
                pd.NaT, index=frame.index, dtype="datetime64[ns, UTC]"
            )
        _remember(_VERSIONS, key, frame)
        return frame

    def _read_parquet(self, table: str, files: Sequence[Path]) -> pd.DataFrame:
        import duckdb

        self._verify(files)
        try:
            with duckdb.connect() as con:
                con.execute("SET TimeZone = 'UTC'")
                return con.execute(
                    f"SELECT * FROM read_parquet({_sql_list(files)}, union_by_name=true)"
                ).df()
        except duckdb.Error as exc:
            bad = _find_corrupt(files)
            where = f" ({bad})" if bad else ""
            raise DataError(
                f"cannot read the {table} Parquet files{where}: {str(exc).splitlines()[0]}; "
                f"{self._fix()}"
            ) from exc

    def _fix(self) -> str:
        """How to get an intact store back."""
        root = relative_to_cwd(self.root)
        return (
            f"restore the store with `.venv/bin/dvc checkout --force {root}`, or rebuild it with "
            f"`.venv/bin/dvc repro -f ingest` (outside DVC: delete {root} and re-run the ingest)"
        )

    def _verify(self, files: Sequence[Path]) -> None:
        """Check ``files`` against the snapshot's sha256 before they are read.

        Each file is hashed once per process while it is unchanged on disk. A snapshot without
        checksums (written by an older version) gets a size check and a warning instead.
        """
        manifest = self.manifest()
        sums = manifest.get("checksums")
        legacy = sums is None or bool(manifest.get("_unverified"))
        for path in files:
            shown = relative_to_cwd(path)
            try:
                st = path.stat()
            except FileNotFoundError:
                raise DataError(
                    f"{shown} is listed in the store's snapshot but missing: {self._fix()}"
                ) from None
            rel = path.relative_to(self.root).as_posix()
            expected = (sums or {}).get(rel)
            if expected is None and legacy:
                self._check_size(manifest, rel, path, st.st_size)
                continue
            if expected is None:
                raise DataError(
                    f"{shown} has no checksum in {relative_to_cwd(self.root / MANIFEST)} "
                    f"(unverified): {self._fix()}"
                )
            sig = (st.st_size, st.st_mtime_ns, st.st_ino)
            key = str(path.absolute())
            if _VERIFIED.get(key) == (sig, expected):
                continue
            if sha256_file(path) != expected:
                raise DataError(
                    f"{shown} is corrupt (sha256 mismatch with the store's manifest.json): "
                    f"{self._fix()}"
                )
            _VERIFIED[key] = (sig, expected)

    def _check_size(self, manifest: dict[str, Any], rel: str, path: Path, size: int) -> None:
        if self._cache_root not in _UNVERIFIED_WARNED:
            _UNVERIFIED_WARNED.add(self._cache_root)
            log.warning(
                "%s records no checksums (written by an older version): its files are "
                "checked by size only; re-run the ingest to record them",
                relative_to_cwd(self.root / MANIFEST),
            )
        table, _, name = rel.partition("/")
        entry = manifest.get("tables", {}).get(table) or {}
        sizes = {**(entry.get("parts") or {}), **(entry.get("superseded") or {})}
        if sizes.get(name) not in (None, size):
            raise DataError(
                f"{relative_to_cwd(path)} changed since it was written (corrupt?): {self._fix()}"
            )

    def sql(self) -> Any:
        """A DuckDB connection with one view per table, ``superseded_at`` included.

        As of T: ``WHERE available_at <= T AND (superseded_at IS NULL OR superseded_at > T)``.
        """
        import duckdb

        con = duckdb.connect()
        con.execute("SET TimeZone = 'UTC'")
        for table, spec in SPECS.items():
            parts = self._parts(table)
            if not parts:
                continue
            sups = self._files(table, "superseded")
            self._verify([*parts, *sups])
            rows = f"read_parquet({_sql_list(parts)}, union_by_name=true)"
            if sups:
                keys = ", ".join([*spec.key, "available_at"])
                marks = f"read_parquet({_sql_list(sups)}, union_by_name=true)"
                con.execute(
                    f"CREATE VIEW {table} AS SELECT r.*, m.superseded_at FROM {rows} r "
                    f"LEFT JOIN (SELECT DISTINCT * FROM {marks}) m USING ({keys})"
                )
            else:
                con.execute(
                    f"CREATE VIEW {table} AS SELECT *, "
                    f"CAST(NULL AS TIMESTAMPTZ) AS superseded_at FROM {rows}"
                )
        return con

    # ----------------------------------------------------------- bar reads
    def index(self, table: str = "bars") -> BarIndex:
        """The read index of a bar table (memory-mapped when saved, else built and cached)."""
        if not self._parts(table):
            raise DataError(
                f"the store at {self.root} has no {table}: run the ingest stage first "
                "(`dvc repro ingest` or `python scripts/ingest_bars.py`)"
            )
        table_hash = self._table_hash(table)
        key = (self._cache_root, table, table_hash)
        index = _INDEXES.get(key)
        if index is None:
            directory = self.root / "_index" / f"{table}-{table_hash}"
            self._verify([*self._parts(table), *self._files(table, "superseded")])
            saved = [directory / name for name in INDEX_FILES] if directory.is_dir() else []
            try:
                self._verify(saved)
            except DataError:
                if directory.is_dir():
                    raise
                saved = []  # a newer snapshot's commit removed it: build from the parts
            if saved:
                try:
                    index = BarIndex.load(directory)
                except (OSError, ValueError) as exc:
                    log.warning("rebuilding unreadable index %s: %s", directory, exc)
            if index is None:
                index = self._build_index(table)
            _remember(_INDEXES, key, index)
        return index

    def _build_index(self, table: str) -> BarIndex:
        versions = self._versions(table)
        return BarIndex.from_frame(versions, VALUE_COLUMNS)

    def symbols(self, *, table: str = "bars") -> list[str]:
        """Every symbol ever stored in ``table``."""
        if table in TABLES:
            return [str(s) for s in self.index(table).symbols]
        versions = self._versions(table)
        return sorted(versions["symbol"].astype(str).unique().tolist())

    def _resolve(
        self,
        table: str,
        symbols: Sequence[str] | None,
        start: dt.date | str | None,
        end: dt.date | str | None,
        as_of: dt.datetime | pd.Timestamp | str,
    ) -> tuple[BarIndex, np.ndarray | None, int | None, int | None, int]:
        as_of_ns = min(int(to_utc(as_of).value), NEVER - 1)  # Timestamp.max: everything
        start_d = _day(start)
        end_d = _day(end)
        if start_d is not None and end_d is not None and end_d < start_d:
            raise DataError(
                f"end date {_from_day(end_d)} is before start date {_from_day(start_d)}"
            )
        index = self.index(table)
        codes = None
        if symbols is not None:
            wanted = [s.upper() for s in symbols]
            codes = index.codes(wanted)
            if len(codes) != len(set(wanted)):
                known = set(index.symbols.tolist())
                unknown = sorted(set(wanted) - known)
                raise DataError(
                    f"unknown symbol(s) {', '.join(unknown)} in the store at {self.root}; "
                    f"known: {', '.join(index.symbols.tolist())}"
                )
        return index, codes, start_d, end_d, as_of_ns

    def _select(
        self,
        table: str,
        symbols: Sequence[str] | None,
        start: dt.date | str | None,
        end: dt.date | str | None,
        as_of: dt.datetime | pd.Timestamp | str,
    ) -> tuple[BarIndex, np.ndarray]:
        index, codes, start_d, end_d, as_of_ns = self._resolve(table, symbols, start, end, as_of)
        return index, index.select(codes, start_d, end_d, as_of_ns)

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
        Unknown symbols raise :class:`DataError`. Rows are ordered by session, then symbol.
        """
        index, rows = self._select(table, symbols, start, end, as_of)
        if len(rows) > 1:
            rows = rows[np.lexsort((index.code[rows], index.session[rows]))]
        out = {
            "symbol": index.symbol_array().take(index.code[rows]),
            "session": index.session[rows].astype("datetime64[D]").astype("datetime64[us]"),
        }
        for col in VALUE_COLUMNS:
            out[col] = index.values[col][rows]
        out["available_at"] = pd.DatetimeIndex(
            index.available_at[rows].astype("datetime64[ns]")
        ).tz_localize("UTC")
        return pd.DataFrame(out)

    def point(
        self,
        symbol: str,
        session: dt.date | str,
        as_of: dt.datetime | pd.Timestamp | str,
        field: str = "adj_close",
        *,
        table: str = "bars",
    ) -> float:
        """One value of ``symbol`` at ``session`` as known at ``as_of`` (NaN when unknown)."""
        index, rows = self._select(table, [symbol], session, session, as_of)
        return float(index.values[field][rows[0]]) if len(rows) else float("nan")

    def cross_section(
        self,
        session: dt.date | str,
        as_of: dt.datetime | pd.Timestamp | str,
        field: str = "adj_close",
        symbols: Sequence[str] | None = None,
        *,
        table: str = "bars",
    ) -> pd.Series:
        """``field`` of every symbol (or ``symbols``) at one session, as known at ``as_of``."""
        if field not in VALUE_COLUMNS:
            raise DataError(f"unknown bar field {field!r}; fields: {VALUE_COLUMNS}")
        index, codes, day, _, as_of_ns = self._resolve(table, symbols, session, session, as_of)
        assert day is not None
        picked, values = index.row(day, field, codes, as_of_ns)
        return pd.Series(
            values,
            index=pd.Index(index.symbol_array().take(picked), name="symbol"),
            name=field,
        )

    def benchmark(
        self,
        start: dt.date | str | None,
        end: dt.date | str | None,
        as_of: dt.datetime | pd.Timestamp | str,
    ) -> pd.DataFrame:
        """Benchmark bars as known at ``as_of``."""
        return self.bars(None, start, end, as_of, table="benchmark")

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
        return self.panel((field,), symbols, start, end, as_of, table=table)[field]

    def panel(
        self,
        fields: Sequence[str],
        symbols: Sequence[str] | None,
        start: dt.date | str | None,
        end: dt.date | str | None,
        as_of: dt.datetime | pd.Timestamp | str,
        *,
        table: str = "bars",
    ) -> dict[str, pd.DataFrame]:
        """``session x symbol`` matrices of several fields, as known at ``as_of``.

        Sessions and symbols are those with at least one known row in the selection.
        """
        bad = [f for f in fields if f not in VALUE_COLUMNS]
        if bad:
            raise DataError(f"unknown bar field(s) {bad}; fields: {VALUE_COLUMNS}")
        index, codes, start_d, end_d, as_of_ns = self._resolve(table, symbols, start, end, as_of)
        rows, cols, mats = index.matrices(fields, codes, start_d, end_d, as_of_ns)
        dates = pd.DatetimeIndex(
            index.sessions[rows].astype("datetime64[D]").astype("datetime64[us]"),
            name="session",
        )
        columns = pd.Index(index.symbol_array().take(cols))
        return {
            f: pd.DataFrame(m, index=dates, columns=columns, copy=False) for f, m in mats.items()
        }

    # -------------------------------------------------- other as-of reads
    def _as_of(
        self,
        table: str,
        as_of: dt.datetime | pd.Timestamp | str,
        symbols: Sequence[str] | None = None,
    ) -> pd.DataFrame:
        frame = self._as_of_all(table, as_of)
        if symbols is not None and not frame.empty:
            frame = frame[frame["symbol"].isin([s.upper() for s in symbols])]
        return frame

    def _as_of_all(self, table: str, as_of: dt.datetime | pd.Timestamp | str) -> pd.DataFrame:
        t = to_utc(as_of)
        versions = self._versions(table)
        if versions.empty:
            return versions.drop(columns=["superseded_at"])
        sup = versions["superseded_at"]
        known = (versions["available_at"] <= t) & (sup.isna() | (sup > t))
        return versions[known].drop(columns=["superseded_at"]).reset_index(drop=True)

    def actions(
        self, symbols: Sequence[str] | None, as_of: dt.datetime | pd.Timestamp | str
    ) -> pd.DataFrame:
        """Corporate actions known at ``as_of``."""
        frame = self._as_of("actions", as_of, symbols)
        return frame.sort_values(["symbol", "ex_date", "kind"]).reset_index(drop=True)

    def adjusted_close(
        self,
        symbols: Sequence[str] | None,
        start: dt.date | str | None,
        end: dt.date | str | None,
        as_of: dt.datetime | pd.Timestamp | str,
    ) -> pd.DataFrame:
        """``session x symbol`` closes back-adjusted for the actions known at ``as_of``.

        A split of ratio r on ex-date e divides closes before e by r; a dividend d
        multiplies them by ``1 - d / close[e-1]``. Actions recorded after ``as_of`` are
        ignored, so a late split never changes returns seen before it was known. Symbols
        without raw closes (adjusted-only sources) keep the stored ``adj_close``.
        """
        mats = self.panel(("close", "adj_close"), symbols, None, end, as_of)
        close, fallback = mats["close"], mats["adj_close"]
        acts = self.actions(list(close.columns), as_of)
        out = close.copy()
        for sym in close.columns:
            raw = close[sym]
            if raw.isna().all():
                out[sym] = fallback[sym]
                continue
            factor = pd.Series(1.0, index=raw.index)
            mine = acts[acts["symbol"] == sym]
            for ex_date, kind, value in zip(
                mine["ex_date"], mine["kind"], mine["value"].astype(float), strict=True
            ):
                before = raw.index < pd.Timestamp(ex_date)
                if not before.any():
                    continue
                if kind == "split":
                    factor[before] /= value
                else:
                    prev = raw[before].dropna()
                    if len(prev):
                        factor[before] *= 1.0 - value / float(prev.iloc[-1])
            out[sym] = raw * factor
        if start is not None:
            out = out.loc[pd.Timestamp(start) :]
        return out

    def fundamentals(
        self,
        symbols: Sequence[str] | None,
        as_of: dt.datetime | pd.Timestamp | str,
        fields: Sequence[str] | None = None,
    ) -> pd.DataFrame:
        """Latest value per (symbol, field) known at ``as_of`` (latest period, latest version)."""
        frame = self._as_of("fundamentals", as_of, symbols)
        if frame.empty:
            return frame
        if fields is not None:
            frame = frame[frame["field"].isin(list(fields))]
        frame = frame.sort_values(["symbol", "field", "period_end", "available_at"])
        return frame.drop_duplicates(["symbol", "field"], keep="last").reset_index(drop=True)

    def fundamentals_history(
        self, symbols: Sequence[str] | None, as_of: dt.datetime | pd.Timestamp | str
    ) -> pd.DataFrame:
        """Every (symbol, period, field) value as known at ``as_of``."""
        frame = self._as_of("fundamentals", as_of, symbols)
        return frame.sort_values(["symbol", "period_end", "field"]).reset_index(drop=True)

    def news(
        self,
        symbols: Sequence[str] | None,
        as_of: dt.datetime | pd.Timestamp | str,
        window: pd.Timedelta | str = "7D",
    ) -> pd.DataFrame:
        """News published in ``(as_of - window, as_of]``, newest first."""
        t = to_utc(as_of)
        frame = self._as_of("news", t, symbols)
        if frame.empty:
            return frame
        frame = frame[frame["published_at"] > t - pd.Timedelta(window)]
        return frame.sort_values("published_at", ascending=False).reset_index(drop=True)

    def membership(self, as_of: dt.datetime | pd.Timestamp | str) -> pd.DataFrame:
        """Membership spells (``symbol, start, end``) as known at ``as_of``."""
        return (
            self._as_of("universe", as_of).sort_values(["symbol", "start"]).reset_index(drop=True)
        )

    def universe(
        self, session: dt.date | str, as_of: dt.datetime | pd.Timestamp | str | None = None
    ) -> list[str]:
        """Symbols in the universe at ``session`` as known at ``as_of`` (default: its end).

        A delisted symbol is a member through its last session and absent after it.
        """
        day = pd.Timestamp(session)
        spells = self.membership(as_of if as_of is not None else end_of_day_utc(day.date()))
        if spells.empty:
            return []
        inside = (spells["start"] <= day) & (spells["end"].isna() | (spells["end"] >= day))
        return sorted(spells.loc[inside, "symbol"].astype(str).unique().tolist())

    def quarantine(self) -> pd.DataFrame:
        """Every row validation refused, with its reason."""
        parts = self._parts("quarantine")
        if not parts:
            return pd.DataFrame(columns=["table", "symbol", "session", "reason", "source", "row"])
        self._verify(parts)
        return pd.concat([self._read_file(p) for p in parts], ignore_index=True)

    def _read_file(self, path: Path) -> pd.DataFrame:
        import pyarrow as pa

        try:
            return pd.read_parquet(path)
        except (OSError, ValueError, pa.ArrowException) as exc:
            raise DataError(
                f"{relative_to_cwd(path)} is corrupt (unreadable Parquet: "
                f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}): {self._fix()}"
            ) from exc

    def sectors(self, as_of: dt.datetime | pd.Timestamp | str) -> pd.Series:
        """Sector per symbol as known at ``as_of``: the latest label that applies by then."""
        frame = self.sector_history(as_of)
        frame = frame.sort_values(["symbol", "from"], na_position="first")
        return frame.drop_duplicates("symbol", keep="last").set_index("symbol")["sector"]

    def sector_history(self, as_of: dt.datetime | pd.Timestamp | str) -> pd.DataFrame:
        """Every sector label known at ``as_of``: ``symbol, name, sector, from`` (NaT: always)."""
        path = self.root / SECTORS
        if not path.exists():
            raise DataError(f"no sector map in the store at {self.root}: run ingest first")
        self._verify([path])
        frame = self._read_file(path)
        frame = frame[pd.to_datetime(frame["available_at"], utc=True) <= to_utc(as_of)]
        if "from" not in frame:
            frame["from"] = pd.Series(pd.NaT, index=frame.index, dtype="datetime64[us]")
        frame = frame.assign(
            symbol=frame["symbol"].astype(str),
            sector=frame["sector"].astype(str),
            **{"from": pd.to_datetime(frame["from"]).astype("datetime64[us]")},
        )
        return frame[["symbol", "name", "sector", "from"]].reset_index(drop=True)


# ---------------------------------------------------------------- helpers
def _remember(
    cache: dict[tuple[str, str, str], Any], key: tuple[str, str, str], value: Any
) -> None:
    """Cache ``value`` as the one entry of its (root, table): older snapshots are dropped."""
    for old in [k for k in cache if k[:2] == key[:2]]:
        del cache[old]
    cache[key] = value


def date_known_at(day: dt.date | str | pd.Timestamp, calendar: str = "XNYS") -> pd.Timestamp:
    """Conservative knowledge time of a fact dated ``day`` without a time: next session's close."""
    from py_finance.data.calendar import get_calendar

    cal = get_calendar(calendar)
    nxt = cal.date_to_session(pd.Timestamp(day).normalize() + pd.Timedelta(days=1), "next")
    return pd.Timestamp(cal.schedule.loc[nxt, "close"]).tz_convert("UTC")


def _previous_close(days: pd.DatetimeIndex, calendar: str = "XNYS") -> pd.DatetimeIndex:
    from py_finance.data.calendar import get_calendar

    cal = get_calendar(calendar)
    prev = [cal.date_to_session(d - pd.Timedelta(days=1), "previous") for d in days]
    return pd.DatetimeIndex(cal.schedule.loc[prev, "close"]).tz_convert("UTC")


def membership_mask(
    spells: pd.DataFrame, sessions: pd.Index, symbols: Sequence[str] | pd.Index
) -> pd.DataFrame:
    """``session x symbol`` booleans: True where the name is a member at that session.

    ``spells`` are final membership spells ``symbol, start, end`` (``end`` NaT: still a
    member), e.g. :meth:`Store.membership` as of the end of the range. A spell known as of
    a later time says the same of session t as the version known at t: it was opened at
    its start session's close and closed at its end session's close.
    """
    index = pd.DatetimeIndex(sessions)
    cols = pd.Index([str(s) for s in symbols])
    out = np.zeros((len(index), len(cols)), dtype=bool)
    if len(spells) and len(index):
        pos = cols.get_indexer(pd.Index(spells["symbol"].astype(str)))
        starts = index.searchsorted(pd.to_datetime(spells["start"]).to_numpy(), "left")
        ends = pd.to_datetime(spells["end"])
        stop = np.where(
            ends.isna().to_numpy(),
            len(index),
            index.searchsorted(ends.fillna(index[-1]).to_numpy(), "right"),
        )
        for j, a, b in zip(pos, starts, stop, strict=True):
            if j >= 0 and b > a:
                out[a:b, j] = True
    return pd.DataFrame(out, index=sessions, columns=pd.Index(symbols))


def tradable_mask(
    spells: pd.DataFrame,
    sessions: pd.Index,
    symbols: Sequence[str] | pd.Index,
    execution_lag: int = 1,
    calendar: str = "XNYS",
) -> pd.DataFrame:
    """``session x symbol`` booleans: the members a decision at the close of t may buy or hold.

    A member at t (:func:`membership_mask`) is left out when its spell, as known at the
    close of t, ends at or before the fill session ``t + execution_lag``: a position filled
    at that close earns from the next session on, when the name is no longer a member. The
    end of a spell is known from its ``available_at`` when ``spells`` has the column (a
    store read keeps the version's), else from the close of its end session (as
    :func:`membership_versions` stores it). So with the store's spells a name is never
    bought on its last member session, and a later spell it starts is known only from its
    own first session.
    """
    index = pd.DatetimeIndex(sessions)
    cols = pd.Index([str(s) for s in symbols])
    n = len(index)
    out = np.zeros((n, len(cols)), dtype=bool)
    if len(spells) and n:
        pos = cols.get_indexer(pd.Index(spells["symbol"].astype(str)))
        starts = index.searchsorted(pd.to_datetime(spells["start"]).to_numpy(), "left")
        ends = pd.DatetimeIndex(pd.to_datetime(spells["end"])).normalize()
        closed = ~np.asarray(ends.isna(), dtype=bool)
        stop = np.full(len(spells), n)
        stop[closed] = index.searchsorted(ends[closed], "right")
        # first decision row that knows the end, and first whose fill is on or after it
        known = stop.copy()
        if "available_at" in spells.columns:
            at = pd.to_datetime(spells["available_at"], utc=True)[closed]
            known[closed] = session_closes(index, calendar).searchsorted(at, "left")
        else:
            known[closed] = index.searchsorted(ends[closed], "left")
        fills = index
        if closed.any() and ends[closed].max() > index[-1]:
            from py_finance.data.calendar import sessions as calendar_sessions

            later = calendar_sessions(
                index[-1] + pd.Timedelta(days=1),
                index[-1] + pd.Timedelta(days=7 * execution_lag + 14),
                calendar,
            )
            fills = pd.DatetimeIndex(index.append(later[:execution_lag]))
        filled = np.full(len(spells), n)
        filled[closed] = fills.searchsorted(ends[closed], "left") - execution_lag
        cut = np.where(closed, np.minimum(stop, np.maximum(known, filled)), n)
        for j, a, b in zip(pos, starts, cut, strict=True):
            if j >= 0 and b > a:
                out[a:b, j] = True
    return pd.DataFrame(out, index=sessions, columns=pd.Index(symbols))


def membership_versions(spells: pd.DataFrame, calendar: str = "XNYS") -> pd.DataFrame:
    """Point-in-time versions of final membership spells ``symbol, start, end``.

    A spell is known as open (``end`` NaT) from the close of its first session; its end
    becomes known at the close of its last session.
    """
    frame = spells.copy()
    frame["start"] = pd.to_datetime(frame["start"]).dt.normalize()
    frame["end"] = pd.to_datetime(frame["end"]).dt.normalize()
    opened = frame.assign(
        end=pd.Series(pd.NaT, index=frame.index, dtype="datetime64[ns]"),
        available_at=session_closes(pd.DatetimeIndex(frame["start"]), calendar),
    )
    closed = frame[frame["end"].notna()]
    closed = closed.assign(available_at=session_closes(pd.DatetimeIndex(closed["end"]), calendar))
    return pd.concat([opened, closed], ignore_index=True)


def _diff(
    new: pd.DataFrame, current: pd.DataFrame, spec: TableSpec, now: pd.Timestamp | None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rows to append (first seen or changed) and supersession markers for replaced ones."""
    key = list(spec.key)
    if current.empty:
        return new.reset_index(drop=True), pd.DataFrame()
    merged = new.merge(
        current[[*key, *spec.values, "available_at"]],
        on=key,
        how="left",
        suffixes=("", "_known"),
        indicator=True,
    )
    is_new = (merged["_merge"] == "left_only").to_numpy()
    changed = np.zeros(len(merged), dtype=bool)
    for col in spec.values:
        a, b = merged[col], merged[f"{col}_known"]
        same = (a == b).fillna(False).to_numpy(dtype=bool) | (a.isna() & b.isna()).to_numpy()
        changed |= ~same
    changed &= ~is_new
    first = merged.loc[is_new, new.columns]
    restated = merged.loc[changed].copy()
    if len(restated):
        stamp = to_utc(now) if now is not None else pd.Timestamp.now(tz="UTC")
        old = restated["available_at_known"]
        given = restated["available_at"]
        # The source's own knowledge time when it is after the replaced version's,
        # otherwise the time we learnt of the change; always strictly after the old one.
        floor = old + pd.Timedelta(microseconds=1)
        chosen = given.where(given > old, pd.Series(stamp, index=restated.index))
        restated["available_at"] = chosen.where(chosen >= floor, floor)
        marks = restated[key].assign(
            available_at=old.to_numpy(), superseded_at=restated["available_at"].to_numpy()
        )
    else:
        marks = pd.DataFrame()
    added = pd.concat([first, restated[new.columns]], ignore_index=True)
    return added, marks


def _state(manifest: dict[str, Any]) -> str:
    """What a commit would change: tables and checksums."""
    return json.dumps([manifest.get("tables"), manifest.get("checksums")], sort_keys=True)


def _table_hash(entry: dict[str, Any]) -> str:
    names = sorted(entry.get("parts") or {}) + sorted(entry.get("superseded") or {})
    return hashlib.sha256("\n".join(names).encode()).hexdigest()[:16]


def _content_hash(tables: dict[str, Any]) -> str:
    names = sorted(
        f"{t}/{n}"
        for t, e in tables.items()
        for kind in ("parts", "superseded")
        for n in (e.get(kind) or {})
    )
    return hashlib.sha256("\n".join(names).encode()).hexdigest()


def _day(value: dt.date | str | None) -> int | None:
    if value is None:
        return None
    return int(pd.Timestamp(value).to_datetime64().astype("datetime64[D]").astype(np.int64))


def _from_day(day: int) -> dt.date:
    return dt.date(1970, 1, 1) + dt.timedelta(days=day)


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
