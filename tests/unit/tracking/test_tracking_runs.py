"""Runs against a real (temporary) MLflow SQLite store, read back with MlflowClient."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from py_finance import tracking
from py_finance.tracking.config import TrackingConfig


def _client():
    import mlflow

    return mlflow.MlflowClient()


def _download(run_id: str, artifact: str, dst: Path) -> Path:
    import mlflow

    return Path(
        mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path=artifact, dst_path=str(dst)
        )
    )


def test_setup_creates_store_and_experiment_under_root_quietly(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    import mlflow

    cfg = TrackingConfig(experiment="setup-test")
    tracking.setup(cfg, root=tmp_path)
    tracking.setup(cfg, root=tmp_path)  # idempotent: the experiment already exists

    assert mlflow.get_tracking_uri() == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    assert (tmp_path / "mlflow.db").is_file()
    experiment = _client().get_experiment_by_name("setup-test")
    assert experiment is not None
    assert experiment.artifact_location == (tmp_path.resolve() / "mlruns").as_uri()
    with tracking.start_run("in-setup-test") as run_id:
        pass
    assert _client().get_run(run_id).info.experiment_id == experiment.experiment_id
    err = capfd.readouterr().err
    assert "Creating initial MLflow database tables" not in err
    assert "alembic" not in err.lower()


def test_logged_params_metrics_and_tags_read_back(store, caplog) -> None:
    params = {f"p{i:03d}": i for i in range(150)}  # more than one batch of 100
    params["risk"] = {"max_position": 0.1, "caps": {"sector": 0.25}}
    with (
        caplog.at_level(logging.WARNING),
        tracking.start_run("params-metrics", tags={"model": "ridge"}) as run_id,
    ):
        tracking.log_params(params)
        tracking.log_metrics({"sharpe": 0.71, "cagr": np.float64(0.12), "psr": math.nan})
        tracking.log_metrics({"ic": math.inf, "hit_rate": 0.55}, step=3)
    # A metric without a value is routine (recorded as a tag below), not a warning per run.
    assert "non-finite" not in caplog.text

    run = _client().get_run(run_id)
    assert run.info.run_name == "params-metrics"
    assert run.info.status == "FINISHED"
    assert len(run.data.params) == 152
    assert run.data.params["risk.max_position"] == "0.1"
    assert run.data.params["risk.caps.sector"] == "0.25"
    assert run.data.params["p149"] == "149"
    assert run.data.metrics == {"sharpe": 0.71, "cagr": 0.12, "hit_rate": 0.55}
    assert run.data.tags["model"] == "ridge"
    assert run.data.tags["metric_skipped.psr"] == "nan"
    assert run.data.tags["metric_skipped.ic"] == "inf"
    history = _client().get_metric_history(run_id, "hit_rate")
    assert [m.step for m in history] == [3]


def test_artifacts_dict_frame_file_and_figure_read_back(store, tmp_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frame = pd.DataFrame(
        {"AAPL": [0.5, 0.4], "MSFT": [0.3, 0.6]},
        index=pd.Index(pd.to_datetime(["2024-01-02", "2024-01-03"]).date, name="session"),
    )
    report = tmp_path / "report.md"
    report.write_text("# report\n")
    fig, ax = plt.subplots()
    ax.plot([1, 2, 3])
    config = {"model": {"name": "lgbm", "lr": 0.05}, "path": Path("data/x"), "n": np.int64(3)}

    with tracking.start_run("artifacts") as run_id:
        tracking.log_dict(config, "config.yaml")
        tracking.log_dict({"sharpe": 0.7}, "reports/summary.json")
        tracking.log_frame(frame, "backtest/weights")
        tracking.log_frame(pd.DataFrame({1: [1.0], 2: [2.0]}), "int_columns.parquet")
        tracking.log_artifact(report)
        tracking.log_artifact(report, "reports")
        tracking.log_figure(fig, "plots/equity.png")
    plt.close(fig)

    out = tmp_path / "out"
    assert yaml.safe_load(_download(run_id, "config.yaml", out).read_text()) == {
        "model": {"name": "lgbm", "lr": 0.05},
        "path": "data/x",
        "n": 3,
    }
    summary = _download(run_id, "reports/summary.json", out)
    assert json.loads(summary.read_text()) == {"sharpe": 0.7}
    weights = pd.read_parquet(_download(run_id, "backtest/weights.parquet", out))
    pd.testing.assert_frame_equal(weights, frame)
    ints = pd.read_parquet(_download(run_id, "int_columns.parquet", out))
    assert list(ints.columns) == ["1", "2"]
    assert _download(run_id, "report.md", out).read_text() == "# report\n"
    assert _download(run_id, "reports/report.md", out).read_text() == "# report\n"
    assert _download(run_id, "plots/equity.png", out).read_bytes()[:4] == b"\x89PNG"


def test_nested_run_and_failed_run_status(store) -> None:
    with tracking.start_run("parent") as parent_id:
        with tracking.start_run("h5", nested=True, tags={"horizon": "5"}) as child_id:
            tracking.log_metrics({"sharpe": 1.0})
    child = _client().get_run(child_id)
    assert child.data.tags["mlflow.parentRunId"] == parent_id
    assert child.data.tags["horizon"] == "5"

    with pytest.raises(ZeroDivisionError):
        with tracking.start_run("boom") as failed_id:
            _ = 1 / 0
    assert _client().get_run(failed_id).info.status == "FAILED"


def test_logging_without_active_run_raises(store) -> None:
    with pytest.raises(RuntimeError, match="no active MLflow run"):
        tracking.log_metrics({"sharpe": 1.0})
    with pytest.raises(RuntimeError, match="no active MLflow run"):
        tracking.log_params({"a": 1})


def test_a_dvc_experiment_copy_tracks_to_the_projects_store(tmp_path):
    from py_finance.tracking.runs import resolve_artifact_location, store_root

    project = tmp_path / "proj"
    copy = project / ".dvc" / "tmp" / "exps" / "standalone" / "tmpab12cd"
    copy.mkdir(parents=True)
    assert store_root(copy) == project.resolve()
    assert store_root(copy / "sub") == project.resolve()
    assert store_root(project) == project.resolve()
    assert tracking.resolve_tracking_uri("sqlite:///mlflow.db", copy) == (
        f"sqlite:///{project.resolve()}/mlflow.db"
    )
    assert resolve_artifact_location("mlruns", copy) == (project.resolve() / "mlruns").as_uri()
