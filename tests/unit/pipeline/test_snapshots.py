"""Sweep jobs share one data snapshot per data config, ingested once."""

from __future__ import annotations

import multiprocessing

from py_finance.config import build, compose
from py_finance.pipeline import research
from py_finance.pipeline.context import Context
from py_finance.pipeline.snapshots import config_key, shared_store
from tests.conftest import SLICE


def test_jobs_of_one_data_config_read_one_snapshot_ingested_once(
    small_ctx, tmp_path, monkeypatch
) -> None:
    calls = []
    ingest = research.ingest
    monkeypatch.setattr(research, "ingest", lambda ctx: calls.append(ctx) or ingest(ctx))
    snaps = tmp_path / "snapshots"
    job_a = Context(small_ctx.settings, tmp_path / "job-a")
    other_model = build(compose([*SLICE, "model=xgboost", "labels=h1"]))
    job_b = Context(other_model, tmp_path / "job-b")
    ctx_a, ingested_a = shared_store(job_a, snaps)
    ctx_b, ingested_b = shared_store(job_b, snaps)
    assert (ingested_a, ingested_b) == (True, False)
    assert len(calls) == 1
    assert ctx_a.path("store") == ctx_b.path("store")
    # content-addressed: the folder is the store's own fingerprint
    assert ctx_a.path("store").parent.name == ctx_a.store.fingerprint()
    assert ctx_a.store.meta()["symbols"] == list(small_ctx.settings.data.symbols)
    assert not (tmp_path / "job-a" / "data").exists()  # nothing ingested in the job folder
    # a different data config is a different snapshot
    fewer = build(compose([*SLICE, "data.symbols=[AAPL,MSFT,KO]"]))
    assert config_key(Context(fewer, tmp_path / "job-c")) != config_key(job_a)
    ctx_c, ingested_c = shared_store(Context(fewer, tmp_path / "job-c"), snaps)
    assert ingested_c and ctx_c.path("store") != ctx_a.path("store")


_SHARED: dict = {}  # inherited by the forked jobs (settings hold a closure: not picklable)


def _claim(i: int) -> tuple[str, bool]:
    root, snaps = _SHARED["root"], _SHARED["snaps"]
    ctx, ingested = shared_store(Context(_SHARED["settings"], root / f"job-{i}"), snaps)
    return str(ctx.path("store")), ingested


def test_jobs_starting_together_ingest_the_snapshot_once(small_ctx, tmp_path) -> None:
    _SHARED.update(settings=small_ctx.settings, root=tmp_path, snaps=tmp_path / "snapshots")
    try:
        with multiprocessing.get_context("fork").Pool(3) as pool:
            out = pool.map(_claim, range(3))
    finally:
        _SHARED.clear()
    assert len({path for path, _ in out}) == 1
    assert sum(ingested for _, ingested in out) == 1
