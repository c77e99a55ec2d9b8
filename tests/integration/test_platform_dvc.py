"""DVC: the matrix pipeline's params are narrow, metrics and plots show, `dvc exp run -S` works.

Each test runs in a snapshot of the working tree (tracked and untracked, not ignored files)
committed to a fresh git repository, on a small slice of the data.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from py_finance.config import write_params
from tests.conftest import SLICE

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
DVC = str(BIN / "dvc")
# The matrix on two models x two horizons, cheap trees.
MATRIX = [
    *SLICE,
    "matrix.horizons=[1,5]",
    "models.lightgbm.n_estimators=20",
    "models.xgboost.n_estimators=20",
]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("git") is None, reason="git is needed for a DVC repository"),
]


def snapshot(dest: Path) -> Path:
    """Copy the working tree's files (not ignored ones) to ``dest`` and commit them."""
    files = subprocess.run(
        ["git", "ls-files", "-z", "-co", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for raw in files:
        if not raw:
            continue
        rel = raw.decode()
        src = ROOT / rel
        if not src.is_file():
            continue
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dest / rel)
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.invalid"]
    subprocess.run(["git", "init", "-q"], cwd=dest, check=True)
    subprocess.run([*git, "add", "-A"], cwd=dest, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "snapshot"], cwd=dest, check=True)
    return dest


def env_for(clone: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PATH": f"{BIN}:{os.environ['PATH']}",
        "PYTHONWARNINGS": "ignore",
        "GIT_PYTHON_REFRESH": "quiet",
        "PY_FINANCE_ROOT": str(clone),
    }


def dvc(clone: Path, *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [DVC, *args], cwd=clone, env=env_for(clone), capture_output=True, text=True
    )
    assert done.returncode == 0, f"dvc {args}: {done.stdout[-3000:]}{done.stderr[-3000:]}"
    return done


def ran(output: str) -> set[str]:
    return {
        line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage '")
    }


def test_changing_one_models_param_reruns_only_its_train_and_backtest(tmp_path):
    clone = snapshot(tmp_path / "repo")
    write_params(clone / "params.yaml", overrides=MATRIX, config_dir=clone / "conf")
    dvc(clone, "repro", "ingest")
    first = dvc(clone, "repro", "pipelines/matrix/dvc.yaml")
    cells = {f"{m}-{h}" for m in ("lightgbm", "xgboost") for h in (1, 5)}
    assert {f"pipelines/matrix/dvc.yaml:m_train@{c}" for c in cells} <= ran(first.stdout)

    metrics = dvc(clone, "metrics", "show", "--json")
    shown = json.loads(metrics.stdout)
    assert any("matrix/xgboost/h1/metrics.json" in str(k) for k in json.dumps(shown).split('"'))

    write_params(
        clone / "params.yaml",
        overrides=[*MATRIX, "models.xgboost.max_depth=2"],
        config_dir=clone / "conf",
    )
    status = dvc(clone, "status", "pipelines/matrix/dvc.yaml")
    changed = {
        line.strip().rstrip(":")
        for line in status.stdout.splitlines()
        if line and not line.startswith((" ", "\t"))
    }
    assert changed == {
        "pipelines/matrix/dvc.yaml:m_train@xgboost-1",
        "pipelines/matrix/dvc.yaml:m_train@xgboost-5",
    }, status.stdout
    second = dvc(clone, "repro", "pipelines/matrix/dvc.yaml")
    assert ran(second.stdout) == {
        "pipelines/matrix/dvc.yaml:m_train@xgboost-1",
        "pipelines/matrix/dvc.yaml:m_train@xgboost-5",
        "pipelines/matrix/dvc.yaml:m_backtest@xgboost-1",
        "pipelines/matrix/dvc.yaml:m_backtest@xgboost-5",
    }, second.stdout


def test_default_repro_then_metrics_plots_and_exp_run_with_another_model(tmp_path):
    clone = snapshot(tmp_path / "repo")
    write_params(clone / "params.yaml", overrides=SLICE, config_dir=clone / "conf")
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@e.invalid", "commit", "-qam", "slice"],
        cwd=clone,
        check=True,
    )
    first = dvc(clone, "repro")
    assert not any("matrix" in s for s in ran(first.stdout)), "default repro ran the matrix"
    promotion = json.loads((clone / "data/promotion/h5.json").read_text())
    assert {"promoted", "reasons", "evidence"} <= set(promotion)
    assert any(r.startswith("dsr ") for r in promotion["reasons"])

    shown = json.loads(dvc(clone, "metrics", "show", "--json").stdout)
    assert "regime_aware" in json.dumps(shown)
    dvc(clone, "plots", "show", "-o", str(tmp_path / "plots"))
    assert (tmp_path / "plots" / "index.html").exists()

    # The SLICE overrides are in the committed params.yaml only; `-S` recomposes from conf/,
    # so pass the slice again with the model switch.
    sets = [a for o in (*SLICE, "model=xgboost") for a in ("-S", o)]
    exp = dvc(clone, "exp", "run", *sets)
    assert "Running stage 'train'" in exp.stdout
    assert "Running stage 'ingest'" not in exp.stdout
    composed = (clone / "params.yaml").read_text()
    assert "XGBoostModel" in composed.split("models:")[0]
