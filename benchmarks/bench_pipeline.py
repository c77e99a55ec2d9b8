"""The whole pipeline, stage by stage: wall time and peak memory at 100, 500 and 2,000 names.

Each configuration runs every DVC stage (ingest, features, labels, regimes, train, backtest,
report, promote) as its own fresh process, exactly as ``dvc repro`` runs them
(``pipelines/<stage>.py --params P --root R``), and records each stage's wall time and peak
resident memory (the child's ``ru_maxrss``). Then the model change of ``dvc exp run -S
model=xgboost`` (train, backtest, report, promote again with XGBoost) is timed the same way.

Configurations: the bundled data (20 survivors, 1990-2022, the default config) and the
survivorship-free synthetic market (``data=synthetic``) at ``--active`` index members (twice
as many names ever listed) over ``--sessions`` sessions, with the Alpha158 features, yearly
walk-forward LightGBM on the 5-day label, and everything else at its default. There is no peer
here: the figures are the acceptance budgets of the scale issue (500 names x 7,560 sessions:
10 minutes, 8 GiB; model change 3 minutes; bundled: 20 s and 15 s), written to
``benchmarks/results/pipeline.md`` with the machine they were measured on.

    python benchmarks/bench_pipeline.py                       # bundled, 100, 500, 2000
    python benchmarks/bench_pipeline.py --active 100 --no-bundled --sessions 2520
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import cpu_name

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("ingest", "features", "labels", "regimes", "train", "backtest", "report", "promote")
CHANGE = ("train", "backtest", "report", "promote")
GIB = 1024**3


@dataclass
class Run:
    """One configuration's figures: per stage (seconds, peak bytes) and the model change."""

    name: str
    overrides: list[str]
    stages: dict[str, tuple[float, int]] = field(default_factory=dict)
    change: dict[str, tuple[float, int]] = field(default_factory=dict)
    rank_ic: float | None = None
    error: str | None = None
    market: dict[str, Any] | None = None
    oracle_ic: float | None = None

    @property
    def total(self) -> float:
        return sum(t for t, _ in self.stages.values())

    @property
    def peak(self) -> int:
        return max((m for _, m in self.stages.values()), default=0)

    @property
    def change_total(self) -> float:
        return sum(t for t, _ in self.change.values())


def _python() -> str:
    venv = ROOT / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


def run_stage(stage: str, params: Path, root: Path, log: Path) -> tuple[float, int]:
    """Run one stage in a fresh process; its wall seconds and peak RSS in bytes."""
    cmd = [_python(), str(ROOT / "pipelines" / f"{stage}.py"), "--params", str(params)]
    cmd += ["--root", str(root)]
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "GIT_PYTHON_REFRESH": "quiet"}
    began = time.perf_counter()
    with log.open("a") as out:
        out.write(f"\n== {stage}\n")
        out.flush()
        proc = subprocess.Popen(cmd, cwd=root, stdout=out, stderr=subprocess.STDOUT, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - began
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"stage {stage} failed (exit {proc.returncode}); see {log}")
    return seconds, int(usage.ru_maxrss) * 1024  # Linux reports kilobytes


def compose(overrides: list[str], out: Path) -> None:
    subprocess.run(
        [_python(), "-m", "py_finance.config", str(out), *overrides],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    )


def run_config(run: Run, work: Path, change_model: str | None) -> Run:
    root = work / run.name
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    log = root / "stages.log"
    try:
        compose(run.overrides, root / "params.yaml")
        for stage in STAGES:
            run.stages[stage] = run_stage(stage, root / "params.yaml", root, log)
            print(
                f"  {run.name} {stage}: {run.stages[stage][0]:.1f} s, "
                f"{run.stages[stage][1] / GIB:.2f} GiB",
                flush=True,
            )
        skill = json.loads((root / "data/models/h5/skill.json").read_text())
        run.rank_ic = float(skill.get("oos_rank_ic", float("nan")))
        if run.market is not None:
            run.oracle_ic = oracle_rank_ic(root, run.market)
        if change_model is None:
            return run
        compose([*run.overrides, f"model={change_model}"], root / "params_change.yaml")
        for stage in CHANGE:
            run.change[stage] = run_stage(stage, root / "params_change.yaml", root, log)
        print(f"  {run.name} model change: {run.change_total:.1f} s", flush=True)
    except (RuntimeError, subprocess.CalledProcessError) as exc:
        run.error = (
            str(exc)
            if not isinstance(exc, subprocess.CalledProcessError)
            else (f"composing the config failed: {exc.stderr.strip()[-300:]}")
        )
        print(f"  {run.name}: {run.error}", flush=True)
    return run


def oracle_rank_ic(root: Path, market: dict[str, Any]) -> float:
    """The oracle's rank IC on the rows the model was scored on (members, 5-day label)."""
    import pandas as pd

    sys.path.insert(0, str(ROOT / "src"))
    from py_finance.data.sources.synthetic import SyntheticSource
    from py_finance.knownanswer import rank_ic

    preds = pd.read_parquet(root / "data/models/h5/predictions.parquet", columns=["score"])
    labels = pd.read_parquet(root / "data/features/labels_h5.parquet", columns=["fwd_ret_5"])
    oracle = pd.Series(SyntheticSource(**market).oracle_scores().stack(future_stack=True))
    oracle.index.names = ["session", "symbol"]
    rows = preds.index.intersection(labels.index)
    return rank_ic(oracle.reindex(rows), labels.loc[rows, "fwd_ret_5"])


def synthetic_overrides(active: int, sessions: int, features: str) -> list[str]:
    sys.path.insert(0, str(ROOT / "src"))
    from py_finance.knownanswer import market_overrides

    return [*market_overrides(active, sessions, 0.05, 0), f"features={features}", "scale=large"]


def table(runs: list[Run]) -> str:
    def cell(fig: tuple[float, int] | None) -> str:
        return "" if fig is None else f"{fig[0]:.1f} s / {fig[1] / GIB:.2f} GiB"

    head = "| stage | " + " | ".join(r.name for r in runs) + " |"
    lines = [head, "|---|" + "---|" * len(runs)]
    for stage in STAGES:
        lines.append(f"| {stage} | " + " | ".join(cell(r.stages.get(stage)) for r in runs) + " |")
    lines.append(
        "| **whole pipeline** | "
        + " | ".join(
            "failed"
            if r.error and len(r.stages) < len(STAGES)
            else f"**{r.total:.0f} s / {r.peak / GIB:.2f} GiB peak**"
            for r in runs
        )
        + " |"
    )
    lines.append(
        "| model change (train..promote) | "
        + " | ".join(f"{r.change_total:.0f} s" if r.change else "" for r in runs)
        + " |"
    )
    lines.append(
        "| out-of-sample rank IC | "
        + " | ".join("" if r.rank_ic is None else f"{r.rank_ic:.4f}" for r in runs)
        + " |"
    )
    lines.append(
        "| oracle's rank IC, same rows (recovery) | "
        + " | ".join(
            ""
            if r.oracle_ic is None or r.rank_ic is None
            else f"{r.oracle_ic:.4f} ({r.rank_ic / r.oracle_ic:.0%})"
            for r in runs
        )
        + " |"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--active", type=int, nargs="*", default=[100, 500, 2000])
    p.add_argument("--sessions", type=int, default=7560)
    p.add_argument("--features", default="alpha158")
    p.add_argument("--no-bundled", action="store_true", help="skip the bundled-data run")
    p.add_argument("--change-model", default="xgboost")
    p.add_argument("--no-change", action="store_true", help="skip the model-change rerun")
    p.add_argument("--work", default=str(ROOT / "outputs" / "bench_pipeline"))
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "pipeline.md"))
    args = p.parse_args(argv)
    work = Path(args.work)
    runs = []
    if not args.no_bundled:
        runs.append(Run("bundled (20 names)", []))
    for n in args.active:
        runs.append(
            Run(
                f"synthetic {n} active ({2 * n} listed) x {args.sessions}",
                synthetic_overrides(n, args.sessions, args.features),
                market={
                    "n_active": n,
                    "n_sessions": args.sessions,
                    "start": "1995-01-03",
                    "edge": 0.05,
                    "seed": 0,
                },
            )
        )
    for run in runs:
        print(f"== {run.name}", flush=True)
        run_config(run, work, None if args.no_change else args.change_model)
    text = "\n".join(
        [
            "# Pipeline benchmark: every stage as DVC runs it, wall time / peak memory",
            "",
            f"Measured {dt.datetime.now(dt.UTC).date().isoformat()} on {cpu_name()} "
            f"({os.cpu_count()} cores), Python {sys.version.split()[0]}; "
            "`python benchmarks/bench_pipeline.py` (`make bench`). Each stage is a fresh "
            "process (imports included); peak = that process's max resident memory.",
            "",
            f"Synthetic: `data=synthetic` (survivorship-free: listings, delistings, index "
            f"membership; edge 0.05, seed 0), features `{args.features}`, `scale=large` "
            "(yearly walk-forward LightGBM, conf/model/lightgbm.yaml, on the last 1,260 "
            "sessions, every 10th), 5-day label. Bundled: the default config "
            "(20 survivors: survivorship-biased). Model change: train, backtest, report and "
            f"promote again with `model={args.change_model}` (what `dvc exp run -S "
            f"model={args.change_model}` reruns).",
            "",
            table(runs),
            "",
            *[f"- {r.name}: {r.error}" for r in runs if r.error],
            "",
        ]
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
