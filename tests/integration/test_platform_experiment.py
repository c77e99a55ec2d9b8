"""The Hydra experiment app: a multirun of 2 models x 2 horizons is one parent MLflow run with
four child runs whose params line up; the same config and seed reproduce the same metrics."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import SLICE

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "pipelines" / "experiment.py"
SMALL = [
    "data.symbols=[AAPL,MSFT,JNJ,XOM,KO,JPM]",
    "data.start=1996-01-02",
    "data.end=2000-12-29",
    "walk_forward.min_train_sessions=504",
    "regimes.min_train_sessions=252",
    "model.n_estimators=20",
    "portfolio.top_k=3",
]


def run_app(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "GIT_PYTHON_REFRESH": "quiet"}
    done = subprocess.run(
        [
            sys.executable,
            str(APP),
            *args,
            f"tracking.tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}",
            f"tracking.artifact_location={tmp_path / 'mlruns'}",
            "tracking.experiment=platform-test",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def runs(tmp_path: Path) -> list:
    import mlflow

    client = mlflow.MlflowClient(
        tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
        registry_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
    )
    exp = client.get_experiment_by_name("platform-test")
    return client.search_runs([exp.experiment_id], max_results=1000)


@pytest.mark.slow
def test_multirun_of_two_models_by_two_horizons_is_a_parent_and_four_children(tmp_path):
    done = run_app(
        tmp_path,
        "-m",
        "model=lightgbm,xgboost",
        "labels=h1,h5",
        *SMALL,
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
    )
    # the summary table, best first, with the gate's DSR over the trials each job's question
    # holds now (per horizon: 2 models x 2 variants), that count said once under the table
    assert "4 jobs, best first" in done.stdout, done.stdout[-2000:]
    table = done.stdout.split("best first", 1)[1]
    assert "| dsr |" in table.splitlines()[2] and "n_trials" not in table
    assert "DSR deflated for the 4 trials its research question holds now." in table
    assert "DeprecationWarning" not in done.stderr and "Warning:" not in done.stderr
    every = runs(tmp_path)
    parents = [r for r in every if r.data.tags.get("sweep") == "parent"]
    assert len(parents) == 1
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    assert parent.data.metrics["n_jobs"] == 4
    children = [r for r in every if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == 4
    cells = {(c.data.tags["model"], c.data.tags["horizon"]) for c in children}
    assert cells == {(m, h) for m in ("lightgbm", "xgboost") for h in ("1", "5")}
    # Comparable: the shared keys carry the same names in every child, and the swept ones differ.
    common = set.intersection(*(set(c.data.params) for c in children))
    for key in ("labels.horizon", "model._target_", "portfolio.top_k", "data_hash", "seed"):
        assert key in common
    assert {c.data.params["labels.horizon"] for c in children} == {"1", "5"}
    assert all("sharpe" in c.data.metrics and "dsr" in c.data.metrics for c in children)
    assert all(c.data.metrics["n_trials"] >= 2 for c in children)
    # one prefix per name: the skill metrics are oos_*, never oos_oos_*
    assert all("oos_rank_ic" in c.data.metrics for c in children)
    assert not any(k.startswith("oos_oos") for r in every for k in r.data.metrics)
    # the chart of every job's curves and the table, on the parent
    import mlflow

    client = mlflow.MlflowClient(
        tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
        registry_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
    )
    logged = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"compare.png", "compare.md"} <= logged, logged
    # sweeps log runs, never versions of the production model
    assert client.search_registered_models() == []
    # Each child's backtests are its own children, and its dataset is logged with its hash.
    for child in children:
        grand = [r for r in every if r.data.tags.get("mlflow.parentRunId") == child.info.run_id]
        assert {g.data.tags["variant"] for g in grand} == {"baseline", "regime_aware"}
        assert child.data.tags["dataset.store"] == child.data.params["data_hash"]
        assert child.inputs.dataset_inputs[0].dataset.digest == child.data.params["data_hash"]


@pytest.mark.slow
def test_same_config_and_seed_reproduce_metrics_exactly(tmp_path):
    args = [*SLICE, "model.n_estimators=20"]
    run_app(tmp_path, *args, f"hydra.run.dir={tmp_path / 'a'}")
    run_app(tmp_path, *args, f"hydra.run.dir={tmp_path / 'b'}")
    jobs = [r for r in runs(tmp_path) if r.data.tags.get("sweep") == "job"]
    assert len(jobs) == 2
    a, b = (j.data.metrics for j in jobs)
    assert a == b
