"""Store safety across processes: kill -9 mid-ingest, concurrent ingests, resume."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

import py_finance.data.store as store_mod
from py_finance.data.ingest import ingest_bars
from py_finance.data.sources.bundled import BundledSource
from py_finance.data.store import Store

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONWARNINGS": "ignore", "PYTHONPATH": str(ROOT)}
LATE = pd.Timestamp("2030-01-01", tz="UTC")
START, END = dt.date(2000, 1, 3), dt.date(2000, 12, 29)

CHILD = r"""
import datetime as dt, pathlib, sys, time
import py_finance.data.store as st
root, ready, point = sys.argv[1], pathlib.Path(sys.argv[2]), sys.argv[3]
if point == "before-commit":
    original = st.write_json
    def stall(obj, path):
        if str(path).endswith("manifest.json"):
            ready.write_text("parts written, manifest not yet")
            time.sleep(600)
        return original(obj, path)
    st.write_json = stall
elif point == "mid-part":
    import pyarrow.parquet as pq
    original = pq.write_table
    def stall(table, where, **kw):
        original(table.slice(0, max(1, table.num_rows // 2)), where, **kw)
        ready.write_text("half a part on disk")
        time.sleep(600)
    pq.write_table = stall
from py_finance.data.ingest import ingest_bars
from py_finance.data.sources.bundled import BundledSource
from py_finance.data.store import Store
ingest_bars(Store(root), BundledSource(), sys.argv[4].split(","), dt.date(2000, 1, 3),
            dt.date(2000, 12, 29), progress=False, batch_size=5)
"""


def _forget_caches() -> None:
    store_mod._INDEXES.clear()
    store_mod._VERSIONS.clear()
    store_mod._MANIFESTS.clear()


def _state(root: Path) -> tuple[str, pd.DataFrame, bytes]:
    _forget_caches()
    store = Store(root)
    return (
        store.fingerprint(),
        store.bars(None, None, None, LATE),
        (root / "manifest.json").read_bytes(),
    )


@pytest.mark.parametrize("point", ["before-commit", "mid-part"])
def test_kill_9_mid_ingest_leaves_the_previous_snapshot_intact(tmp_path, point):
    root = tmp_path / "store"
    ingest_bars(Store(root), BundledSource(), ["AAPL"], START, END, progress=False)
    before = _state(root)
    ready = tmp_path / "ready"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(root), str(ready), point, "MSFT,KO"],
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 90
    while not ready.exists():
        assert child.poll() is None, child.stderr.read() if child.stderr else ""
        assert time.monotonic() < deadline, "child never reached the kill point"
        time.sleep(0.05)
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL

    fp, bars, manifest = _state(root)
    leftovers = list(root.rglob(".*.tmp"))
    assert fp == before[0] and manifest == before[2]
    pd.testing.assert_frame_equal(bars, before[1])
    assert bars["symbol"].unique().tolist() == ["AAPL"]

    # the next ingest takes the lock the dead process held, and completes
    report = ingest_bars(Store(root), BundledSource(), ["MSFT", "KO"], START, END, progress=False)
    assert report.rows_added["bars"] > 0
    _forget_caches()
    assert Store(root).symbols() == ["AAPL", "KO", "MSFT"]
    assert not [p for p in leftovers if p.exists()]  # swept by the next writer
    again = ingest_bars(Store(root), BundledSource(), ["MSFT", "KO"], START, END, progress=False)
    assert again.rows_added.get("bars", 0) == 0


def test_two_ingests_at_once_both_land(tmp_path):
    root = tmp_path / "store"
    script = ROOT / "scripts" / "ingest_bars.py"
    common = [
        "--start-date",
        "2000-01-03",
        "--end-date",
        "2000-12-29",
        "--store",
        str(root),
        "--no-progress",
        "--batch-size",
        "1",
    ]
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), *common, "--symbols", *syms],
            env=ENV,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for syms in (["AAPL", "MSFT", "KO"], ["JNJ", "XOM", "PG"])
    ]
    for p in procs:
        _, err = p.communicate(timeout=180)
        assert p.returncode == 0, err
    _forget_caches()
    store = Store(root)
    assert store.symbols() == ["AAPL", "JNJ", "KO", "MSFT", "PG", "XOM"]
    assert store.bars(None, None, None, LATE).groupby("symbol").size().nunique() == 1
