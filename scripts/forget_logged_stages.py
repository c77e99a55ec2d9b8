"""Make the next `dvc repro` run the stages that log to MLflow again (part of `make clean`).

.venv/bin/python scripts/forget_logged_stages.py [--root .]

`make clean` removes the MLflow store. DVC would then bring the backtest and promote stages
back from its cache without running them (their dependencies did not change): no run, no
registered model, no champion in the new store, while data/promotion/h5.json said promoted.
This removes those stages' outputs from the DVC cache (the objects dvc.lock names, and DVC's
run cache), so `dvc repro` runs them and they log again; the other stages still come back
from the cache. Nothing else of the cache is touched.
"""

from __future__ import annotations

import argparse
import shutil
from collections.abc import Iterator
from pathlib import Path

import yaml

LOCKS = ("dvc.lock", "pipelines/matrix/dvc.lock")
# Stages whose command logs runs or models to MLflow (dvc.yaml, pipelines/matrix/dvc.yaml).
LOGGING_STAGES = ("backtest", "promote", "m_backtest")


def logged_outputs(root: Path) -> Iterator[tuple[str, str]]:
    """``(stage, md5)`` of every output of a logging stage in the project's dvc.lock files."""
    for name in LOCKS:
        lock = root / name
        if not lock.exists():
            continue
        stages = (yaml.safe_load(lock.read_text()) or {}).get("stages") or {}
        for stage, entry in stages.items():
            if stage.split("@", 1)[0] not in LOGGING_STAGES:
                continue
            for out in entry.get("outs") or []:
                if out.get("md5"):
                    yield stage, str(out["md5"])


def forget(root: Path) -> int:
    """Remove the cache objects of the logging stages and the run cache; objects removed."""
    cache = root / ".dvc" / "cache"
    removed = 0
    for _, md5 in logged_outputs(root):
        for base in (cache / "files" / "md5", cache):  # DVC 3's layout, then DVC 2's
            obj = base / md5[:2] / md5[2:]
            if obj.is_file():
                obj.unlink()
                removed += 1
    shutil.rmtree(cache / "runs", ignore_errors=True)
    return removed


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path("."), help="project root")
    args = parser.parse_args(argv)
    removed = forget(args.root.resolve())
    print(
        f"forgot {removed} cached output(s) of the stages that log to MLflow "
        f"({', '.join(LOGGING_STAGES)}): the next `dvc repro` runs them"
    )


if __name__ == "__main__":
    main()
