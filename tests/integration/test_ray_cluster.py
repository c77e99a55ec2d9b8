"""Sweeps and walk-forward folds on a two-node Ray cluster on loopback.

`scripts/ray_cluster.sh` starts a head and a worker node (each `ray start` with its own temp
folder, one CPU and a resource naming it); `scripts/services.sh mlflow` the PostgreSQL-backed
MLflow server with artifact proxying and the Optuna database. The tests check that a sweep's
jobs run on both nodes with the joblib launcher's results, that their artifacts come back
through the server, that a node killed mid-sweep loses and repeats no trial, and that
walk-forward folds as Ray tasks give the local predictions bit for bit.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.conftest import SLICE

ROOT = Path(__file__).resolve().parents[2]
CLUSTER = ROOT / "scripts" / "ray_cluster.sh"
EXPERIMENT_APP = ROOT / "pipelines" / "experiment.py"
# Small jobs: the slice, 20 trees.
JOB = [o for o in SLICE if not o.startswith("model.learning_rate")] + ["model.n_estimators=20"]


def _free_block(width: int = 5) -> int:
    """A port p with p .. p + width - 1 free on loopback (the head and its agents' ports)."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = int(s.getsockname()[1])
        if base + width >= 65535:
            continue
        ok = True
        for port in range(base, base + width):
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    ok = False
                    break
        if ok:
            return base
    raise RuntimeError("no free block of ports")


@pytest.fixture()
def ray_cluster():
    tag = uuid.uuid4().hex[:6]
    env = {
        **os.environ,
        "PY_FINANCE_RAY_PORT": str(_free_block()),
        "PY_FINANCE_RAY_DIR": f"/tmp/pfr-{tag}",
        "PY_FINANCE_VENV_BIN": str(Path(sys.executable).parent),
    }
    started = subprocess.run(
        ["bash", str(CLUSTER), "start"], env=env, capture_output=True, text=True, timeout=300
    )
    try:
        assert started.returncode == 0, f"{started.stdout}\n{started.stderr}"
        address = started.stdout.strip().rsplit("=", 1)[1]
        yield env, address
    finally:
        subprocess.run(["bash", str(CLUSTER), "stop"], env=env, capture_output=True, timeout=120)
        shutil.rmtree(env["PY_FINANCE_RAY_DIR"], ignore_errors=True)


def _nodes(address: str) -> dict[str, str]:
    """``{"head": node id, "worker": node id}`` of the live nodes, by their resource."""
    code = (
        "import json, sys, ray\n"
        "ray.init(address=sys.argv[1], logging_level='ERROR', log_to_driver=False)\n"
        "print(json.dumps({k[5:]: n['NodeID'] for n in ray.nodes() if n['Alive']"
        " for k in n['Resources'] if k.startswith('node_') and ':' not in k}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, address], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def _app(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(EXPERIMENT_APP), *args],
        cwd=ROOT,
        env={**env, "PYTHONWARNINGS": "ignore", "GIT_PYTHON_REFRESH": "quiet"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _jobs(server: str, experiment: str) -> list:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=server, registry_uri=server)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return []
    runs = client.search_runs([exp.experiment_id], "tags.sweep = 'job'", max_results=1000)
    return list(runs)


def _key(run) -> tuple[str, str]:
    return run.data.tags["model"], run.data.params["portfolio.top_k"]


@pytest.mark.slow
def test_a_sweep_runs_on_both_nodes_like_the_joblib_launcher_and_serves_its_artifacts(
    services, ray_cluster, tmp_path
):
    env, urls = services
    _, address = ray_cluster
    server = urls["MLFLOW_TRACKING_URI"]
    nodes = _nodes(address)
    assert set(nodes) == {"head", "worker"}
    grid = ["model=lightgbm,xgboost", "portfolio.top_k=3,4"]
    run_env = {
        **env,
        "RAY_ADDRESS": address,
        "PY_FINANCE_SNAPSHOTS": str(tmp_path / "snapshots"),
        "MLFLOW_HTTP_REQUEST_TIMEOUT": "60",
    }
    experiments = {"ray": f"ray-{uuid.uuid4().hex[:6]}", "joblib": f"jl-{uuid.uuid4().hex[:6]}"}
    launchers = {"ray": "hydra/launcher=ray", "joblib": "hydra/launcher=parallel"}
    for name in ("ray", "joblib"):
        proc = _app(
            [
                *JOB,
                "-m",
                launchers[name],
                *grid,
                f"tracking.tracking_uri={server}",
                f"tracking.experiment={experiments[name]}",
                f"hydra.sweep.dir={tmp_path / name}",
            ],
            run_env,
        )
        out = proc.communicate(timeout=1500)[0]
        assert proc.returncode == 0, out[-5000:]

    on_ray = {_key(r): r for r in _jobs(server, experiments["ray"])}
    on_joblib = {_key(r): r for r in _jobs(server, experiments["joblib"])}
    assert len(on_ray) == len(on_joblib) == 4
    # Jobs ran on both nodes, and say so.
    assert {r.data.tags["ray.node_id"] for r in on_ray.values()} == set(nodes.values())
    # The same configurations give the same results on either launcher.
    assert on_ray.keys() == on_joblib.keys()
    for key, run in on_ray.items():
        for metric in ("sharpe", "cagr", "max_drawdown", "oos_rank_ic"):
            assert run.data.metrics[metric] == pytest.approx(
                on_joblib[key].data.metrics[metric], rel=1e-9, abs=1e-12
            ), (key, metric)
        assert run.info.status == "FINISHED"
        assert run.data.tags["sweep.attempt"] == "1"

    # The artifacts went to the server: a process in an empty folder, knowing only the
    # server's URL, reads a backtest chart of a job that ran on the worker node.
    worker_job = next(r for r in on_ray.values() if r.data.tags["ray.node_id"] == nodes["worker"])
    code = (
        "import sys, tempfile\n"
        "from mlflow import MlflowClient\n"
        "c = MlflowClient(tracking_uri=sys.argv[1])\n"
        "exp = c.get_run(sys.argv[2]).info.experiment_id\n"
        "kids = c.search_runs([exp], f\"tags.mlflow.parentRunId = '{sys.argv[2]}'\")\n"
        "run = kids[0].info\n"
        "assert run.artifact_uri.startswith('mlflow-artifacts:'), run.artifact_uri\n"
        "path = c.download_artifacts(run.run_id, 'equity.png', tempfile.mkdtemp())\n"
        "data = open(path, 'rb').read()\n"
        "assert data[:8] == bytes.fromhex('89504e470d0a1a0a'), data[:8]\n"
        "print(run.artifact_uri, len(data))\n"
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    read = subprocess.run(
        [sys.executable, "-c", code, server, worker_job.info.run_id],
        cwd=elsewhere,
        env={"PATH": os.environ["PATH"], "HOME": str(elsewhere)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert read.returncode == 0, read.stderr[-3000:]
    assert int(read.stdout.split()[-1]) > 1000


@pytest.mark.slow
def test_a_node_killed_mid_sweep_repeats_and_loses_no_trial(services, ray_cluster, tmp_path):
    import optuna

    env, urls = services
    cluster_env, address = ray_cluster
    server = urls["MLFLOW_TRACKING_URI"]
    storage = urls["PY_FINANCE_OPTUNA_STORAGE"]
    nodes = _nodes(address)
    study = f"kill-{uuid.uuid4().hex[:6]}"
    experiment = f"kill-{uuid.uuid4().hex[:6]}"
    n_trials = 4
    optuna.create_study(study_name=study, storage=storage, direction="maximize")
    proc = _app(
        [
            *JOB,
            "-m",
            "hydra/launcher=ray",
            "hydra/sweeper=tpe",
            f"hydra.sweeper.storage={storage}",
            f"hydra.sweeper.study_name={study}",
            f"hydra.sweeper.n_trials={n_trials}",
            "hydra.sweeper.n_jobs=2",  # two trials at a time: one on each node
            f"tracking.tracking_uri={server}",
            f"tracking.experiment={experiment}",
            f"hydra.sweep.dir={tmp_path / 'sweep'}",
        ],
        {
            **env,
            "RAY_ADDRESS": address,
            "PY_FINANCE_SNAPSHOTS": str(tmp_path / "snapshots"),
            "PY_FINANCE_WORKER": "0",
            "MLFLOW_HTTP_REQUEST_TIMEOUT": "60",
        },
    )
    try:
        # Wait until a job is running on the worker node, then kill that node.
        deadline = time.monotonic() + 600
        victim = None
        while victim is None and time.monotonic() < deadline and proc.poll() is None:
            running = [
                r
                for r in _jobs(server, experiment)
                if r.data.tags.get("ray.node_id") == nodes["worker"] and r.info.status == "RUNNING"
            ]
            victim = running[0] if running else None
            time.sleep(1)
        assert victim is not None, "no job ran on the worker node"
        time.sleep(3)
        killed = subprocess.run(
            ["bash", str(CLUSTER), "kill-worker"], env=cluster_env, capture_output=True, timeout=60
        )
        assert killed.returncode == 0, killed.stderr
        out = proc.communicate(timeout=1800)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out[-5000:]

    # Every trial exactly once in the study ...
    trials = optuna.load_study(study_name=study, storage=storage).get_trials(deepcopy=False)
    assert sorted(t.number for t in trials) == list(range(n_trials))
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    assert len({tuple(sorted(t.params.items())) for t in trials}) == n_trials
    # ... and in MLflow: one run per job, the killed one continued by its retry.
    jobs = _jobs(server, experiment)
    assert len(jobs) == n_trials
    assert len({r.data.tags["sweep.job_key"] for r in jobs}) == n_trials
    assert all(r.info.status == "FINISHED" for r in jobs)
    again = [r for r in jobs if r.data.tags["sweep.attempt"] != "1"]
    assert [r.info.run_id for r in again] == [victim.info.run_id]
    assert again[0].data.tags["ray.node_id"] == nodes["head"]
    assert sorted(r.data.metrics["sharpe"] for r in jobs) == pytest.approx(
        sorted(t.value for t in trials)
    )
    # The sweep's summary says what was retried.
    assert "retried (their worker was lost)" in out
    from mlflow import MlflowClient

    parent = MlflowClient(tracking_uri=server).get_run(jobs[0].data.tags["mlflow.parentRunId"])
    assert parent.data.metrics["n_retried"] == 1


@pytest.mark.slow
def test_walk_forward_folds_on_ray_equal_the_local_run_bit_for_bit(ray_cluster, monkeypatch):
    import pandas as pd
    import ray

    from py_finance.models.tabular import LightGBMModel
    from py_finance.models.walk_forward import WalkForwardConfig, walk_forward
    from tests.unit.models.test_walk_forward import _panel

    _, address = ray_cluster
    monkeypatch.setenv("RAY_ADDRESS", address)
    feats, labels = _panel(0.5, 8)
    # A partial of an installed class: Ray's workers import it (a test's lambda they could not).
    model = functools.partial(
        LightGBMModel, n_estimators=20, num_leaves=7, min_child_samples=50, n_jobs=1
    )
    results = {}
    try:
        for executor in ("local", "ray"):
            cfg = WalkForwardConfig(refit="quarterly", min_train_sessions=250, executor=executor)
            results[executor] = walk_forward(
                feats, labels, "fwd_ret_1", model, cfg, progress=False, final=True
            )
        assert ray.is_initialized()
        nodes = {n["NodeID"] for n in ray.nodes() if n["Alive"]}
    finally:
        ray.shutdown()
    local, remote = results["local"], results["ray"]
    assert len(nodes) == 2 and len(local.folds) > 3
    pd.testing.assert_frame_equal(local.predictions, remote.predictions, check_exact=True)
    pd.testing.assert_frame_equal(local.fold_metrics, remote.fold_metrics, check_exact=True)
    assert (
        local.final_model.booster_.booster_.dump_model()["tree_info"]
        == remote.final_model.booster_.booster_.dump_model()["tree_info"]
    )
