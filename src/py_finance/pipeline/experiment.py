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
from py_finance.pipeline.snapshots import shared_store, snapshot_dir
from py_finance.tracking.sweeps import SWEEP_TAG

log = logging.getLogger(__name__)

PARENT_FILE = "mlflow_parent_run_id"
PARENT_ENV = "PY_FINANCE_PARENT_RUN_ID"
OBJECTIVE = "sharpe"
# Jobs drawn on a sweep's comparison chart (the best ones); the table lists every job.
CHART_JOBS = 10


WORKER_ENV = "PY_FINANCE_WORKER"


def worker_id() -> str:
    """The sweep worker's id: ``$PY_FINANCE_WORKER``, else ``<host>-<pid>`` (one per process)."""
    import socket

    return os.environ.get(WORKER_ENV) or f"{socket.gethostname()}-{os.getpid()}"


def worker_seed(study_seed: Any, worker: Any = None) -> int:
    """Sampler seed of one Optuna worker, derived from the study's seed and the worker's id.

    Workers sharing a study must not share a seed (each would draw the same parameters); the
    seed is still reproducible: rerun a worker with the same ``$PY_FINANCE_WORKER`` (logged
    when the sweep starts) and it draws the same sequence. The resolver
    ``${worker_seed:${seed}}`` of conf/hydra/sweeper/tpe.yaml.
    """
    import hashlib

    who = str(worker) if worker not in (None, "") else worker_id()
    digest = hashlib.sha256(f"{int(study_seed)}:{who}".encode()).digest()
    seed = int.from_bytes(digest[:4], "little")
    log.debug("optuna sampler seed %d (study seed %s, worker %s)", seed, study_seed, who)
    return seed


def register_resolvers() -> None:
    """Register the config resolvers of the experiment app (idempotent)."""
    from omegaconf import OmegaConf

    OmegaConf.register_resolver("worker_seed", worker_seed, replace=True)


register_resolvers()


def _absolute_tracking(cfg: Any, root: Path) -> Any:
    """Tracking settings with the store and artifacts made absolute against ``root``."""
    uri = tracking.resolve_tracking_uri(cfg.tracking_uri, root)
    artifacts = cfg.artifact_location
    if not tracking.is_server(uri):  # a server stores a path-less experiment's artifacts itself
        artifacts = tracking.resolve_artifact_location(artifacts, root)
    return dataclasses.replace(cfg, tracking_uri=uri, artifact_location=artifacts)


def where_tags() -> dict[str, str]:
    """Where a job runs: the host, and the Ray node id inside a Ray worker."""
    import socket
    import sys

    tags = {"host": socket.gethostname()}
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        tags["ray.node_id"] = ray.get_runtime_context().get_node_id()
    return tags


def run_job(
    cfg: Any,
    workdir: Path,
    *,
    parent_run_id: str | None = None,
    root: Path | None = None,
    job_name: str | None = None,
    job_key: str | None = None,
) -> dict[str, Any]:
    """Run ingest -> features -> labels -> regimes -> train -> backtest for one config.

    The data is ingested once per data config into a snapshot that every job reads
    (:func:`~py_finance.pipeline.snapshots.shared_store`, under ``<root>/outputs/snapshots``
    or ``$PY_FINANCE_SNAPSHOTS``).

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
    job_key
        The job's identity within its sweep (``<parent run>/<job number>``): a retried job
        (its worker died) continues the earlier attempt's run, so each job is one run.

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
        **where_tags(),
    }
    resume, attempt = None, 1
    if job_key is not None and parent_run_id is not None:
        resume, attempt = tracking.resume_job_run(parent_run_id, job_key)
        tags |= {tracking.JOB_KEY_TAG: job_key, tracking.ATTEMPT_TAG: str(attempt)}
    with tracking.start_run(name, tags=tags, parent_run_id=parent_run_id, run_id=resume) as run_id:
        tracking.log_params(flatten(cfg))
        # One shared snapshot per data config, not one ingest per job (pipeline/snapshots.py).
        ctx, _ = shared_store(ctx, snapshot_dir(root))
        store_hash = ctx.store.fingerprint()
        tracking.log_dataset(
            "store", digest=store_hash, source=str(ctx.path("store")), context="training"
        )
        tracking.log_params({"data_hash": store_hash})
        research.features(ctx)
        research.labels(ctx)
        research.regimes(ctx)
        research.train(ctx, progress=False)
        # Sweeps log runs but never a model: only the promotion path registers versions.
        metrics = evaluation.backtest(ctx, log_model=False)
        cand = metrics[candidate]
        tracking.log_metrics(cand)
        tracking.log_dict(metrics, "metrics.json")
        tracking.log_metrics(
            {f"baseline_{k}": v for k, v in metrics["baseline"].items()}
            | {f"benchmark_{k}": v for k, v in metrics["benchmark"].items()}
            | dict(metrics["skill"])  # already named oos_*
        )
    objective = float(cand.get(OBJECTIVE, math.nan))
    return {"metrics": metrics, "run_id": run_id, "objective": objective}


# Options of the Hydra app that take no value, and those that take the next argument.
_FLAGS = ("-m", "--multirun", "--info", "-i", "--cfg", "-c", "--resolve", "--help", "-h")
_WITH_VALUE = (
    "--config-path",
    "-cp",
    "--config-name",
    "-cn",
    "--config-dir",
    "-cd",
    "--experimental-rerun",
    "--package",
    "-p",
)


def one_line(text: str) -> str:
    """A multi-line message (Hydra's, OmegaConf's) folded into one line.

    Hydra's list of config search paths is dropped and a list of options becomes
    ``a, b, c``.
    """
    lines = [p.strip() for p in str(text).splitlines() if p.strip()]
    if "Config search path:" in lines:
        lines = lines[: lines.index("Config search path:")]
    out: list[str] = []
    for line in lines:
        listed = out and " " not in line and out[-1].startswith("Available options")
        if listed:  # one option per line in Hydra's message
            sep = " " if out[-1].endswith(":") else ", "
            out[-1] = f"{out[-1]}{sep}{line}"
        else:
            out.append(line)
    return "; ".join(out)


def _compose_error(exc: BaseException) -> str:
    """One line for a failed compose: Hydra's message and OmegaConf's hint ("Did you mean")."""
    text = one_line(str(exc))
    text = text.split(": ", 1)[1] if text.startswith("cannot compose config") else text
    cause = exc.__cause__
    while cause is not None:
        first = str(cause).splitlines()[0] if str(cause) else ""
        if "Did you mean" in first and first not in text:
            text = f"{text} ({first})"
            break
        cause = cause.__cause__
    return text


def check_command_line(argv: list[str], config_dir: Path | None = None) -> bool:
    """Validate the overrides of ``pipelines/experiment.py`` before Hydra runs anything.

    Every override (each value of a sweep such as ``model=lightgbm,xgboost`` in turn) is
    composed with the others against ``conf/`` and the schemas, so a mistyped key, an unknown
    option or a wrong type fails at once with one line naming it, before Hydra creates a run
    folder. ``hydra.*`` and ``hydra/...`` overrides are left to Hydra. Returns True for a
    multirun (``-m``).

    Raises
    ------
    ConfigError
        The first override that does not compose, with the reason on one line.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    from py_finance.config import compose
    from py_finance.errors import ConfigError

    multirun = False
    overrides: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg in ("-m", "--multirun"):
            multirun = True
        elif arg in _WITH_VALUE:
            skip = True
        elif arg.startswith("-") or arg in _FLAGS:
            continue
        else:
            overrides.append(arg)
    task = [o for o in overrides if not o.lstrip("+~").startswith(("hydra.", "hydra/"))]
    try:
        parsed = OverridesParser.create().parse_overrides(task)
    except HydraException as exc:
        raise ConfigError(f"bad override: {one_line(str(exc))}") from None
    fixed = [str(o.input_line) for o in parsed if not o.is_sweep_override()]
    variants: list[list[str]] = [fixed]
    for o in parsed:
        if not o.is_sweep_override():
            continue
        if not multirun:
            raise ConfigError(
                f"override {o.input_line!r} is a sweep: add -m (a multirun) to run each value"
            )
        try:
            values = list(o.sweep_string_iterator())
        except HydraException:  # a range or interval the sweeper samples: left to it
            continue
        key = o.get_key_element()
        variants += [[*fixed, f"{key}={v}"] for v in values]
    for lines in variants:
        try:
            compose(lines, config_dir=config_dir)
        except ConfigError as exc:
            raise ConfigError(_compose_error(exc)) from None
    return multirun


def run_hydra_job(job: Any, cfg: Any) -> float:
    """Run ``job(cfg)``; a :class:`~py_finance.errors.PyFinanceError` is one line, exit 2."""
    import sys

    from py_finance.errors import PyFinanceError

    try:
        return float(job(cfg))
    except PyFinanceError as exc:
        print(f"error: {one_line(str(exc))}", file=sys.stderr)
        raise SystemExit(2) from None


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
    key = f"{parent}/{hc.job.num}" if parent else None
    out = run_job(plain, Path(hc.runtime.output_dir), parent_run_id=parent, job_key=key)
    objective = out["objective"]
    summary = {
        "run_id": out["run_id"],
        "objective": objective,
        "overrides": list(hc.overrides.task),
    }
    (Path(hc.runtime.output_dir) / "result.json").write_text(json.dumps(summary, indent=2))
    log.info(
        "job #%s (%s) done: %s %.4f, run %s",
        hc.job.num if multirun else 0,
        " ".join(hc.overrides.task) or "defaults",
        OBJECTIVE,
        objective,
        out["run_id"],
    )
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
        tags = {
            "overrides": overrides[:5000],
            "git_sha": tracking.git_sha(root),
            "sweep.worker": worker_id(),
        }
        from omegaconf import OmegaConf

        seed = OmegaConf.select(config, "hydra.sweeper.sampler.seed", default=None)
        if seed is not None:  # an Optuna sweep: rerun with $PY_FINANCE_WORKER to repeat it
            tags["sweep.sampler_seed"] = str(seed)
            log.info("optuna sampler seed %s (worker %s)", seed, tags["sweep.worker"])
        self.parent = tracking.create_parent_run(f"sweep-{sweep_dir.name}", tags=tags)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        (sweep_dir / PARENT_FILE).write_text(self.parent)
        os.environ[PARENT_ENV] = self.parent
        log.info("sweep parent run %s (%s)", self.parent, overrides)

    def on_multirun_end(self, config: Any, **kwargs: Any) -> None:
        """Summarise the children into the parent, print the table, log the chart, end it."""
        if self.parent is None:
            return
        children = tracking.child_runs(self.parent)
        values = [c.data.metrics.get(OBJECTIVE) for c in children]
        finite = [v for v in values if v is not None and math.isfinite(v)]
        try:
            summarise_sweep(self.parent)
        except Exception:  # the sweep's results stand without their summary
            log.exception("could not summarise sweep %s", self.parent)
        tracking.finish_run(
            self.parent,
            metrics={
                "n_jobs": float(len(children)),
                "n_retried": float(
                    sum(int(c.data.tags.get(tracking.ATTEMPT_TAG, "1")) > 1 for c in children)
                ),
                f"best_{OBJECTIVE}": max(finite) if finite else math.nan,
            },
        )
        os.environ.pop(PARENT_ENV, None)
        self.parent = None


def summarise_sweep(parent: str) -> str:
    """Print a sweep's summary table (best first) and log ``compare.png``/``compare.md``.

    The chart overlays the candidate equity and drawdown of the best :data:`CHART_JOBS`
    finished jobs on the benchmark; chart and table go to the parent run. Returns the table
    as Markdown ("" for a sweep without jobs).
    """
    jobs = tracking.sweep_job_ids(parent)
    if not jobs:
        return ""
    table = tracking.sweep_summary(parent)
    text = tracking.table_markdown(table)
    retried = table[table["attempts"] > 1]
    note = ""
    if len(retried):
        note = f"retried (their worker was lost): {', '.join(map(str, retried.index))}\n"
        log.warning("sweep %s: %d job(s) retried: %s", parent, len(retried), list(retried.index))
    print(f"\nsweep {parent}: {len(table)} jobs, best first\n\n{text}{note}\n", flush=True)
    finished = table[table["status"] == "FINISHED"]["run_id"].tolist()
    tracking.log_comparison(parent, finished[:CHART_JOBS] or jobs[:CHART_JOBS])
    return text
