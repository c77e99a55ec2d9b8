"""Compare tracked runs: one chart of equity and drawdown curves, one metrics table.

A run is named by its id or by its name (the one run of that name in the active
experiment; a name that several runs share is an error listing them, unless the newest is
asked for). Backtest runs carry ``equity.parquet`` (their variant's growth of 1 and the
benchmark's); a sweep job run carries none of its own, so its curve is that of its candidate
backtest, the child run tagged ``variant=regime_aware`` by default.

>>> tracking.setup(cfg.tracking)
>>> table = tracking.compare(["backtest-h5-regime_aware", "backtest-h5-baseline"],
...                          out_dir=Path("outputs/compare"))
>>> print(tracking.table_markdown(table))
"""

from __future__ import annotations

import io
import logging
import math
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from py_finance.errors import PyFinanceError
from py_finance.tracking._mlflow import import_mlflow
from py_finance.tracking.sweeps import SWEEP_TAG

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

log = logging.getLogger(__name__)

EQUITY_ARTIFACT = "equity.parquet"
BENCHMARK_COLUMN = "benchmark"
DEFAULT_VARIANT = "regime_aware"
# Columns of the metrics table, in order; a column is shown when at least one run has it.
DEFAULT_METRICS = ("sharpe", "cagr", "max_drawdown", "dsr", "n_trials", "rank_ic", "turnover")
# Metric keys a column is read from, first present wins: backtest runs log the model's skill
# as ``oos_rank_ic``, sweep job runs prefix the skill keys once more.
METRIC_ALIASES: dict[str, tuple[str, ...]] = {
    "rank_ic": ("rank_ic", "oos_rank_ic", "oos_oos_rank_ic"),
    "ic": ("ic", "oos_ic", "oos_oos_ic"),
}
# Tags that tell runs apart in a legend when they differ between the compared runs.
_LABEL_TAGS = ("model", "horizon", "regime_policy", "variant")
_MAX_LABEL_KEYS = 3
_MAX_VALUE_CHARS = 24
# A float logged with more digits than a label needs.
_LONG_FLOAT = re.compile(r"-?\d+\.\d{5,}(e[-+]?\d+)?")
# Runs of an ambiguous name listed in the error.
_MAX_CANDIDATES = 6
_PROGRESS_ENV = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"


class RunNotFoundError(PyFinanceError):
    """A run id or name names no run of the tracking store."""


class AmbiguousRunError(PyFinanceError):
    """A run name names several runs (and the newest was not asked for)."""


@dataclass(frozen=True, slots=True)
class Curve:
    """The out-of-sample curves of one compared run.

    Attributes
    ----------
    run_id
        The run that was asked for (a backtest or a sweep job).
    source_run_id
        The backtest run whose ``equity.parquet`` the curves come from (``run_id`` itself, or
        a sweep job's candidate backtest).
    label
        Legend label: the run name and the tags and params that differ between the runs.
    equity
        Growth of 1 by session (close of session t), NaNs dropped.
    benchmark
        The benchmark's growth of 1 over the same sessions; None when the artifact has none.
    """

    run_id: str
    source_run_id: str
    label: str
    equity: pd.Series
    benchmark: pd.Series | None


def resolve_run(ref: str, *, latest: bool = False) -> Any:
    """The mlflow ``Run`` named by ``ref``: a run id, else the one run of that name.

    Names are looked up in the active experiment (see :func:`py_finance.tracking.setup`).
    Several runs often share a name (every ``dvc repro`` or experiment logs
    ``backtest-h5-baseline``): a name is then ambiguous unless ``latest`` is set.

    Parameters
    ----------
    ref
        A run id or a run name.
    latest
        Take the newest run of an ambiguous name on purpose.

    Raises
    ------
    RunNotFoundError
        When no run has that id or name.
    AmbiguousRunError
        When several runs have that name and ``latest`` is not set; the message lists them
        (run id, start time, what tells them apart).
    """
    mlflow = import_mlflow()
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import fluent

    client = mlflow.MlflowClient()
    try:
        return client.get_run(ref)
    except MlflowException as exc:
        if exc.error_code not in {"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"}:
            raise
    experiment_id = fluent._get_experiment_id()
    quote = '"' if "'" in ref else "'"
    found = []
    if quote not in ref:
        found = client.search_runs(
            [experiment_id],
            filter_string=f"attributes.run_name = {quote}{ref}{quote}",
            max_results=1 if latest else _MAX_CANDIDATES + 1,
            order_by=["attributes.start_time DESC"],
        )
    if not found:
        experiment = client.get_experiment(experiment_id)
        raise RunNotFoundError(
            f"unknown run {ref!r}: no run has this id, and no run of experiment "
            f"{experiment.name!r} has this name (list runs with `make ui`)"
        )
    if len(found) > 1:
        shown = found[:_MAX_CANDIDATES]
        more = " and more" if len(found) > _MAX_CANDIDATES else ""
        raise AmbiguousRunError(
            f"run name {ref!r} names {len(shown)}{more} runs, newest first: "
            + "; ".join(
                _candidate(run, extra)
                for run, extra in zip(shown, _differences(shown), strict=True)
            )
            + ": give a run id, or --latest to take the newest on purpose"
        )
    return found[0]


def _differences(runs: Sequence[Any]) -> list[str]:
    """What tells runs of one name apart: the tags and params that differ (``top_k=5``)."""
    out = []
    for label, run in zip(run_labels(runs), runs, strict=True):
        rest = label[len(str(run.info.run_name or run.info.run_id[:8])) :]
        rest = re.sub(r" \[[0-9a-f]{8}\]$", "", rest).strip()
        out.append(rest[1:-1] if rest.startswith("(") and rest.endswith(")") else rest)
    return out


def _candidate(run: Any, extra: str) -> str:
    """``<run id> (<start time UTC>, <tags>[, <what differs>])`` for an ambiguity error."""
    import datetime as dt

    started = dt.datetime.fromtimestamp(run.info.start_time / 1000, tz=dt.UTC)
    tags = run.data.tags
    what = [started.strftime("%Y-%m-%d %H:%M:%S UTC")]
    what += [f"{k}={tags[k]}" for k in ("model", "horizon") if tags.get(k) and f"{k}=" not in extra]
    what += [extra] if extra else []
    return f"{run.info.run_id} ({', '.join(what)})"


def latest_sweep() -> str:
    """Id of the newest sweep parent run (tag ``sweep=parent``) of the active experiment.

    Raises
    ------
    RunNotFoundError
        When the experiment holds no sweep.
    """
    mlflow = import_mlflow()
    from mlflow.tracking import fluent

    client = mlflow.MlflowClient()
    experiment_id = fluent._get_experiment_id()
    found = client.search_runs(
        [experiment_id],
        filter_string=f"tags.{SWEEP_TAG} = 'parent'",
        max_results=1,
        order_by=["attributes.start_time DESC"],
    )
    if not found:
        experiment = client.get_experiment(experiment_id)
        raise RunNotFoundError(
            f"experiment {experiment.name!r} holds no sweep: run a multirun first "
            "(`pipelines/experiment.py -m ...`)"
        )
    return str(found[0].info.run_id)


def sweep_job_ids(parent_run_id: str, *, finished_only: bool = True) -> list[str]:
    """Ids of the job runs of a sweep, oldest first.

    Parameters
    ----------
    parent_run_id
        The sweep's parent run (tag ``sweep=parent``).
    finished_only
        Leave out jobs that failed or are still running (they have no curves).
    """
    from py_finance.tracking.sweeps import child_runs

    parent = resolve_run(parent_run_id)
    jobs = [r for r in child_runs(parent.info.run_id) if r.data.tags.get(SWEEP_TAG) == "job"]
    if finished_only:
        jobs = [r for r in jobs if r.info.status == "FINISHED"]
    return [str(r.info.run_id) for r in jobs]


def load_curves(run_ids: Sequence[str], *, variant: str = DEFAULT_VARIANT) -> list[Curve]:
    """Download the equity curves of runs.

    Parameters
    ----------
    run_ids
        Run ids or names (see :func:`resolve_run`), in the order the curves are wanted.
    variant
        Which backtest of a sweep job run to take (the ``variant`` tag of its child runs).

    Returns
    -------
    list[Curve]
        One per run, labelled so that the runs can be told apart.

    Raises
    ------
    RunNotFoundError
        When a run is unknown.
    PyFinanceError
        When a run has no ``equity.parquet`` and no child backtest of ``variant`` that has one.
    """
    runs = [resolve_run(ref) for ref in run_ids]
    labels = run_labels(runs)
    curves = []
    with tempfile.TemporaryDirectory(prefix="py-finance-compare-") as tmp:
        for i, (run, label) in enumerate(zip(runs, labels, strict=True)):
            source = _equity_run(run, variant)
            frame = _download_frame(source.info.run_id, EQUITY_ARTIFACT, Path(tmp) / str(i))
            column = source.data.tags.get("variant")
            if column not in frame.columns:
                others = [c for c in frame.columns if c != BENCHMARK_COLUMN]
                if not others:
                    raise PyFinanceError(
                        f"{EQUITY_ARTIFACT} of run {source.info.run_id} has no strategy column "
                        f"(columns: {list(frame.columns)})"
                    )
                column = others[0]
            bench = None
            if BENCHMARK_COLUMN in frame.columns:
                bench = frame[BENCHMARK_COLUMN].dropna().rename(BENCHMARK_COLUMN)
            curves.append(
                Curve(
                    run_id=str(run.info.run_id),
                    source_run_id=str(source.info.run_id),
                    label=label,
                    equity=frame[column].dropna().rename(label),
                    benchmark=bench,
                )
            )
    return curves


def comparison_figure(
    curves: Sequence[Curve], benchmark: pd.Series | None = None, *, title: str | None = None
) -> Figure:
    """Equity curves (log scale) above their drawdowns, the benchmark in black.

    Parameters
    ----------
    curves
        From :func:`load_curves`.
    benchmark
        Benchmark growth of 1 by session; by default the longest benchmark of the curves.
    title
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
        Two panels sharing the session axis; drawdown is ``equity / running peak - 1``.
        Built without pyplot, so nothing needs closing.
    """
    from matplotlib.figure import Figure
    from matplotlib.ticker import PercentFormatter

    if benchmark is None:
        benches = [c.benchmark for c in curves if c.benchmark is not None and len(c.benchmark)]
        benchmark = max(benches, key=len) if benches else None

    fig = Figure(figsize=(11, 7), layout="constrained")
    ax_eq, ax_dd = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1.3]})
    for curve in curves:
        (line,) = ax_eq.plot(curve.equity.index, curve.equity, linewidth=1.1, label=curve.label)
        ax_dd.plot(
            curve.equity.index, _drawdown(curve.equity), linewidth=0.9, color=line.get_color()
        )
    if benchmark is not None:
        ax_eq.plot(benchmark.index, benchmark, color="black", linewidth=1.4, label="benchmark")
        ax_dd.plot(benchmark.index, _drawdown(benchmark), color="black", linewidth=1.0)
    ax_eq.set_yscale("log")
    ax_eq.set_ylabel("growth of 1 (log scale)")
    ax_eq.yaxis.set_major_formatter(_plain_log_formatter())
    ax_eq.yaxis.set_minor_formatter(_plain_log_formatter())
    ax_eq.grid(alpha=0.3, which="both")
    ax_eq.legend(loc="upper left", fontsize="small", ncol=1 if len(curves) < 8 else 2)
    ax_eq.set_title(title or "Out of sample: growth of 1 and drawdown")
    ax_dd.set_ylabel("drawdown")
    ax_dd.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    ax_dd.grid(alpha=0.3)
    return fig


def metrics_table(
    run_ids: Sequence[str],
    metrics: Sequence[str] = DEFAULT_METRICS,
    *,
    sort_by: str = "sharpe",
) -> pd.DataFrame:
    """The runs' metrics, best first.

    Parameters
    ----------
    run_ids
        Run ids or names (see :func:`resolve_run`).
    metrics
        Columns wanted; a column is kept when at least one run logged it (under its name or
        one of :data:`METRIC_ALIASES`), and is NaN for the runs that did not.
    sort_by
        Column to sort on, descending, NaN last; the order given when the column is absent.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``run`` (the legend label of :func:`load_curves`), with a ``run_id``
        column then the metrics as logged (``cagr``, ``max_drawdown`` as fractions; Sharpe
        annualised).
    """
    return _table([resolve_run(ref) for ref in run_ids], metrics, sort_by=sort_by)


def sweep_summary(
    parent_run_id: str, metrics: Sequence[str] = DEFAULT_METRICS, *, sort_by: str = "sharpe"
) -> pd.DataFrame:
    """The table of a sweep's jobs, best first, with DSR and its trial count.

    Parameters
    ----------
    parent_run_id
        The sweep's parent run.
    metrics, sort_by
        As in :func:`metrics_table`.

    Returns
    -------
    pandas.DataFrame
        One row per job run (failed ones included, with NaN metrics, last): ``run_id``,
        ``status``, ``attempts`` (more than 1: the job was retried after its worker died)
        and the metrics. Empty when the sweep has no jobs.
    """
    from py_finance.tracking.sweeps import child_runs

    parent = resolve_run(parent_run_id)
    jobs = [r for r in child_runs(parent.info.run_id) if r.data.tags.get(SWEEP_TAG) == "job"]
    table = _table(jobs, metrics, sort_by=sort_by)
    ordered = _in_order(jobs, table)
    table.insert(1, "status", [str(r.info.status) for r in ordered])
    # Attempts of each job: more than 1 when a launcher retried it (its worker died).
    table.insert(2, "attempts", [int(r.data.tags.get("sweep.attempt", "1")) for r in ordered])
    return table


def table_markdown(table: pd.DataFrame, digits: int = 4) -> str:
    """A metrics table as a Markdown table (``n/a`` for NaN, counts as integers).

    A table whose DSR column covers one research question ends with its trial count.
    """
    head = [str(table.index.name or ""), *map(str, table.columns)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, row in table.iterrows():
        cells = [str(label)] + [_cell(row[c], c, digits) for c in table.columns]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    note = trials_note(table)
    return "\n".join(lines) + "\n" + (f"\n{note}" if note else "")


def compare(
    run_ids: Sequence[str],
    *,
    out_dir: Path | None = None,
    log_to: str | None = None,
    name: str = "compare",
    variant: str = DEFAULT_VARIANT,
    metrics: Sequence[str] = DEFAULT_METRICS,
) -> pd.DataFrame:
    """Chart and tabulate runs; write ``{name}.png`` and ``{name}.md`` and/or log them.

    Parameters
    ----------
    run_ids
        Run ids or names (see :func:`resolve_run`); at least one.
    out_dir
        Directory to write the two files to (atomically); nothing is written when None.
    log_to
        Run id or name to log the two files to as artifacts (the run may have ended).
    name
        File stem of the two files.
    variant, metrics
        As in :func:`load_curves` and :func:`metrics_table`.

    Returns
    -------
    pandas.DataFrame
        The metrics table, best first.
    """
    from py_finance.io import write_text

    if not run_ids:
        raise PyFinanceError("nothing to compare: give at least one run id or name")
    target = resolve_run(log_to).info.run_id if log_to is not None else None
    curves = load_curves(run_ids, variant=variant)
    table = _table(
        [resolve_run(c.run_id) for c in curves],
        metrics,
        sort_by="sharpe",
        curves={c.run_id: c.equity for c in curves},
    )
    png = _png_bytes(comparison_figure(curves))
    text = table_markdown(table)
    if out_dir is not None:
        from py_finance.io import atomic_path

        with atomic_path(Path(out_dir) / f"{name}.png") as tmp:
            tmp.write_bytes(png)
        write_text(text, Path(out_dir) / f"{name}.md")
    if target is not None:
        mlflow = import_mlflow()
        client = mlflow.MlflowClient()
        with tempfile.TemporaryDirectory(prefix="py-finance-compare-") as tmp_dir:
            for suffix, write in ((".png", png), (".md", text.encode("utf-8"))):
                local = Path(tmp_dir) / f"{name}{suffix}"
                local.write_bytes(write)
                client.log_artifact(target, str(local))
        log.info("logged %s.png and %s.md to run %s", name, name, target)
    return table


def log_comparison(
    parent_run_id: str,
    run_ids: Sequence[str],
    name: str = "compare",
    *,
    variant: str = DEFAULT_VARIANT,
) -> pd.DataFrame:
    """Log ``{name}.png`` (the chart) and ``{name}.md`` (the table) as artifacts of a run.

    Parameters
    ----------
    parent_run_id
        The run that receives the artifacts, e.g. a sweep's parent run; it need not be
        active and may have ended.
    run_ids
        The runs compared (ids or names).
    name
        File stem of the two artifacts.
    variant
        As in :func:`load_curves`.

    Returns
    -------
    pandas.DataFrame
        The metrics table, best first.
    """
    return compare(run_ids, log_to=parent_run_id, name=name, variant=variant)


def run_labels(runs: Sequence[Any]) -> list[str]:
    """Legend labels: each run's name, then up to 3 tags or params that differ between runs.

    A key whose value already appears in every run's name (``h5`` in ``backtest-h5-...``) is
    left out; runs whose labels would still be equal get their short id appended.
    """
    names = [str(r.info.run_name or r.info.run_id[:8]) for r in runs]
    keys: list[tuple[str, str, list[str]]] = []  # (shown key, source, values)
    if len(runs) > 1:
        for tag in _LABEL_TAGS:
            values = [str(r.data.tags.get(tag, "")) for r in runs]
            keys.append((tag, "tag", values))
        common = set.intersection(*(set(r.data.params) for r in runs))
        for param in sorted(common):
            if param.endswith("_target_") or param in _LABEL_TAGS:
                continue
            keys.append((param, "param", [str(r.data.params[param]) for r in runs]))
    shown: list[tuple[str, list[str]]] = []
    for key, _, values in keys:
        if len(set(values)) < 2:
            continue
        if all(v and v in n for v, n in zip(values, names, strict=True)):
            continue
        shown.append((key.rsplit(".", 1)[-1], values))
        if len(shown) == _MAX_LABEL_KEYS:
            break
    labels = []
    for i, run_name in enumerate(names):
        extra = ", ".join(f"{k}={_short(v[i])}" for k, v in shown)
        labels.append(f"{run_name} ({extra})" if extra else run_name)
    if len(set(labels)) < len(labels):
        labels = [f"{lab} [{r.info.run_id[:8]}]" for lab, r in zip(labels, runs, strict=True)]
    return labels


def _table(
    runs: Sequence[Any],
    metrics: Sequence[str],
    *,
    sort_by: str,
    curves: Mapping[str, pd.Series] | None = None,
) -> pd.DataFrame:
    import pandas as pd

    labels = run_labels(runs)
    rows = []
    for run, label in zip(runs, labels, strict=True):
        logged = run.data.metrics
        row: dict[str, Any] = {"run": label, "run_id": str(run.info.run_id)}
        for column in metrics:
            key = next((k for k in METRIC_ALIASES.get(column, (column,)) if k in logged), None)
            row[column] = float(logged[key]) if key is not None else math.nan
        rows.append(row)
    table = pd.DataFrame(rows, columns=["run", "run_id", *metrics]).set_index("run")
    if "dsr" in metrics:
        _current_dsr(runs, table, curves or {})
    table = table[["run_id", *[c for c in metrics if table[c].notna().any()]]]
    counts: list[float] = (
        sorted(table["n_trials"].dropna().unique()) if "n_trials" in table.columns else []
    )
    if "dsr" in table.columns and len(counts) == 1:
        # One research question: its trial count is said once, beside the table.
        table.attrs["n_trials"] = int(counts[0])
        table = table.drop(columns="n_trials")
    if sort_by in table.columns:
        table = table.sort_values(sort_by, ascending=False, na_position="last", kind="stable")
    return table


def _current_dsr(runs: Sequence[Any], table: pd.DataFrame, curves: Mapping[str, pd.Series]) -> None:
    """Replace each row's logged DSR by the one over its question's trial count now.

    A run's logged DSR was deflated for the trials of its day; rows logged at different times
    would mix counts and could not be compared. Each row is deflated again, from its
    candidate curve, for the trials its research question holds now (``n_trials``). Rows
    without a question or a curve keep NaN. ``curves`` are candidate curves already loaded,
    by run id (not downloaded again).
    """
    from py_finance.tracking.promotion import (
        QUESTION_TAG,
        PromotionConfig,
        candidate_returns,
        count_trials,
        gate_evidence,
    )

    cfg = PromotionConfig()
    records: dict[str, Any] = {}
    dsr, trials = [], []
    with tempfile.TemporaryDirectory(prefix="py-finance-dsr-") as tmp:
        for i, run in enumerate(runs):
            value, count = math.nan, math.nan
            try:
                source = _equity_run(run, run.data.tags.get("variant", DEFAULT_VARIANT))
            except PyFinanceError:
                source = None
            question = None if source is None else source.data.tags.get(QUESTION_TAG)
            if source is not None and question:
                if question not in records:
                    records[question] = count_trials(question)
                record = records[question]
                variant = source.data.tags.get("variant", DEFAULT_VARIANT)
                curve = curves.get(str(run.info.run_id))
                if curve is None:
                    frame = _download_frame(source.info.run_id, EQUITY_ARTIFACT, Path(tmp) / str(i))
                    curve = frame[variant] if variant in frame.columns else None
                if curve is not None:
                    evidence = gate_evidence(
                        candidate_returns(curve),
                        math.nan,
                        n_trials=record.n_trials,
                        trial_sharpes=record.sharpes,
                        sr_variance=cfg.sr_variance,
                    )
                    value, count = evidence.dsr, float(record.n_trials)
            dsr.append(value)
            trials.append(count)
    table["dsr"] = dsr
    table["n_trials"] = trials


def trials_note(table: pd.DataFrame) -> str:
    """``DSR deflated for the 6 trials its research question holds now.`` ("" without one)."""
    n = table.attrs.get("n_trials")
    if n is None:
        return ""
    return f"DSR deflated for the {n} trials its research question holds now.\n"


def _in_order(runs: Sequence[Any], table: pd.DataFrame) -> list[Any]:
    by_id = {str(r.info.run_id): r for r in runs}
    return [by_id[i] for i in table["run_id"]]


def _equity_run(run: Any, variant: str) -> Any:
    """The run holding the curve of ``run``: itself, or its child backtest of ``variant``."""
    mlflow = import_mlflow()
    client = mlflow.MlflowClient()
    run_id = run.info.run_id
    if any(f.path == EQUITY_ARTIFACT for f in client.list_artifacts(run_id)):
        return run
    children = client.search_runs(
        [run.info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{run_id}' and tags.variant = '{variant}'",
        max_results=10,
        order_by=["attributes.start_time DESC"],
    )
    for child in children:
        if any(f.path == EQUITY_ARTIFACT for f in client.list_artifacts(child.info.run_id)):
            return child
    raise PyFinanceError(
        f"run {run_id} ({run.info.run_name}) has no {EQUITY_ARTIFACT} and no child backtest "
        f"tagged variant={variant!r} with one: compare backtest runs or sweep job runs"
    )


def _download_frame(run_id: str, artifact: str, dst: Path) -> pd.DataFrame:
    import pandas as pd

    mlflow = import_mlflow()
    dst.mkdir(parents=True, exist_ok=True)
    # mlflow draws a progress bar per file, even for one small Parquet file
    saved = os.environ.get(_PROGRESS_ENV)
    os.environ[_PROGRESS_ENV] = "false"
    try:
        local = mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path=artifact, dst_path=str(dst)
        )
    finally:
        if saved is None:
            os.environ.pop(_PROGRESS_ENV, None)
        else:
            os.environ[_PROGRESS_ENV] = saved
    try:
        return pd.read_parquet(local)
    except (OSError, ValueError) as exc:
        raise PyFinanceError(
            f"{artifact} of run {run_id} is not readable ({exc}); rerun that backtest"
        ) from None


def _plain_log_formatter() -> Any:
    """Label the log axis with plain numbers (0.8, 2, 5), not 8x10^-1.

    matplotlib's log formatter still decides which ticks get a label, so a wide range is
    not crowded with labelled minor ticks.
    """
    from matplotlib.ticker import LogFormatter

    class PlainLogFormatter(LogFormatter):
        def __call__(self, x: float, pos: int | None = None) -> str:
            return f"{x:g}" if super().__call__(x, pos) else ""

    return PlainLogFormatter(labelOnlyBase=False)


def _drawdown(equity: pd.Series) -> pd.Series:
    return equity / equity.cummax() - 1.0


def _png_bytes(fig: Figure) -> bytes:
    """The figure as PNG, without run-dependent metadata (same runs, same bytes)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, metadata={"Software": None})
    return buf.getvalue()


def _short(value: str) -> str:
    """A param value for a label: long floats to 4 significant digits, the rest cut short.

    An Optuna draw such as 0.051234567890123456 is logged in full; the label needs 0.05123.
    """
    if _LONG_FLOAT.fullmatch(value):
        return f"{float(value):.4g}"
    return value if len(value) <= _MAX_VALUE_CHARS else value[: _MAX_VALUE_CHARS - 1] + "…"


def _cell(value: Any, column: str, digits: int) -> str:
    if isinstance(value, str):
        return value
    number = float(value)
    if math.isnan(number):
        return "n/a"
    if column == "n_trials":
        return str(round(number))
    return f"{number:.{digits}g}"
