"""`dvc repro` on a clean clone runs every stage; a second `dvc repro` does nothing, quickly."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from py_finance.config import write_params
from tests.conftest import SLICE

ROOT = Path(__file__).resolve().parents[2]
DVC = str(Path(sys.executable).parent / "dvc")


@pytest.mark.slow
def test_dvc_repro_twice_second_run_changes_nothing(tmp_path):
    if shutil.which("git") is None:
        pytest.skip("git is needed for a clone")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    # The committed pipeline with a small slice of the data, composed as DVC composes it.
    write_params(clone / "params.yaml", overrides=SLICE, config_dir=clone / "conf")
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "PYTHONWARNINGS": "ignore",
        "GIT_PYTHON_REFRESH": "quiet",
        "PY_FINANCE_ROOT": str(clone),
    }
    first = subprocess.run([DVC, "repro"], cwd=clone, env=env, capture_output=True, text=True)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    stages = ("ingest", "features", "labels", "regimes", "train", "backtest", "report", "promote")
    for stage in stages:
        assert f"Running stage '{stage}'" in first.stdout, stage
    assert (clone / "data/promotion/h5.json").exists()

    started = time.perf_counter()
    second = subprocess.run([DVC, "repro"], cwd=clone, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    assert second.returncode == 0, second.stderr[-3000:]
    assert "Running stage" not in second.stdout
    assert "up to date" in second.stdout
    assert elapsed < 5.0, f"second dvc repro took {elapsed:.1f}s"
