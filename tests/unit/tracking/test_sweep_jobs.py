"""Sweep jobs recorded exactly once (a retried job continues its run), per-step metrics in one
write, and where a tracking server keeps a new experiment's artifacts."""

from __future__ import annotations

import uuid

import pytest

from py_finance import tracking
from py_finance.tracking.config import TrackingConfig
from py_finance.tracking.runs import _artifact_location


def test_a_retried_job_continues_its_run_and_drops_the_partial_children(store) -> None:
    import mlflow

    client = mlflow.MlflowClient()
    parent = tracking.create_parent_run(f"sweep-{uuid.uuid4().hex[:6]}")
    key = f"{parent}/0"
    run, attempt = tracking.resume_job_run(parent, key)
    assert (run, attempt) == (None, 1)
    tags = {tracking.JOB_KEY_TAG: key, tracking.ATTEMPT_TAG: "1", "sweep": "job"}
    # First attempt: the worker dies after the job run and one backtest child were opened.
    first = mlflow.start_run(run_name="job-0", tags={**tags, "mlflow.parentRunId": parent})
    first_id = first.info.run_id
    with tracking.start_run("backtest", tags={}) as partial:
        pass
    mlflow.end_run("RUNNING")  # left as a dead worker leaves it
    run, attempt = tracking.resume_job_run(parent, key)
    assert (run, attempt) == (first_id, 2)
    assert client.get_run(partial).info.lifecycle_stage == "deleted"
    with tracking.start_run(
        "job-0", tags={tracking.ATTEMPT_TAG: "2"}, parent_run_id=parent, run_id=run
    ) as again:
        tracking.log_metrics({"sharpe": 0.5})
    assert again == first_id
    jobs = [r for r in tracking.child_runs(parent) if r.data.tags.get("sweep") == "job"]
    assert [r.info.run_id for r in jobs] == [first_id]
    assert jobs[0].info.status == "FINISHED"
    assert jobs[0].data.tags[tracking.ATTEMPT_TAG] == "2"
    assert jobs[0].data.tags["mlflow.parentRunId"] == parent
    other, attempt = tracking.resume_job_run(parent, f"{parent}/1")
    assert (other, attempt) == (None, 1)


def test_per_step_metrics_are_logged_in_one_batch(store) -> None:
    import mlflow

    with tracking.start_run("folds") as run_id:
        tracking.log_metric_steps(
            {"fold_ic": [0.1, float("nan"), 0.3], "fold_rank_ic": [0.2, 0.4, 0.6]}, [0, 1, 2]
        )
    history = mlflow.MlflowClient().get_metric_history(run_id, "fold_ic")
    assert sorted((m.step, m.value) for m in history) == [(0, 0.1), (2, 0.3)]
    ranks = mlflow.MlflowClient().get_metric_history(run_id, "fold_rank_ic")
    assert [m.step for m in sorted(ranks, key=lambda m: m.step)] == [0, 1, 2]


@pytest.mark.parametrize(
    ("uri", "location", "expected"),
    [
        ("http://127.0.0.1:5001", "mlruns", None),  # the server stores them (proxied)
        ("https://mlflow.example", "/shared/mlruns", None),
        ("http://127.0.0.1:5001", "s3://bucket/mlflow", "s3://bucket/mlflow"),
        ("http://127.0.0.1:5001", "mlflow-artifacts:/pf", "mlflow-artifacts:/pf"),
        ("sqlite:///mlflow.db", "s3://bucket/x", "s3://bucket/x"),
    ],
)
def test_a_tracking_server_keeps_the_artifacts_of_a_path_less_experiment(
    uri, location, expected
) -> None:
    cfg = TrackingConfig(tracking_uri=uri, artifact_location=location)
    assert _artifact_location(cfg, uri, None) == expected


def test_a_local_store_keeps_artifacts_in_a_local_folder(tmp_path) -> None:
    cfg = TrackingConfig(tracking_uri="sqlite:///mlflow.db", artifact_location="mlruns")
    assert _artifact_location(cfg, "sqlite:///x.db", tmp_path) == (tmp_path / "mlruns").as_uri()
    assert tracking.is_uri("mlflow-artifacts:/x") and not tracking.is_uri("mlruns")


def test_a_dataset_created_by_a_concurrent_job_is_linked_not_fatal(store, monkeypatch) -> None:
    # Two sweep jobs reading one snapshot log the same dataset at once: the tracking store's
    # insert of the loser failed on the unique key (seen on the PostgreSQL-backed server).
    import mlflow
    from mlflow.exceptions import MlflowException

    real = mlflow.log_input
    calls = []

    def racing(dataset, context=None, **kw):
        calls.append(dataset.name)
        if len(calls) == 1:
            raise MlflowException(
                "(psycopg2.errors.UniqueViolation) duplicate key value violates unique "
                'constraint "dataset_pk"'
            )
        return real(dataset, context=context, **kw)

    monkeypatch.setattr(mlflow, "log_input", racing)
    with tracking.start_run("job") as run_id:
        tracking.log_dataset("store", digest="abc123", source="/tmp/snapshot/store")
    run = mlflow.MlflowClient().get_run(run_id)
    assert calls == ["store", "store"]
    assert [d.dataset.digest for d in run.inputs.dataset_inputs] == ["abc123"]
    assert run.data.tags["dataset.store"] == "abc123"

    def other_error(dataset, context=None, **kw):
        raise MlflowException("connection refused")

    monkeypatch.setattr(mlflow, "log_input", other_error)
    with pytest.raises(MlflowException, match="connection refused"), tracking.start_run("j2"):
        tracking.log_dataset("store", digest="abc123", source="/tmp/snapshot/store")
