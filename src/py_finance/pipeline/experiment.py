"""The Hydra experiment app: one job = one configuration, research pipeline to backtest.

``pipelines/experiment.py`` is the entry point (``@hydra.main`` over ``conf/experiment.yaml``);
:func:`run_job` is what each job runs. A multirun (``-m model=lightgbm,xgboost labels=h1,h5``)
opens one parent MLflow run (:class:`MlflowSweepCallback`) and each job a child run holding
the flattened config as params (the same keys for every job, so the UI's compare view lines
them up), the candidate's out-of-sample metrics and the store's hash as its dataset; the
job's backtests are that child's own children. The job returns the candidate's Sharpe, the
objective of the Optuna sweeper.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback

from py_finance import tracking
from py_finance.config import build, flatten, project_root
from py_finance.pipeline import evaluation, research
from py_finance.pipeline.context import Context
from py_finance.tracking.sweeps import SWEEP_TAG

log = logging.getLogger(__name__)

PARENT_FILE = "mlflow_parent_run_id"
PARENT_ENV = "PY_FINANCE_PARENT_RUN_ID"
OBJECTIVE = "sharpe"


def _absolute_tracking(cfg: Any, root: Path) -> Any:
    """Tracking settings with the store and artifacts made absolute against ``root``."""
    return dataclasses.replace(
        cfg,
        tracking_uri=tracking.resolve_tracking_uri(cfg.tracking_uri, root),
        artifact_location=tracking.resolve_artifact_location(cfg.artifact_location, root),
    )


def run_job(
    cfg: Any,
    workdir: Path,
    *,
    parent_run_id: str | None = None,
    root: Path | None = None,
    job_name: str | None = None,
) -> dict[str, Any]:
    """Run ingest -> features -> labels -> regimes -> train -> backtest for one config.

    Parameters
    ----------
    cfg
        A composed config (``hydra`` node removed); validated before any work starts.
    workdir
        Where the job's data, models and backtests go (the Hydra job's output directory).
    parent_run_id
        The sweep's parent MLflow run; None for a single run.
    root
        Project root that a relative tracking URI is relative to.
    job_name
        Name of the job's MLflow run; ``job-<model>-h<h>-<policy>`` by default.

    Returns
    -------
    dict
        ``metrics`` (the backtest's metrics), ``run_id`` (the job's MLflow run) and
        ``objective`` (the candidate's out-of-sample Sharpe).
    """
    settings = build(cfg)
    root = (root or project_root()).resolve()
    track = _absolute_tracking(settings.tracking, root)
    settings = dataclasses.replace(settings, tracking=track)
    ctx = Context(settings, Path(workdir).resolve())
    tracking.setup(track, root)
    candidate = settings.promotion.candidate if settings.promotion else "regime_aware"
    name = job_name or (f"job-{settings.model_name}-h{ctx.horizon}-{settings.regime_policy.name}")
    tags = {
        "horizon": str(ctx.horizon),
        "model": settings.model_name,
        "regime_policy": str(settings.regime_policy.name),
        "git_sha": tracking.git_sha(root),
        SWEEP_TAG: "job",
    }
    with tracking.start_run(name, tags=tags, parent_run_id=parent_run_id) as run_id:
        tracking.log_params(flatten(cfg))
        research.ingest(ctx)
        store_hash = ctx.store.fingerprint()
        tracking.log_dataset(
            "store", digest=store_hash, source=str(ctx.path("store")), context="training"
        )
        tracking.log_params({"data_hash": store_hash})
        research.features(ctx)
        research.labels(ctx)
        research.regimes(ctx)
        research.train(ctx, progress=False)
        metrics = evaluation.backtest(ctx)
        cand = metrics[candidate]
        tracking.log_metrics(cand)
        tracking.log_metrics(
            {f"baseline_{k}": v for k, v in metrics["baseline"].items()}
            | {f"benchmark_{k}": v for k, v in metrics["benchmark"].items()}
            | {f"oos_{k}": v for k, v in metrics["skill"].items()}
        )
    objective = float(cand.get(OBJECTIVE, math.nan))
    return {"metrics": metrics, "run_id": run_id, "objective": objective}


def parent_run_id(sweep_dir: Path | None) -> str | None:
    """The sweep's parent run id: from the sweep directory's file, else the environment."""
    if sweep_dir is not None:
        path = Path(sweep_dir) / PARENT_FILE
        if path.exists():
            return path.read_text().strip() or None
    return os.environ.get(PARENT_ENV) or None


def hydra_job(cfg: Any) -> float:
    """Body of ``pipelines/experiment.py``: run one job in Hydra's output directory.

    Returns the objective (the candidate's Sharpe; NaN becomes -inf so Optuna ranks a failed
    strategy last instead of failing the study).
    """
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    from omegaconf import OmegaConf

    hc = HydraConfig.get()
    multirun = hc.mode == RunMode.MULTIRUN
    parent = parent_run_id(Path(hc.sweep.dir)) if multirun else None
    plain = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
    out = run_job(plain, Path(hc.runtime.output_dir), parent_run_id=parent)
    objective = out["objective"]
    summary = {
        "run_id": out["run_id"],
        "objective": objective,
        "overrides": list(hc.overrides.task),
    }
    (Path(hc.runtime.output_dir) / "result.json").write_text(json.dumps(summary, indent=2))
    log.info("job %s: %s = %.4f", out["run_id"], OBJECTIVE, objective)
    return objective if math.isfinite(objective) else -math.inf


class MlflowSweepCallback(Callback):
    """Hydra callback: a parent MLflow run around a multirun.

    ``on_multirun_start`` creates the parent (named after the sweep directory, tagged with
    the sweep's overrides) and writes its id to ``<sweep dir>/mlflow_parent_run_id`` and to
    ``$PY_FINANCE_PARENT_RUN_ID``, where jobs in any launcher find it; ``on_multirun_end``
    logs the number of jobs and the best objective and ends it.
    """

    def __init__(self, **_: Any) -> None:
        self.parent: str | None = None

    def _tracking(self, config: Any) -> Any:
        from omegaconf import OmegaConf

        from py_finance.config import instantiate

        node = OmegaConf.to_container(config.tracking, resolve=True)
        return instantiate(node)

    def on_multirun_start(self, config: Any, **kwargs: Any) -> None:
        """Create the parent run."""
        root = project_root()
        track = _absolute_tracking(self._tracking(config), root)
        tracking.setup(track, root)
        sweep_dir = Path(str(config.hydra.sweep.dir))
        overrides = " ".join(str(o) for o in config.hydra.overrides.task)
        self.parent = tracking.create_parent_run(
            f"sweep-{sweep_dir.name}",
            tags={"overrides": overrides[:5000], "git_sha": tracking.git_sha(root)},
        )
        sweep_dir.mkdir(parents=True, exist_ok=True)
        (sweep_dir / PARENT_FILE).write_text(self.parent)
        os.environ[PARENT_ENV] = self.parent
        log.info("sweep parent run %s (%s)", self.parent, overrides)

    def on_multirun_end(self, config: Any, **kwargs: Any) -> None:
        """Summarise the children into the parent and end it."""
        if self.parent is None:
            return
        children = tracking.child_runs(self.parent)
        values = [c.data.metrics.get(OBJECTIVE) for c in children]
        finite = [v for v in values if v is not None and math.isfinite(v)]
        tracking.finish_run(
            self.parent,
            metrics={
                "n_jobs": float(len(children)),
                f"best_{OBJECTIVE}": max(finite) if finite else math.nan,
            },
        )
        os.environ.pop(PARENT_ENV, None)
        self.parent = None
