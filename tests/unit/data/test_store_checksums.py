"""Every store file a read uses is checked against its sha256 in manifest.json first."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import py_finance.data.store as store_mod
from py_finance.data.calendar import sessions
from py_finance.data.store import Store
from py_finance.errors import DataError

LATE = pd.Timestamp("2030-01-01", tz="UTC")


def _bars(n_sessions: int = 600) -> pd.DataFrame:
    rng = np.random.default_rng(5)
    days = sessions("2018-01-02", "2021-12-31")[:n_sessions]
    frames = []
    for i, sym in enumerate(("AAA", "BBB", "CCC")):
        close = 10.0 * (i + 1) * np.exp(np.cumsum(rng.normal(0, 0.01, len(days))))
        frames.append(
            pd.DataFrame(
                {
                    "symbol": sym,
                    "session": days,
                    "open": close,
                    "high": close * 1.01,
                    "low": close * 0.99,
                    "close": close,
                    "adj_close": close,
                    "volume": rng.integers(1_000, 10_000, len(days)).astype(float),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def _fresh_process() -> None:
    """Forget what this process has read and verified, as a new process would."""
    for cache in (
        store_mod._INDEXES,
        store_mod._VERSIONS,
        store_mod._MANIFESTS,
        store_mod._VERIFIED,
        store_mod._UNVERIFIED_WARNED,
    ):
        cache.clear()


@pytest.fixture()
def store(tmp_path, monkeypatch) -> Store:
    monkeypatch.chdir(tmp_path)
    store = Store(tmp_path / "data" / "store")
    store.write_bars(_bars())
    sectors = pd.DataFrame(
        {"symbol": ["AAA", "BBB", "CCC"], "name": ["A", "B", "C"], "sector": ["X", "Y", "X"]}
    )
    store.write_sectors(sectors, available_at=pd.Timestamp("2018-01-02", tz="UTC"))
    _fresh_process()
    return store


def _file(store: Store, kind: str) -> Path:
    if kind == "part":
        return next((store.root / "bars").glob("part-*.parquet"))
    if kind == "sectors":
        return store.root / "reference" / "sectors.parquet"
    return next((store.root / "_index").glob("bars-*")) / kind


def _read(store: Store, kind: str) -> object:
    if kind == "sectors":
        return store.sectors(LATE)
    return store.bars(None, None, None, LATE)


def _damage(path: Path, offset: int, new: bytes) -> None:
    """Overwrite bytes in place, keeping the size and the modification time (bit rot)."""
    st = path.stat()
    with path.open("r+b") as fh:
        fh.seek(offset)
        fh.write(new)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_size == st.st_size


def test_a_clean_store_records_every_data_file_and_reads(store):
    recorded = set(store.manifest()["checksums"])
    on_disk = {
        p.relative_to(store.root).as_posix()
        for p in store.root.rglob("*")
        if p.is_file() and p.name not in ("manifest.json", "meta.json", ".lock")
    }
    assert recorded == on_disk
    assert store.manifest()["format"] == 3
    assert len(_read(store, "part")) == 3 * 600
    assert list(_read(store, "sectors").index) == ["AAA", "BBB", "CCC"]


@pytest.mark.parametrize("kind", ["part", "index.bin", "index.json", "sectors"])
@pytest.mark.parametrize("where", ["start", "middle", "footer"])
def test_one_flipped_byte_in_any_store_file_is_named(store, kind, where):
    path = _file(store, kind)
    size = path.stat().st_size
    offset = {"start": 0, "middle": size // 2, "footer": size - 10}[where]
    byte = path.read_bytes()[offset]
    _damage(path, offset, bytes([byte ^ 0x01]))
    with pytest.raises(DataError) as err:
        _read(store, kind)
    message = str(err.value)
    rel = path.relative_to(store.root.parent.parent).as_posix()
    assert message.startswith(f"{rel} is corrupt (sha256 mismatch")
    assert "`.venv/bin/dvc repro -f ingest`" in message
    assert "`.venv/bin/dvc checkout --force data/store`" in message


@pytest.mark.parametrize("kind", ["part", "index.bin"])
def test_4kb_zeroed_inside_a_store_file_keeping_its_size_is_detected(store, kind):
    path = _file(store, kind)
    assert path.stat().st_size > 3 * 4096
    _damage(path, 4096, b"\0" * 4096)
    with pytest.raises(DataError, match=rf"{path.name} is corrupt"):
        _read(store, kind)


def test_a_corrupt_part_is_caught_by_sql_and_by_the_next_ingest(store):
    path = _file(store, "part")
    _damage(path, path.stat().st_size // 2, b"\0" * 64)
    with pytest.raises(DataError, match=path.name):
        store.sql()
    with pytest.raises(DataError, match=path.name):
        store.write_bars(_bars())


def test_a_missing_part_is_named(store):
    path = _file(store, "part")
    path.unlink()
    with pytest.raises(DataError, match=rf"{path.name} is listed in the store's snapshot"):
        _read(store, "part")


def test_each_file_is_hashed_once_per_process(store, monkeypatch):
    calls: list[Path] = []
    original = store_mod.sha256_file

    def counting(path):
        calls.append(Path(path))
        return original(path)

    monkeypatch.setattr(store_mod, "sha256_file", counting)
    _read(store, "part")
    first = len(calls)
    assert first >= 3  # the part and the index's two files
    store_mod._INDEXES.clear()  # a second Store in the same process, index reloaded
    Store(store.root).bars(["AAA"], None, None, LATE)
    assert len(calls) == first


def test_an_old_manifest_is_size_checked_with_a_warning_until_the_next_ingest(store, caplog):
    manifest_path = store.root / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    del manifest["checksums"]
    manifest["format"] = 2
    manifest_path.write_text(json.dumps(manifest))
    _fresh_process()
    with caplog.at_level(logging.WARNING, logger="py_finance.data.store"):
        assert len(_read(store, "part")) == 3 * 600
    assert "records no checksums" in caplog.text and "re-run the ingest" in caplog.text
    # a no-op ingest adds no rows but records the checksums
    assert store.write_bars(_bars()).rows_added == 0
    upgraded = json.loads(manifest_path.read_text())
    assert upgraded["format"] == 3
    assert set(upgraded["checksums"]) >= {
        p.relative_to(store.root).as_posix() for p in (store.root / "bars").glob("*.parquet")
    }
