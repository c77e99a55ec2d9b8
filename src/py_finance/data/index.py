"""Read index of a bar table: every version of every row as sorted numpy arrays.

The Parquet parts are the storage of record; this index is derived from them (built at each
commit, written beside the snapshot as one binary file plus a JSON header, memory-mapped by
readers). Two layouts of the same versions:

- *long*: rows sorted by ``(symbol, session, available_at)``, each with ``superseded_at``
  (the knowledge time of the next version, or never), so "as known at T" is the plain filter
  ``available_at <= T < superseded_at``: exactly one version of each key passes it. Point,
  cross-section and history reads are binary searches over a ``symbol << 32 | session`` key.
- *dense*: ``session x symbol`` matrices of each key's first version (value and
  ``available_at``), plus the later versions (restatements, typically ~1%) as a small
  overlay. The full "as known at T" load is a slice of the matrices with the overlay versions
  valid at T written over it.
"""

from __future__ import annotations

import json
import mmap
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

NEVER = np.iinfo(np.int64).max
VERSION = 2  # bump when the layout changes: readers rebuild older indexes in memory
_SHIFT = np.int64(1 << 32)
_LONG = ("key", "code", "session", "session_pos", "available_at", "superseded_at")
_DENSE = ("dense_avail", "row_min", "row_max", "col_min", "ov_pos", "ov_code", "ov_avail", "ov_sup")


@dataclass(frozen=True)
class BarIndex:
    """Sorted and dense arrays of one bar table; see the module docstring.

    ``code`` indexes ``symbols``; ``session`` is days since 1970-01-01; ``session_pos``
    indexes ``sessions`` (every distinct session); times are UTC nanoseconds (``NEVER``:
    not superseded / no row).
    """

    symbols: np.ndarray
    sessions: np.ndarray
    arrays: dict[str, np.ndarray]
    values: dict[str, np.ndarray]
    dense: dict[str, np.ndarray]
    overlay: dict[str, np.ndarray]
    _keep: list[object] = field(default_factory=list, repr=False)

    def __getattr__(self, name: str) -> np.ndarray:
        arrays = self.__dict__.get("arrays", {})
        if name in arrays:
            return arrays[name]
        raise AttributeError(name)

    @property
    def n_rows(self) -> int:
        """Number of stored versions."""
        return len(self.arrays["code"])

    # ------------------------------------------------------------------ build
    @classmethod
    def from_frame(cls, frame: pd.DataFrame, value_columns: Sequence[str]) -> BarIndex:
        """Build from every version (``symbol, session, available_at, superseded_at``, values)."""
        frame = frame.sort_values(["symbol", "session", "available_at"], kind="stable")
        symbols, code = np.unique(frame["symbol"].astype(str).to_numpy(), return_inverse=True)
        session = (
            pd.DatetimeIndex(frame["session"]).to_numpy().astype("datetime64[D]").astype(np.int32)
        )
        sessions, session_pos = np.unique(session, return_inverse=True)
        avail = _ns(frame["available_at"])
        sup = _ns(frame["superseded_at"], fill=NEVER)
        code = code.astype(np.int32)
        session_pos = session_pos.astype(np.int32)
        key = code.astype(np.int64) * _SHIFT + session.astype(np.int64)
        values = {c: frame[c].to_numpy(dtype="float64", na_value=np.nan) for c in value_columns}

        first = np.ones(len(key), dtype=bool)
        first[1:] = key[1:] != key[:-1]
        shape = (len(sessions), len(symbols))
        dense_avail = np.full(shape, NEVER, dtype=np.int64)
        dense_avail[session_pos[first], code[first]] = avail[first]
        dense = {}
        for name, arr in values.items():
            mat = np.full(shape, np.nan)
            mat[session_pos[first], code[first]] = arr[first]
            dense[name] = mat
        present = dense_avail != NEVER
        later = ~first
        arrays = {
            "key": key,
            "code": code,
            "session": session,
            "session_pos": session_pos,
            "available_at": avail,
            "superseded_at": sup,
            "dense_avail": dense_avail,
            "row_min": dense_avail.min(axis=1) if shape[1] else np.zeros(0, np.int64),
            "row_max": np.where(present, dense_avail, -1).max(axis=1)
            if shape[1]
            else np.zeros(0, np.int64),
            "col_min": dense_avail.min(axis=0) if shape[0] else np.zeros(0, np.int64),
            "ov_pos": session_pos[later],
            "ov_code": code[later],
            "ov_avail": avail[later],
            "ov_sup": sup[later],
        }
        # overlay sorted by session position, so one session's restatements are a slice
        order = np.argsort(session_pos[later], kind="stable")
        for name in ("ov_pos", "ov_code", "ov_avail", "ov_sup"):
            arrays[name] = arrays[name][order]
        overlay = {name: arr[later][order] for name, arr in values.items()}
        return cls(
            symbols=symbols.astype(str),
            sessions=sessions.astype(np.int32),
            arrays=arrays,
            values=values,
            dense=dense,
            overlay=overlay,
        )

    def _named(self) -> dict[str, np.ndarray]:
        out = {"sessions": self.sessions, **self.arrays}
        out.update({f"value:{k}": v for k, v in self.values.items()})
        out.update({f"dense:{k}": v for k, v in self.dense.items()})
        out.update({f"overlay:{k}": v for k, v in self.overlay.items()})
        return out

    def save(self, directory: Path) -> None:
        """Write one binary file and its JSON header to ``directory`` (temp dir + rename)."""
        tmp = directory.with_name(f".{directory.name}.{os.getpid()}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        header: dict[str, object] = {
            "version": VERSION,
            "symbols": self.symbols.tolist(),
            "arrays": {},
        }
        offset = 0
        with (tmp / "index.bin").open("wb") as fh:
            for name, arr in self._named().items():
                arr = np.ascontiguousarray(arr)
                pad = (-offset) % 64
                fh.write(b"\0" * pad)
                offset += pad
                header["arrays"][name] = {  # type: ignore[index]
                    "dtype": arr.dtype.str,
                    "shape": list(arr.shape),
                    "offset": offset,
                }
                fh.write(arr.tobytes())
                offset += arr.nbytes
        (tmp / "index.json").write_text(json.dumps(header), encoding="utf-8")
        try:
            os.replace(tmp, directory)
        except OSError:  # another writer produced the same index first
            shutil.rmtree(tmp, ignore_errors=True)

    @classmethod
    def load(cls, directory: Path) -> BarIndex:
        """Memory-map an index written by :meth:`save` (arrays are read-only views)."""
        header = json.loads((directory / "index.json").read_text(encoding="utf-8"))
        if header.get("version") != VERSION:
            raise ValueError(f"index layout {header.get('version')} is not {VERSION}")
        with (directory / "index.bin").open("rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) if size else b""
        named = {}
        for name, spec in header["arrays"].items():
            dtype = np.dtype(spec["dtype"])
            count = int(np.prod(spec["shape"])) if spec["shape"] else 1
            arr = np.frombuffer(mm, dtype=dtype, count=count, offset=spec["offset"])
            named[name] = arr.reshape(spec["shape"])
        return cls(
            symbols=np.array(header["symbols"], dtype=str),
            sessions=named.pop("sessions"),
            arrays={k: named[k] for k in (*_LONG, *_DENSE)},
            values={k[6:]: v for k, v in named.items() if k.startswith("value:")},
            dense={k[6:]: v for k, v in named.items() if k.startswith("dense:")},
            overlay={k[8:]: v for k, v in named.items() if k.startswith("overlay:")},
            _keep=[mm],
        )

    # ------------------------------------------------------------------ query
    def codes(self, symbols: Sequence[str] | None) -> np.ndarray:
        """Codes of ``symbols`` (all when None); unknown symbols are left out."""
        if symbols is None:
            return np.arange(len(self.symbols), dtype=np.int32)
        if not len(self.symbols):
            return np.zeros(0, dtype=np.int32)
        wanted = np.asarray(symbols, dtype=str)
        pos = np.clip(np.searchsorted(self.symbols, wanted), 0, len(self.symbols) - 1)
        return np.unique(pos[self.symbols[pos] == wanted]).astype(np.int32)

    def select(
        self,
        codes: np.ndarray | None,
        start_day: int | None,
        end_day: int | None,
        as_of_ns: int,
    ) -> np.ndarray:
        """Row numbers (symbol-major order) of the versions known at ``as_of_ns``."""
        if codes is None and start_day is None and end_day is None:
            return np.flatnonzero(self.known_mask(as_of_ns))
        if codes is None:
            codes = np.arange(len(self.symbols), dtype=np.int32)
        lo_day = np.int64(start_day if start_day is not None else -(1 << 31))
        hi_day = np.int64(end_day if end_day is not None else (1 << 31) - 1)
        key = self.arrays["key"]
        c = codes.astype(np.int64) * _SHIFT
        lo = np.searchsorted(key, c + lo_day, "left")
        hi = np.searchsorted(key, c + hi_day, "right")
        lengths = hi - lo
        total = int(lengths.sum())
        if total == 0:
            return np.empty(0, dtype=np.int64)
        starts = np.repeat(lo - np.concatenate(([0], np.cumsum(lengths)[:-1])), lengths)
        rows = starts + np.arange(total)
        known = (self.arrays["available_at"][rows] <= as_of_ns) & (
            self.arrays["superseded_at"][rows] > as_of_ns
        )
        return rows[known]

    def known_mask(self, as_of_ns: int) -> np.ndarray:
        """Boolean mask over all rows: known and not yet superseded at ``as_of_ns``."""
        return (self.arrays["available_at"] <= as_of_ns) & (self.arrays["superseded_at"] > as_of_ns)

    def symbol_array(self) -> pd.api.extensions.ExtensionArray:
        """``symbols`` as a pandas string array (built once; ``take`` it by code)."""
        arr = self.__dict__.get("_symbol_array")
        if arr is None:
            arr = pd.array(self.symbols.tolist(), dtype="str")
            object.__setattr__(self, "_symbol_array", arr)
        return arr

    def row(
        self, day: int, field_name: str, codes: np.ndarray | None, as_of_ns: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Codes and values of one session known at ``as_of_ns`` (one dense row + overlay)."""
        a = self.arrays
        pos = int(np.searchsorted(self.sessions, day))
        if pos >= len(self.sessions) or self.sessions[pos] != day:
            return np.zeros(0, dtype=np.int32), np.zeros(0)
        avail = a["dense_avail"][pos]
        vals = np.array(self.dense[field_name][pos], copy=True)
        lo, hi = np.searchsorted(a["ov_pos"], [pos, pos + 1])
        if hi > lo:
            ov = slice(int(lo), int(hi))
            valid = (a["ov_avail"][ov] <= as_of_ns) & (a["ov_sup"][ov] > as_of_ns)
            vals[a["ov_code"][ov][valid]] = self.overlay[field_name][ov][valid]
        known = avail <= as_of_ns
        picked = np.flatnonzero(known) if codes is None else np.sort(codes)[known[np.sort(codes)]]
        return picked.astype(np.int32), vals[picked]

    def matrices(
        self,
        fields: Sequence[str],
        codes: np.ndarray | None,
        start_day: int | None,
        end_day: int | None,
        as_of_ns: int,
    ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """Session positions, symbol codes and ``session x symbol`` matrices known at T.

        Sessions and symbols are those with at least one row known at ``as_of_ns`` in the
        selection.
        """
        a = self.arrays
        lo = int(np.searchsorted(self.sessions, start_day, "left")) if start_day is not None else 0
        hi = (
            int(np.searchsorted(self.sessions, end_day, "right"))
            if end_day is not None
            else len(self.sessions)
        )
        all_cols = codes is None
        cols = np.arange(len(self.symbols)) if codes is None else np.sort(codes)
        rows = lo + np.flatnonzero(a["row_min"][lo:hi] <= as_of_ns)
        if not all_cols and len(rows):
            sub = a["dense_avail"][rows][:, cols] <= as_of_ns
            rows = rows[sub.any(axis=1)]
        if len(rows):
            if all_cols and lo == 0 and hi == len(self.sessions):
                cols = cols[a["col_min"][cols] <= as_of_ns]
            else:
                sub = a["dense_avail"][rows][:, cols] <= as_of_ns
                cols = cols[sub.any(axis=0)]
        else:
            cols = cols[:0]
        contiguous = len(rows) > 0 and rows[-1] - rows[0] + 1 == len(rows)
        every_col = len(cols) == len(self.symbols)

        def take(mat: np.ndarray) -> np.ndarray:
            part = mat[rows[0] : rows[-1] + 1] if contiguous else mat[rows]
            return np.array(part if every_col else part[:, cols], copy=True)

        # cells present but not yet known at T (rows whose last first-version is after T)
        partial = rows[a["row_max"][rows] > as_of_ns]
        hidden = None
        if len(partial):
            where = np.searchsorted(rows, partial)
            block = a["dense_avail"][partial]
            block = block if every_col else block[:, cols]
            hidden = (where, block > as_of_ns)
        ov = (a["ov_avail"] <= as_of_ns) & (a["ov_sup"] > as_of_ns)
        ov_idx = np.flatnonzero(ov)
        ov_r = np.searchsorted(rows, a["ov_pos"][ov_idx])
        ov_c = np.searchsorted(cols, a["ov_code"][ov_idx])
        inside = (
            (ov_r < len(rows))
            & (ov_c < len(cols))
            & (rows[np.minimum(ov_r, max(len(rows) - 1, 0))] == a["ov_pos"][ov_idx])
            & (cols[np.minimum(ov_c, max(len(cols) - 1, 0))] == a["ov_code"][ov_idx])
            if len(rows) and len(cols)
            else np.zeros(len(ov_idx), dtype=bool)
        )
        ov_idx, ov_r, ov_c = ov_idx[inside], ov_r[inside], ov_c[inside]
        out = {}
        for name in fields:
            if not len(rows) or not len(cols):
                out[name] = np.full((len(rows), len(cols)), np.nan)
                continue
            mat = take(self.dense[name])
            if hidden is not None:
                sub = mat[hidden[0]]
                sub[hidden[1]] = np.nan
                mat[hidden[0]] = sub
            mat[ov_r, ov_c] = self.overlay[name][ov_idx]
            out[name] = mat
        return rows, cols, out


def _ns(col: pd.Series, fill: int | None = None) -> np.ndarray:
    values = pd.Series(pd.to_datetime(col, utc=True)).dt.tz_localize(None)
    out = values.astype("datetime64[ns]").to_numpy().view(np.int64)
    if fill is not None:
        out = np.where(values.isna().to_numpy(), fill, out)
    return np.ascontiguousarray(out, dtype=np.int64)
