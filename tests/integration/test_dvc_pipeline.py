"""`dvc repro` on a clean clone runs every stage; a second `dvc repro` does nothing, quickly."""

from __future__ import annotations

import os
import re
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


@pytest.mark.slow
def test_make_run_on_a_fresh_clone_leaves_git_status_clean(tmp_path):
    """The committed dvc.lock is exactly what `make run` produces: byte-identical outputs."""
    from tests.integration._clone import link_venv, run

    if shutil.which("git") is None or shutil.which("make") is None:
        pytest.skip("git and make are needed")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    link_venv(clone)  # installed already: make must not reinstall this clone into it
    done = run(clone, ["make", "run"], timeout=1800)
    assert "| Sharpe (`sharpe`) |" in done.stdout
    status = run(clone, ["git", "status", "--porcelain"]).stdout
    assert status == "", f"make run changed tracked files:\n{status}"
    diff = run(clone, ["git", "diff", "--stat"]).stdout
    assert diff == ""
    # README says its table was "measured by `make run` on a fresh clone of this commit"
    readme = (clone / "README.md").read_text()
    assert _table(readme) == _table(done.stdout), "README's results table is not make run's"
    ic, turnover = _figures(done.stdout)
    assert f"Out-of-sample rank IC {ic:.3f}" in readme, f"README's rank IC is not {ic:.3f}"
    assert f"turnover {turnover[0]:.1f} (Baseline) and {turnover[1]:.1f}" in readme


def _table(text: str) -> list[str]:
    """The rows of the results table (from its `| Metric |` header to the first other line)."""
    lines = text.splitlines()
    start = next(i for i, x in enumerate(lines) if x.startswith("| Metric | Baseline"))
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        rows.append(line.strip())
    return rows


def _figures(printed: str) -> tuple[float, tuple[float, float]]:
    """Rank IC and the two strategies' annual turnover as `make run` prints them."""
    ic = re.search(r"Out-of-sample rank IC (-?[0-9.]+)", printed)
    turnover = re.search(
        r"turnover: Baseline ([0-9]+\.[0-9]+), Regime-Aware ([0-9]+\.[0-9]+)", printed
    )
    assert ic and turnover, printed[-2000:]
    return float(ic.group(1)), (float(turnover.group(1)), float(turnover.group(2)))
