"""MLflow runs: setup, run context, params, metrics, artifacts and standard tags.

Nothing here imports mlflow at module level; see :mod:`py_finance.tracking._mlflow`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import re
import subprocess
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from py_finance.tracking._mlflow import import_mlflow
from py_finance.tracking.config import TrackingConfig

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

# mlflow's own limits (mlflow.utils.validation), copied so that this module imports no mlflow.
MAX_PARAM_VALUE_LENGTH = 6000
MAX_PARAMS_PER_BATCH = 100
MAX_METRICS_PER_BATCH = 1000
MAX_KEY_LENGTH = 250
MAX_TAG_VALUE_LENGTH = 8000
# The UI opens an experiment of this kind on its training runs (not on GenAI traces).
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"
EXPERIMENT_TAGS = {EXPERIMENT_KIND_TAG: EXPERIMENT_KIND}

# mlflow accepts slashes, alphanumerics, underscores, periods, dashes, spaces (and colons, but
# not on Windows); anything else in a config key would make the whole batch fail.
_BAD_KEY_CHARS = re.compile(r"[^/\w.\- ]")
_SQLITE_PREFIX = "sqlite:///"


_EXPS_DIR = (".dvc", "tmp", "exps")


def store_root(root: Path | None = None) -> Path:
    """The directory a relative tracking store and artifact location are relative to.

    ``root`` (the current directory by default), except inside the copy of the project that
    DVC makes for a temporary or queued experiment (``<project>/.dvc/tmp/exps/...``): there
    it is ``<project>``, so the experiment's runs, its trial and any registry version land in
    the user's own store instead of vanishing with the copy.
    """
    base = (Path.cwd() if root is None else Path(root)).resolve()
    for parent in (base, *base.parents):
        if parent.parts[-3:] == _EXPS_DIR:
            return parent.parent.parent.parent
    return base


def resolve_tracking_uri(uri: str, root: Path | None = None) -> str:
    """Make a relative ``sqlite:///`` (or scheme-less file) tracking URI absolute.

    Parameters
    ----------
    uri
        Tracking URI as configured, e.g. ``sqlite:///mlflow.db``.
    root
        Directory that relative paths are relative to (see :func:`store_root`); the current
        directory by default.

    Returns
    -------
    str
        ``sqlite:////abs/path/mlflow.db`` for a relative SQLite path; other URIs unchanged.
    """
    base = store_root(root)
    if uri.startswith(_SQLITE_PREFIX):
        path = uri[len(_SQLITE_PREFIX) :]
        if path == ":memory:" or Path(path).is_absolute():
            return uri
        return _SQLITE_PREFIX + str((base / path).resolve())
    if "://" not in uri:
        return str((base / uri).resolve())
    return uri


def resolve_artifact_location(location: str, root: Path | None = None) -> str:
    """Turn a relative artifact directory into an absolute ``file://`` URI.

    Parameters
    ----------
    location
        Directory or URI (``s3://...``, ``file:///...``); URIs are returned unchanged.
    root
        Directory that a relative path is relative to; the current directory by default.

    Returns
    -------
    str
        The artifact location as a URI.
    """
    if is_uri(location):
        return location
    base = store_root(root)
    return (base / location).resolve().as_uri()


def is_uri(location: str) -> bool:
    """Whether ``location`` is a URI (``s3://b/k``, ``mlflow-artifacts:/x``) and not a path."""
    return re.match(r"^[A-Za-z][A-Za-z0-9+.-]+:", location) is not None


def is_server(uri: str) -> bool:
    """Whether a tracking URI is an MLflow tracking server (``http(s)://``)."""
    return uri.startswith(("http://", "https://"))


def _artifact_location(cfg: TrackingConfig, uri: str, root: Path | None) -> str | None:
    """Artifact location of a new experiment: None lets a tracking server choose its own.

    A server started with ``--artifacts-destination`` (``--serve-artifacts``, the default)
    stores artifacts itself and hands out ``mlflow-artifacts:`` URIs, so every machine reads
    and writes them through the server. A local path there would be the first worker's own
    disk, invisible to the UI and to every other machine.
    """
    if is_server(uri) and not is_uri(cfg.artifact_location):
        return None
    return resolve_artifact_location(cfg.artifact_location, root)


def setup(cfg: TrackingConfig, root: Path | None = None) -> None:
    """Point mlflow at the configured store and make the configured experiment active.

    Parameters
    ----------
    cfg
        Tracking settings. A relative SQLite path and a relative artifact location are
        resolved against ``root``.
    root
        Project root; the current directory by default.

    Notes
    -----
    Creates the experiment (with ``cfg.artifact_location``, tagged as a model-training
    experiment so that the UI opens on its runs) when it does not exist and restores it when
    it was deleted. The artifact location of an existing experiment is
    never changed: mlflow fixes it at creation.
    """
    mlflow = import_mlflow()
    from mlflow.exceptions import MlflowException

    uri = resolve_tracking_uri(cfg.tracking_uri, root)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    client = mlflow.MlflowClient()

    experiment = client.get_experiment_by_name(cfg.experiment)
    if experiment is None:
        artifact_location = _artifact_location(cfg, uri, root)
        try:
            experiment_id = client.create_experiment(
                cfg.experiment, artifact_location=artifact_location, tags=EXPERIMENT_TAGS
            )
        except MlflowException:
            # Another process (a parallel multirun job) may have created it first.
            experiment = client.get_experiment_by_name(cfg.experiment)
            if experiment is None:
                raise
            experiment_id = experiment.experiment_id
        else:
            log.info(
                "created experiment %r with artifacts at %s",
                cfg.experiment,
                client.get_experiment(experiment_id).artifact_location,
            )
    else:
        experiment_id = experiment.experiment_id
        if experiment.lifecycle_stage == "deleted":
            log.warning("experiment %r was deleted; restoring it", cfg.experiment)
            client.restore_experiment(experiment_id)
        if is_server(uri) and experiment.artifact_location.startswith("file:"):
            log.warning(
                "experiment %r keeps its artifacts at %s, on one machine's disk: other "
                "machines and the UI cannot read them. Use a new experiment "
                "(tracking.experiment=...) to have the server store them",
                cfg.experiment,
                experiment.artifact_location,
            )
        if experiment.tags.get(EXPERIMENT_KIND_TAG) is None:
            # an experiment created before the tag existed (or by hand): open on its runs too
            client.set_experiment_tag(experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
    mlflow.set_experiment(experiment_id=experiment_id)
    log.debug("tracking to %s, experiment %r (%s)", uri, cfg.experiment, experiment_id)


@contextmanager
def start_run(
    name: str,
    *,
    tags: Mapping[str, str] | None = None,
    nested: bool | None = None,
    parent_run_id: str | None = None,
    run_id: str | None = None,
) -> Iterator[str]:
    """Open an MLflow run in the active experiment and yield its id.

    Parameters
    ----------
    name
        Run name shown in the UI (e.g. ``backtest-h5``).
    tags
        Run tags, e.g. from :func:`standard_tags`.
    nested
        Open the run as a child of the active run (one per horizon or fold). None (the
        default) nests it when a run is active, so a stage run inside a sweep job's run
        becomes its child.
    parent_run_id
        Make the run a child of this run (which need not be active in this process: a
        Hydra sweep's parent run, opened by the launching process).
    run_id
        Continue this existing run instead of creating one (a retried sweep job).

    Yields
    ------
    str
        The run id. The run ends as FINISHED, or FAILED when the block raises.
    """
    mlflow = import_mlflow()
    all_tags = dict(tags or {})
    if parent_run_id:
        all_tags["mlflow.parentRunId"] = parent_run_id
    if nested is None:
        nested = mlflow.active_run() is not None
    if run_id is not None:
        all_tags.pop("mlflow.parentRunId", None)  # already set; the run keeps its parent
        with mlflow.start_run(run_id=run_id, tags=all_tags, nested=nested) as run:
            yield run.info.run_id
        return
    with mlflow.start_run(run_name=name, tags=all_tags, nested=nested) as run:
        yield run.info.run_id


def flatten_params(params: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Flatten nested mappings (dicts, OmegaConf configs, dataclasses) to dotted keys.

    Parameters
    ----------
    params
        Possibly nested configuration.
    prefix
        Key prefix for the top level.

    Returns
    -------
    dict[str, str]
        ``{"risk.max_position": "0.1", ...}``: keys sanitised to what mlflow accepts, values
        stringified and truncated to mlflow's 6000-character limit.
    """
    flat: dict[str, str] = {}
    for key, value in params.items():
        full = f"{prefix}.{key}" if prefix else str(key)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            value = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
        if isinstance(value, Mapping) and len(value) > 0:
            flat.update(flatten_params(value, full))
            continue
        text = "{}" if isinstance(value, Mapping) else str(value)
        flat[_clean_key(full)] = text[:MAX_PARAM_VALUE_LENGTH]
    return flat


def log_params(params: Mapping[str, Any]) -> None:
    """Log a (nested) config as params of the active run, in batches of 100.

    Parameters
    ----------
    params
        Usually the resolved Hydra config; flattened with :func:`flatten_params`.
    """
    mlflow = import_mlflow()
    _require_active_run(mlflow)
    items = list(flatten_params(params).items())
    for start in range(0, len(items), MAX_PARAMS_PER_BATCH):
        mlflow.log_params(dict(items[start : start + MAX_PARAMS_PER_BATCH]))


def log_metrics(metrics: Mapping[str, float], step: int | None = None) -> None:
    """Log finite metrics to the active run; record the others as tags instead.

    Parameters
    ----------
    metrics
        Metric name to value. A NaN, an infinity or a non-number is not logged as a metric
        (it would break plots and comparisons) but as the tag ``metric_skipped.<name>``.
    step
        Step (e.g. fold or epoch) the metrics belong to.
    """
    mlflow = import_mlflow()
    _require_active_run(mlflow)
    finite: dict[str, float] = {}
    skipped: dict[str, str] = {}
    for name, value in metrics.items():
        key = _clean_key(str(name))
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = math.nan
        if math.isfinite(number):
            finite[key] = number
        else:
            skipped[_clean_key(f"metric_skipped.{key}")] = str(value)[:MAX_PARAM_VALUE_LENGTH]
    items = list(finite.items())
    for start in range(0, len(items), MAX_METRICS_PER_BATCH):
        mlflow.log_metrics(dict(items[start : start + MAX_METRICS_PER_BATCH]), step=step)
    if skipped:
        # Routine (a benchmark has no IC, a curve without losses no Sortino): recorded as
        # tags, not worth a warning on every run.
        log.debug("not logging non-finite metrics: %s", skipped)
        mlflow.set_tags(skipped)


def log_metric_steps(series: Mapping[str, Sequence[float]], steps: Sequence[int]) -> None:
    """Log per-step metrics (e.g. one value per walk-forward fold) to the active run at once.

    ``series[name][i]`` is logged at ``steps[i]``; non-finite values are left out. One
    batched write instead of one per step (a 30-fold run logged 60 writes before).
    """
    import time

    mlflow = import_mlflow()
    _require_active_run(mlflow)
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    metrics = [
        Metric(_clean_key(str(name)), float(v), now, int(step))
        for name, values in series.items()
        for v, step in zip(values, steps, strict=True)
        if math.isfinite(float(v))
    ]
    client = mlflow.MlflowClient()
    for start in range(0, len(metrics), MAX_METRICS_PER_BATCH):
        client.log_batch(
            mlflow.active_run().info.run_id, metrics=metrics[start : start + MAX_METRICS_PER_BATCH]
        )


# Tag of a backtest run that logged its model: the URI the promote stage registers.
MODEL_URI_TAG = "model_uri"


def log_metrics_to(run_id: str, metrics: Mapping[str, float]) -> None:
    """Log finite metrics to a run by id (which may have ended); non-finite ones are skipped."""
    mlflow = import_mlflow()
    client = mlflow.MlflowClient()
    for name, value in metrics.items():
        number = float(value)
        if math.isfinite(number):
            client.log_metric(run_id, _clean_key(str(name)), number)


def set_run_tags(run_id: str, tags: Mapping[str, str]) -> None:
    """Set tags on a run by id (which may have ended)."""
    mlflow = import_mlflow()
    client = mlflow.MlflowClient()
    for key, value in tags.items():
        client.set_tag(run_id, key, str(value)[:MAX_TAG_VALUE_LENGTH])


TRACK_TAG = "live.track"


def log_track(
    experiment: str,
    track: str,
    metrics: Mapping[str, float | None],
    step: int,
    tags: Mapping[str, str],
) -> str:
    """Log one live session's figures to the run of a track (one run per deployed version).

    Parameters
    ----------
    experiment
        Experiment of the live tracks (created, model-training kind, when missing).
    track
        The track's name, e.g. ``paper-py-finance-bundled-h5-v3``: its run is found by tag
        and continued, so every session of a version is one run with steps.
    metrics
        Figures of the session (non-finite ones are left out).
    step
        The session as a step (``YYYYMMDD``).
    tags
        Tags of a new run (model, version, broker).

    Returns
    -------
    str
        The run id.
    """
    import time

    mlflow = import_mlflow()
    from mlflow.entities import Metric

    client = mlflow.MlflowClient()
    found = client.get_experiment_by_name(experiment)
    experiment_id = (
        found.experiment_id
        if found is not None
        else client.create_experiment(experiment, tags=EXPERIMENT_TAGS)
    )
    runs = client.search_runs(
        [experiment_id], filter_string=f"tags.`{TRACK_TAG}` = '{track}'", max_results=1
    )
    if runs:
        run_id = runs[0].info.run_id
    else:
        run_id = client.create_run(
            experiment_id, run_name=track, tags={**tags, TRACK_TAG: track}
        ).info.run_id
    now = int(time.time() * 1000)
    batch = [
        Metric(_clean_key(k), float(v), now, int(step))
        for k, v in metrics.items()
        if v is not None and math.isfinite(float(v))
    ]
    client.log_batch(run_id, metrics=batch)
    client.set_terminated(run_id, "FINISHED")
    return str(run_id)


def log_track_figure(run_id: str, fig: Any, name: str) -> None:
    """Log (replace) a figure of a track's run (:func:`log_track`), e.g. a chart redrawn daily.

    Parameters
    ----------
    run_id
        The track's run (what :func:`log_track` returned).
    fig
        A matplotlib figure; it is not closed.
    name
        Artifact file, e.g. ``monitor/live_vs_replay.png``.
    """
    mlflow = import_mlflow()
    mlflow.MlflowClient().log_figure(run_id, fig, name)


def log_track_file(run_id: str, path: str | Path, artifact_path: str | None = None) -> None:
    """Log a local file as an artifact of a track's run (:func:`log_track`)."""
    mlflow = import_mlflow()
    mlflow.MlflowClient().log_artifact(run_id, str(path), artifact_path)


def record_failed_run(name: str, params: Mapping[str, Any], tags: Mapping[str, str]) -> str:
    """Create a run that ended FAILED, with its params and tags (a ledger entry of a crash).

    Created through the client, so that it neither needs nor disturbs an active run.
    """
    mlflow = import_mlflow()
    client = mlflow.MlflowClient()
    active = mlflow.active_run()
    experiment_id = (
        active.info.experiment_id
        if active is not None
        else mlflow.tracking.fluent._get_experiment_id()  # the experiment setup() chose
    )
    all_tags = {"mlflow.runName": name, **{k: str(v) for k, v in tags.items()}}
    if active is not None:
        all_tags["mlflow.parentRunId"] = active.info.run_id
    run = client.create_run(experiment_id, tags=all_tags, run_name=name)
    run_id = run.info.run_id
    items = list(flatten_params(params).items())
    from mlflow.entities import Param

    for start in range(0, len(items), MAX_PARAMS_PER_BATCH):
        batch = [Param(k, v) for k, v in items[start : start + MAX_PARAMS_PER_BATCH]]
        client.log_batch(run_id, params=batch)
    client.set_terminated(run_id, status="FAILED")
    return run_id


def log_artifact(path: str | Path, artifact_path: str | None = None) -> None:
    """Log a local file or directory as an artifact of the active run.

    Parameters
    ----------
    path
        Local file, or directory whose contents are logged.
    artifact_path
        Directory inside the run's artifacts; the root by default.
    """
    mlflow = import_mlflow()
    _require_active_run(mlflow)
    local = Path(path)
    if local.is_dir():
        mlflow.log_artifacts(str(local), artifact_path)
    else:
        mlflow.log_artifact(str(local), artifact_path)


def log_dict(obj: Mapping[str, Any] | Sequence[Any], name: str) -> None:
    """Log a mapping (e.g. the resolved config) as a JSON or YAML artifact.

    Parameters
    ----------
    obj
        Dict, OmegaConf config or list; values that are not JSON types are stringified.
    name
        Artifact file, e.g. ``config.yaml`` or ``reports/summary.json``; ``.yaml``/``.yml``
        writes YAML, anything else JSON.
    """
    plain = _to_plain(obj)
    with tempfile.TemporaryDirectory(prefix="py-finance-") as tmp:
        local = Path(tmp) / PurePosixPath(name).name
        if local.suffix in {".yaml", ".yml"}:
            import yaml

            local.write_text(yaml.safe_dump(plain, sort_keys=False), encoding="utf-8")
        else:
            local.write_text(json.dumps(plain, indent=2), encoding="utf-8")
        log_artifact(local, _artifact_dir(name))


def log_figure(fig: Any, name: str) -> None:
    """Log a matplotlib (or plotly) figure as an image artifact.

    Parameters
    ----------
    fig
        The figure; it is not closed.
    name
        Artifact file, e.g. ``plots/equity.png``.
    """
    mlflow = import_mlflow()
    _require_active_run(mlflow)
    mlflow.log_figure(fig, name)


def log_frame(df: pd.DataFrame, name: str) -> None:
    """Log a DataFrame as a Parquet artifact.

    Parameters
    ----------
    df
        Frame to store, index included (e.g. ``session x symbol`` weights).
    name
        Artifact file, e.g. ``equity.parquet`` or ``backtest/weights``; ``.parquet`` is
        appended when missing. Non-string column labels are stringified (Parquet needs them).
    """
    if not name.endswith(".parquet"):
        name = f"{name}.parquet"
    if not all(isinstance(c, str) for c in df.columns):
        df = df.copy()
        df.columns = [str(c) for c in df.columns]
    with tempfile.TemporaryDirectory(prefix="py-finance-") as tmp:
        local = Path(tmp) / PurePosixPath(name).name
        df.to_parquet(local)
        log_artifact(local, _artifact_dir(name))


def standard_tags(
    *,
    horizon: int,
    model: str,
    regime_policy: str,
    data_hash: str,
    cwd: Path | None = None,
) -> dict[str, str]:
    """Return the tags every backtest run carries.

    Parameters
    ----------
    horizon
        Label horizon in sessions.
    model
        Model name (``lightgbm``, ``xgboost``, ...).
    regime_policy
        Regime policy name.
    data_hash
        DVC hash of the data the run used.
    cwd
        Where to ask git for the commit; the current directory by default.

    Returns
    -------
    dict[str, str]
        ``horizon, model, regime_policy, data_hash, git_sha``; ``git_sha`` is ``unknown``
        outside a git checkout and ends in ``-dirty`` when the work tree has changes.
    """
    return {
        "horizon": str(horizon),
        "model": model,
        "regime_policy": regime_policy,
        "data_hash": data_hash,
        "git_sha": git_sha(cwd),
    }


def git_sha(cwd: Path | None = None) -> str:
    """Return ``HEAD``'s commit (``-dirty`` appended if the tree has changes) or ``unknown``.

    Parameters
    ----------
    cwd
        Directory inside the repository; the current directory by default.

    Returns
    -------
    str
        The commit sha, ``<sha>-dirty``, or ``unknown`` when git is missing or fails.
    """
    sha = _git(["rev-parse", "HEAD"], cwd)
    if not sha:
        return "unknown"
    status = _git(["status", "--porcelain"], cwd)
    return f"{sha}-dirty" if status else sha


def _git(args: list[str], cwd: Path | None) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    return done.stdout.strip()


def _clean_key(key: str) -> str:
    return _BAD_KEY_CHARS.sub("_", key)[:MAX_KEY_LENGTH]


def _artifact_dir(name: str) -> str | None:
    parent = PurePosixPath(name).parent
    return None if str(parent) == "." else str(parent)


def _require_active_run(mlflow: Any) -> None:
    # mlflow would silently start an unnamed run; the contract is one named run per backtest.
    if mlflow.active_run() is None:
        raise RuntimeError("no active MLflow run: wrap the call in `tracking.start_run(...)`")


def _to_plain(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        obj = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        return {str(k): _to_plain(v) for k, v in obj.items()}
    if isinstance(obj, Sequence) and not isinstance(obj, str | bytes):
        return [_to_plain(v) for v in obj]
    if obj is None or isinstance(obj, bool | int | float | str):
        return obj
    if hasattr(obj, "item") and callable(obj.item):  # numpy scalars
        try:
            return _to_plain(obj.item())
        except (TypeError, ValueError):
            pass
    return str(obj)
