"""Atomic file writes, and Parquet outputs verified against their checksum when read.

A reader never sees a half-written output: every write goes to a temp file renamed onto the
target. :func:`write_parquet` also writes ``<file>.sha256`` beside the file (the hex sha256
of its bytes, nothing else, so the pair stays byte-deterministic); :func:`read_parquet`
checks the file against it before parsing, so a file damaged on disk, or restored without
its checksum, is reported by name with the way to rebuild it instead of being read.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from py_finance.errors import DataError

CHECKSUM_SUFFIX = ".sha256"


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only on success."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def _write_with(path: str | os.PathLike[str], writer: Callable[[Path], None]) -> Path:
    with atomic_path(path) as tmp:
        writer(tmp)
    return Path(path)


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of the bytes of ``path``."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def checksum_path(path: str | os.PathLike[str]) -> Path:
    """The checksum file of ``path``: ``<path>.sha256``."""
    target = Path(path)
    return target.with_name(target.name + CHECKSUM_SUFFIX)


# Rows converted to Arrow at a time when writing a large frame (a row group each): the
# conversion then never holds a second copy of the whole frame.
CHUNK_ROWS = 1_000_000


def _to_parquet(df: pd.DataFrame, path: Path) -> None:
    if len(df) <= CHUNK_ROWS or isinstance(df.index, pd.RangeIndex):
        df.to_parquet(path)
        return
    import pyarrow as pa
    import pyarrow.parquet as pq

    first = pa.Table.from_pandas(df.iloc[:CHUNK_ROWS])
    with pq.ParquetWriter(path, first.schema) as writer:
        writer.write_table(first)
        del first
        for start in range(CHUNK_ROWS, len(df), CHUNK_ROWS):
            chunk = df.iloc[start : start + CHUNK_ROWS]
            writer.write_table(pa.Table.from_pandas(chunk, schema=writer.schema))


def write_parquet(df: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write ``df`` to Parquet atomically, and its sha256 to ``<path>.sha256``.

    The checksum is written after the file: a crash between the two leaves a pair that
    :func:`read_parquet` reports as corrupt, never one it reads.
    """
    digest: list[str] = []

    def writer(p: Path) -> None:
        _to_parquet(df, p)
        digest.append(sha256_file(p))

    out = _write_with(path, writer)
    write_text(digest[0] + "\n", checksum_path(out))
    return out


def read_parquet(
    path: str | os.PathLike[str],
    *,
    stage: str | None = None,
    columns: Sequence[str] | None = None,
    filters: list[tuple[str, str, Any]] | None = None,
) -> pd.DataFrame:
    """Read a Parquet file written by :func:`write_parquet`, after checking its sha256.

    ``filters`` (pyarrow's, e.g. ``[("session", ">=", t)]``) read only the matching rows
    (whole row groups are skipped), so a few rows of a large file cost little memory.

    ``stage`` is the DVC stage that writes the file (a ``dvc repro`` target); it goes into
    the message of the :class:`DataError` raised when the file is missing, has no checksum
    file, does not match it, or cannot be parsed.
    """
    import pyarrow as pa

    target = Path(path)
    shown = relative_to_cwd(target)
    sidecar = checksum_path(target)
    if stage:
        fix = (
            f"rebuild it with `.venv/bin/dvc repro -f {stage}` "
            f"or restore it with `.venv/bin/dvc checkout --force {stage}`"
        )
    else:
        fix = (
            "rebuild it with the DVC stage that writes it (`.venv/bin/dvc repro -f STAGE`) "
            f"or restore it with `.venv/bin/dvc checkout --force {shown} {shown}{CHECKSUM_SUFFIX}`"
        )
    if not target.exists():
        run = f"`.venv/bin/dvc repro {stage}`" if stage else "the pipeline stage that writes it"
        raise DataError(f"{shown} not found: run {run} first")
    try:
        expected = sidecar.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        raise DataError(
            f"{shown} is unverified (its checksum file {sidecar.name} is missing): {fix}"
        ) from None
    except (OSError, ValueError) as exc:
        raise DataError(
            f"{shown} is unverified (cannot read {sidecar.name}: {exc}): {fix}"
        ) from exc
    if sha256_file(target) != expected:
        raise DataError(f"{shown} is corrupt (sha256 mismatch with {sidecar.name}): {fix}")
    try:
        import pyarrow.parquet as pq

        if columns is None and filters is None:
            matrix = _read_matrix(target)
            if matrix is not None:
                return matrix
        table = pq.read_table(
            target,
            columns=list(columns) if columns is not None else None,
            filters=filters,
            use_pandas_metadata=True,  # the index columns come with ``columns``
        )
        # Column by column, each freed once converted: no second copy of a large frame.
        return table.to_pandas(self_destruct=True, split_blocks=True)
    except (OSError, ValueError, pa.ArrowException) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"{shown} is corrupt (unreadable Parquet: {first}): {fix}") from exc


def _read_matrix(path: Path) -> pd.DataFrame | None:
    """A large (session, symbol) frame of one float dtype, read a row group at a time.

    Each row group is copied into one preallocated column-major matrix and released, so
    the peak is the frame plus one row group (pyarrow's ``to_pandas`` holds the whole Arrow
    table, its pools and the frame at once). ``None`` when the file is not such a frame
    (the general reader handles it).
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path)
    if pf.metadata.num_rows <= CHUNK_ROWS or pf.num_row_groups < 2:
        return None
    schema = pf.schema_arrow
    meta = schema.pandas_metadata or {}
    index_cols = meta.get("index_columns") or []
    if len(index_cols) != 2 or not all(isinstance(c, str) for c in index_cols):
        return None
    values = [name for name in schema.names if name not in index_cols]
    kinds = {schema.field(name).type for name in values}
    if len(kinds) != 1 or not all(pa.types.is_floating(k) for k in kinds):
        return None
    if not pa.types.is_timestamp(schema.field(index_cols[0]).type):
        return None
    if not pa.types.is_string(schema.field(index_cols[1]).type) and not pa.types.is_large_string(
        schema.field(index_cols[1]).type
    ):
        return None
    dtype = np.dtype(kinds.pop().to_pandas_dtype())
    n = pf.metadata.num_rows
    out = np.empty((n, len(values)), dtype=dtype, order="F")
    stamps = np.empty(n, dtype=np.int64)
    sym_codes = np.empty(n, dtype=np.int64)
    names: dict[str, int] = {}
    unit = schema.field(index_cols[0]).type.unit
    row = 0
    for group in range(pf.num_row_groups):
        table = pf.read_row_group(group)
        k = table.num_rows
        for j, name in enumerate(values):
            out[row : row + k, j] = table.column(name).to_numpy()
        stamps[row : row + k] = table.column(index_cols[0]).cast(pa.int64()).to_numpy()
        encoded = pc.dictionary_encode(table.column(index_cols[1])).combine_chunks()
        local = [names.setdefault(str(sym), len(names)) for sym in encoded.dictionary.to_pylist()]
        sym_codes[row : row + k] = np.asarray(local, dtype=np.int64)[encoded.indices.to_numpy()]
        del table, encoded
        row += k
    sessions, ses_codes = np.unique(stamps, return_inverse=True)
    order = sorted(names, key=names.__getitem__)
    symbols = pd.Index(order)
    # levels sorted, as pandas builds them
    sym_sorted = symbols.argsort()
    remap = np.empty(len(symbols), dtype=np.int64)
    remap[sym_sorted] = np.arange(len(symbols))
    level0 = pd.DatetimeIndex(sessions.astype(f"datetime64[{unit}]"), name=index_cols[0])
    tz = schema.field(index_cols[0]).type.tz
    if tz is not None:
        level0 = level0.tz_localize("UTC").tz_convert(tz)
    levels: list[Any] = [level0, symbols[sym_sorted]]
    codes: list[Any] = [ses_codes, remap[sym_codes]]
    index = pd.MultiIndex(
        levels=levels,
        codes=codes,
        names=index_cols,
        verify_integrity=False,
    )
    return pd.DataFrame(out, index=index, columns=pd.Index(values), copy=False)


def relative_to_cwd(path: str | os.PathLike[str]) -> str:
    """``path`` relative to the working directory when inside it (as commands take it)."""
    try:
        return Path(path).resolve().relative_to(Path.cwd().resolve()).as_posix()
    except (ValueError, OSError):
        return str(path)


def write_text(text: str, path: str | os.PathLike[str]) -> Path:
    """Write ``text`` (UTF-8) atomically."""

    def writer(p: Path) -> None:
        p.write_text(text, encoding="utf-8")

    return _write_with(path, writer)


def write_json(obj: Any, path: str | os.PathLike[str]) -> Path:
    """Write ``obj`` as indented JSON atomically (dates and numpy scalars as strings/floats)."""
    return write_text(
        json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n", path
    )


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "isoformat"):
        return obj.isoformat()
    if hasattr(obj, "item"):
        return obj.item()
    raise TypeError(f"not JSON serializable: {type(obj).__name__}")
