"""Sweep runs (a parent run per Hydra multirun, a child run per job) and dataset inputs.

The parent run is created by the process that launches the sweep and stays RUNNING until
the sweep ends; jobs (in that process or in launcher workers) open their run as its child by
id, so the MLflow UI shows one sweep with one child per configuration.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from py_finance.tracking._mlflow import import_mlflow

log = logging.getLogger(__name__)

SWEEP_TAG = "sweep"


def create_parent_run(name: str, tags: Mapping[str, str] | None = None) -> str:
    """Create a RUNNING run in the active experiment without making it active; return its id.

    Parameters
    ----------
    name
        Run name, e.g. ``sweep-2024-01-02_10-00-00``.
    tags
        Run tags (sweep overrides, git sha, ...).
    """
    mlflow = import_mlflow()
    from mlflow.tracking import fluent

    client = mlflow.MlflowClient()
    experiment_id = fluent._get_experiment_id()
    run = client.create_run(
        experiment_id, run_name=name, tags={**dict(tags or {}), SWEEP_TAG: "parent"}
    )
    return str(run.info.run_id)


def finish_run(
    run_id: str, status: str = "FINISHED", metrics: Mapping[str, float] | None = None
) -> None:
    """Log final metrics (finite ones) to a run that is not active and end it with ``status``."""
    import math

    mlflow = import_mlflow()
    client = mlflow.MlflowClient()
    for key, value in (metrics or {}).items():
        try:
            number = float(value)
        except (TypeError, ValueError):
            continue
        if math.isfinite(number):
            client.log_metric(run_id, key, number)
    client.set_terminated(run_id, status)


def child_runs(parent_run_id: str) -> list[Any]:
    """The runs whose parent is ``parent_run_id`` (mlflow ``Run`` objects), oldest first."""
    mlflow = import_mlflow()
    client = mlflow.MlflowClient()
    parent = client.get_run(parent_run_id)
    runs = client.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{parent_run_id}'",
        max_results=10_000,
        order_by=["attributes.start_time ASC"],
    )
    return list(runs)


JOB_KEY_TAG = "sweep.job_key"
ATTEMPT_TAG = "sweep.attempt"


def resume_job_run(parent_run_id: str, job_key: str) -> tuple[str | None, int]:
    """The run of an earlier attempt at this sweep job, and this attempt's number.

    A launcher retries a job whose worker died (a Ray node lost mid-sweep): the retry must
    continue the job's run, not add a second one, so every job is recorded exactly once.
    Returns ``(None, 1)`` on the first attempt. On a retry the earlier attempt's child runs
    (backtests it may have left half-written) are deleted; the retry logs them again.
    """
    mlflow = import_mlflow()
    client = mlflow.MlflowClient()
    parent = client.get_run(parent_run_id)
    found = client.search_runs(
        [parent.info.experiment_id],
        filter_string=(
            f"tags.mlflow.parentRunId = '{parent_run_id}' and tags.`{JOB_KEY_TAG}` = '{job_key}'"
        ),
        max_results=10,
        order_by=["attributes.start_time ASC"],
    )
    if not found:
        return None, 1
    run = found[0]
    attempt = int(run.data.tags.get(ATTEMPT_TAG, "1")) + 1
    for child in child_runs(run.info.run_id):
        client.delete_run(child.info.run_id)
    log.warning(
        "job %s: attempt %d continues run %s (an earlier attempt did not finish)",
        job_key,
        attempt,
        run.info.run_id,
    )
    return str(run.info.run_id), attempt


def dvc_hash(root: Path, path: str) -> str | None:
    """The md5 that ``dvc.lock`` records for the output ``path`` (e.g. ``data/store``).

    Returns None when there is no lock file or no stage lists the output.
    """
    import yaml

    lock = Path(root) / "dvc.lock"
    if not lock.exists():
        return None
    try:
        data = yaml.safe_load(lock.read_text()) or {}
    except yaml.YAMLError:
        return None
    target = str(path).rstrip("/")
    for stage in (data.get("stages") or {}).values():
        for out in stage.get("outs") or []:
            if str(out.get("path", "")).rstrip("/") == target and out.get("md5"):
                return str(out["md5"])
    return None


def log_dataset(
    name: str,
    *,
    digest: str,
    source: str,
    context: str = "training",
    frame: Any | None = None,
) -> None:
    """Record a dataset input of the active run (the MLflow UI's *Datasets* column).

    Parameters
    ----------
    name
        Dataset name, e.g. ``store`` or ``features``.
    digest
        Its version: the DVC hash when DVC tracks it, else the content hash of the snapshot.
    source
        Where it lives (path or URI).
    context
        ``training`` or ``evaluation``.
    frame
        A small pandas frame to take the schema from (e.g. the head of the features); an
        empty frame is used when None.
    """
    mlflow = import_mlflow()
    import warnings

    import pandas as pd

    df = frame if frame is not None else pd.DataFrame()
    uri = source if "://" in source else Path(source).resolve().as_uri()
    with warnings.catch_warnings():
        # a file:// source matches two equivalent mlflow source types; either is right
        warnings.filterwarnings("ignore", message="The specified dataset source can be")
        dataset = mlflow.data.from_pandas(df, source=uri, name=name, digest=digest[:36])
    _log_input(mlflow, dataset, context)
    mlflow.set_tag(f"dataset.{name}", digest)


def _log_input(mlflow: Any, dataset: Any, context: str | None, attempts: int = 3) -> None:
    """``mlflow.log_input``, again when a concurrent job created the same dataset first.

    The tracking store creates a dataset row on first use of (experiment, name, digest)
    without an upsert: two jobs of a sweep that log the same snapshot at the same moment
    race, and the loser's insert fails on the unique key. Once the row exists the call links
    the run to it, so it is retried.
    """
    import time

    from mlflow.exceptions import MlflowException

    for attempt in range(attempts):
        try:
            mlflow.log_input(dataset, context=context)
            return
        except MlflowException as exc:
            text = str(exc)
            duplicate = any(
                m in text for m in ("UniqueViolation", "UNIQUE constraint", "duplicate key")
            )
            if not duplicate or attempt == attempts - 1:
                raise
            log.debug("dataset %s was created by a concurrent job: linking it", dataset.name)
            time.sleep(0.2 * (attempt + 1))
