"""DVC as a user runs it, from a shell without the virtualenv on PATH: the default pipeline,
experiments that compare, offline plots, recovery from a failed stage, the matrix on demand.

Each test runs in a snapshot of the working tree committed to a fresh git repository, on a
small slice of the data written into conf/ (tests/integration/_clone.py).
"""

from __future__ import annotations

import json
import shutil

import pytest

from tests.integration._clone import run, snapshot

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("git") is None, reason="git is needed for a DVC repository"),
]
DVC = ".venv/bin/dvc"


def ran(output: str) -> set[str]:
    return {
        line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage '")
    }


def _sharpes(shown: list[dict]) -> dict[str, float]:
    """Sharpe of summary.json per revision (baseline commit and experiments)."""
    out: dict[str, float] = {}

    def take(name: str, data: dict) -> None:
        for path, m in (data.get("metrics") or {}).items():
            if path.endswith("summary.json") and "sharpe" in m.get("data", {}):
                out[name] = m["data"]["sharpe"]

    for rev in shown:
        take(rev.get("name") or rev["rev"], rev["data"])
        for exp in rev.get("experiments") or []:
            for r in exp.get("revs") or []:
                take(r.get("name") or r["rev"], r["data"])
    return out


def test_repro_compare_experiments_plots_offline_and_recover_from_a_failed_stage(tmp_path):
    repo = snapshot(tmp_path / "repo")
    first = run(repo, [DVC, "repro"])
    assert not any("matrix" in s for s in ran(first.stdout)), "default repro ran the matrix"
    status = run(repo, [DVC, "status"])
    assert "matrix" not in status.stdout and "up to date" in status.stdout, status.stdout
    # the baseline of the experiments: the slice's results, committed
    run(repo, "git add dvc.lock && git -c user.name=t -c user.email=t@e.invalid commit -qm lock")

    metrics = run(repo, [DVC, "metrics", "show"])
    assert "failed" not in (metrics.stdout + metrics.stderr).lower()
    assert "summary.json" in metrics.stdout and "matrix" not in metrics.stdout
    run(repo, [DVC, "plots", "show", "-o", str(tmp_path / "plots")])
    assert (tmp_path / "plots" / "index.html").exists()
    assert list((tmp_path / "plots").rglob("*.png")), "the equity plot is an image"

    exp = run(repo, [DVC, "exp", "run", "-S", "model=xgboost"])
    assert "Running stage 'train'" in exp.stdout and "Running stage 'ingest'" not in exp.stdout
    shown = json.loads(run(repo, [DVC, "exp", "show", "--json"]).stdout)
    sharpes = _sharpes(shown)
    assert len(sharpes) >= 3, sharpes  # workspace, the baseline commit, the experiment
    assert all(isinstance(v, float) for v in sharpes.values()), sharpes
    table = run(repo, ["make", "--no-print-directory", "exps"]).stdout
    assert "xgboost" in table and "lightgbm" not in table.split("xgboost")[0].splitlines()[0]
    assert max(len(line) for line in table.splitlines()) <= 120, table

    # a bad value reaches params.yaml through -S; the stage says how to get back
    bad = run(repo, [DVC, "exp", "run", "-S", "portfolio.top_k=abc"], check=False)
    assert bad.returncode != 0
    said = bad.stdout + bad.stderr
    assert "error: config key 'portfolio.top_k'" in said and "dvc checkout" in said, said
    run(repo, "git checkout params.yaml dvc.lock && .venv/bin/dvc checkout")
    assert "up to date" in run(repo, [DVC, "status"]).stdout


def test_the_matrix_stays_out_until_init_and_one_models_param_reruns_only_its_cells(tmp_path):
    repo = snapshot(tmp_path / "repo")
    run(repo, [DVC, "repro", "ingest"])
    assert "matrix" not in run(repo, [DVC, "status"]).stdout
    run(repo, [".venv/bin/python", "pipelines/matrix_stage.py", "init"])
    first = run(repo, [DVC, "repro", "pipelines/matrix/dvc.yaml"])
    cells = {f"{m}-{h}" for m in ("lightgbm", "xgboost") for h in (1, 5)}
    assert {f"pipelines/matrix/dvc.yaml:m_train@{c}" for c in cells} <= ran(first.stdout)
    shown = run(repo, [DVC, "metrics", "show", "--json"]).stdout
    assert "matrix/xgboost/h1/summary.json" in shown

    run(
        repo,
        [
            ".venv/bin/python",
            "-m",
            "py_finance.config",
            "params.yaml",
            "models.xgboost.max_depth=2",
        ],
    )
    status = run(repo, [DVC, "status", "pipelines/matrix/dvc.yaml"])
    changed = {
        line.strip().rstrip(":")
        for line in status.stdout.splitlines()
        if line and not line.startswith((" ", "\t"))
    }
    assert changed == {
        "pipelines/matrix/dvc.yaml:m_train@xgboost-1",
        "pipelines/matrix/dvc.yaml:m_train@xgboost-5",
    }, status.stdout
    second = run(repo, [DVC, "repro", "pipelines/matrix/dvc.yaml"])
    assert ran(second.stdout) == {
        "pipelines/matrix/dvc.yaml:m_train@xgboost-1",
        "pipelines/matrix/dvc.yaml:m_train@xgboost-5",
        "pipelines/matrix/dvc.yaml:m_backtest@xgboost-1",
        "pipelines/matrix/dvc.yaml:m_backtest@xgboost-5",
    }, second.stdout
