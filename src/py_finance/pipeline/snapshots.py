"""Data snapshots shared by the jobs of a sweep: ingested once, addressed by their content.

A sweep's jobs usually differ in model, horizon or policy but not in data, so ingesting per
job repeats the same work N times (and N vendor downloads). :func:`shared_store` ingests the
configured data once into ``<snapshots>/<fingerprint>/store`` (the fingerprint is the store's
own content hash, :meth:`~py_finance.data.store.Store.fingerprint`) and points each job's
context at it; ``<snapshots>/by-config/<key>`` maps the data config to its snapshot. The
first job to need a snapshot ingests it under a file lock while the others wait, so a
snapshot is written once even when jobs start together on several machines sharing the
folder. Jobs only read a snapshot; the store's checksums are verified on every read.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

from py_finance.pipeline.context import Context

log = logging.getLogger(__name__)

SNAPSHOTS_ENV = "PY_FINANCE_SNAPSHOTS"


def snapshot_dir(root: Path) -> Path:
    """Where shared snapshots live: ``$PY_FINANCE_SNAPSHOTS``, else ``<root>/outputs/snapshots``.

    On a cluster, a folder every node mounts (the sweep folder's file system).
    """
    env = os.environ.get(SNAPSHOTS_ENV)
    return Path(env) if env else Path(root) / "outputs" / "snapshots"


def _files_digest(path: Path) -> str:
    """Names, sizes and modification times of a files source's directory."""
    h = hashlib.sha256()
    for p in sorted(path.rglob("*")):
        if p.is_file():
            st = p.stat()
            h.update(f"{p.relative_to(path)}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _ingest_code_digest() -> str:
    """Hash of the code that ingests (``py_finance.data``): a change makes new snapshots."""
    import py_finance.data as package

    h = hashlib.sha256()
    root = Path(package.__file__).parent
    for p in sorted(root.rglob("*.py")):
        h.update(str(p.relative_to(root)).encode())
        h.update(p.read_bytes())
    return h.hexdigest()


def config_key(ctx: Context) -> str:
    """Hash of what determines the ingested data (config, files it names, ingest code)."""
    from omegaconf import OmegaConf

    raw: Any = ctx.settings.raw
    data = OmegaConf.to_container(raw.data, resolve=True) if raw is not None else {}
    parts: dict[str, Any] = {"data": data, "code": _ingest_code_digest()}
    cfg = ctx.settings.data
    options = dict(cfg.options or {})
    if "path" in options:
        parts["files"] = _files_digest(ctx.root / str(options["path"]))
    if cfg.universe:
        parts["universe"] = hashlib.sha256((ctx.root / cfg.universe).read_bytes()).hexdigest()
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _with_store(ctx: Context, store: Path) -> Context:
    paths = {**ctx.settings.paths, "store": str(store)}
    return dataclasses.replace(ctx, settings=dataclasses.replace(ctx.settings, paths=paths))


def shared_store(ctx: Context, snapshots: Path | None = None) -> tuple[Context, bool]:
    """``ctx`` reading the shared snapshot of its data config, ingested now if missing.

    Returns the context and whether this call ingested the snapshot.
    """
    from filelock import FileLock

    from py_finance.data.store import Store
    from py_finance.io import atomic_path
    from py_finance.pipeline import research

    base = snapshots or snapshot_dir(ctx.root)
    key = config_key(ctx)
    index = base / "by-config" / key
    (base / "by-config").mkdir(parents=True, exist_ok=True)
    with FileLock(str(base / "by-config" / f"{key}.lock")):
        if index.exists():
            store = base / index.read_text().strip() / "store"
            if (store / "meta.json").exists():
                log.info("data snapshot %s (shared, not ingested again)", store.parent.name)
                return _with_store(ctx, store), False
            log.warning("data snapshot %s is incomplete: ingesting it again", store)
        tmp = base / f"tmp-{key}-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        research.ingest(_with_store(ctx, tmp / "store"))
        fingerprint = Store(tmp / "store").fingerprint()
        final = base / fingerprint
        if final.exists():  # the same content from another config (or an earlier run)
            shutil.rmtree(tmp)
        else:
            tmp.rename(final)
        with atomic_path(index) as out:
            out.write_text(fingerprint)
        log.info("data snapshot %s ingested (shared by every job of this config)", fingerprint)
        return _with_store(ctx, final / "store"), True
