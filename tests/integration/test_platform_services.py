"""Scale-out: PostgreSQL on 127.0.0.1, an Optuna study shared by two worker processes, and
their MLflow runs in a PostgreSQL-backed MLflow tracking server.

`scripts/services.sh` installs PostgreSQL with apt-get when it is missing. In CI (CI=true) a
failure to install or start the services fails this test; only outside CI is it skipped, with
the script's message.
"""

from __future__ import annotations

import math
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.conftest import SLICE

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "services.sh"
EXPERIMENT_APP = ROOT / "pipelines" / "experiment.py"


@pytest.mark.slow
def test_two_workers_share_a_study_on_postgres_and_log_to_the_mlflow_server(services, tmp_path):
    import optuna
    import psycopg2

    env, urls = services
    storage = urls["PY_FINANCE_OPTUNA_STORAGE"]
    server = urls["MLFLOW_TRACKING_URI"]
    study = f"scaleout-{uuid.uuid4().hex[:8]}"
    experiment = f"scaleout-{uuid.uuid4().hex[:8]}"
    per_worker = 2
    # Create the study once, then start the workers (Optuna's distributed recipe).
    optuna.create_study(study_name=study, storage=storage, direction="maximize")
    common = [
        *(o for o in SLICE if not o.startswith("model.learning_rate")),  # searched below
        "model.n_estimators=20",  # the search space: model.learning_rate and regime_policy
        "-m",
        "hydra/sweeper=tpe",
        f"hydra.sweeper.storage={storage}",
        f"hydra.sweeper.study_name={study}",
        f"hydra.sweeper.n_trials={per_worker}",
        f"tracking.tracking_uri={server}",
        f"tracking.experiment={experiment}",
    ]
    run_env = {
        **env,
        "PYTHONWARNINGS": "ignore",
        "GIT_PYTHON_REFRESH": "quiet",
        "MLFLOW_HTTP_REQUEST_TIMEOUT": "60",
    }
    workers = [
        subprocess.Popen(
            [sys.executable, str(EXPERIMENT_APP), *common, f"hydra.sweep.dir={tmp_path / f'w{i}'}"],
            cwd=ROOT,
            env={**run_env, "PY_FINANCE_WORKER": str(i)},  # each worker its own sampler seed
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(2)
    ]
    outputs = [w.communicate(timeout=1500)[0] for w in workers]
    for worker, out in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, out[-4000:]

    # Every trial exactly once: 2 x n_trials numbered 0..N-1, each completed with a value.
    trials = optuna.load_study(study_name=study, storage=storage).get_trials(deepcopy=False)
    assert sorted(t.number for t in trials) == list(range(2 * per_worker))
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    # 2n distinct parameter sets: the workers drew from different seeds (one fixed seed made
    # trials 0 and 1 identical, and 2 and 3).
    param_sets = {tuple(sorted(t.params.items())) for t in trials}
    assert len(param_sets) == 2 * per_worker, [t.params for t in trials]

    # Their MLflow runs are in the tracking server, whose store is PostgreSQL.
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=server, registry_uri=server)
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    jobs = [r for r in runs if r.data.tags.get("sweep") == "job"]
    parents = [r for r in runs if r.data.tags.get("sweep") == "parent"]
    assert len(parents) == 2 and len(jobs) == 2 * per_worker
    assert {p.data.tags["sweep.worker"] for p in parents} == {"0", "1"}
    # The server keeps the artifacts (proxied), not the first worker's disk.
    assert exp.artifact_location.startswith("mlflow-artifacts:"), exp.artifact_location
    assert {j.data.tags["mlflow.parentRunId"] for j in jobs} == {p.info.run_id for p in parents}
    study_values = sorted(t.value for t in trials)
    job_values = sorted(j.data.metrics["sharpe"] for j in jobs)
    assert all(math.isfinite(v) for v in study_values)
    assert job_values == pytest.approx(study_values)

    dsn = urls["PY_FINANCE_MLFLOW_DB_URL"].replace("postgresql+psycopg2://", "postgresql://")
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM runs WHERE experiment_id = %s", (int(exp.experiment_id),))
        assert cur.fetchone()[0] == len(runs)
