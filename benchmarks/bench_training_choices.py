"""What each training-cost choice costs in out-of-sample rank IC, on the synthetic market.

The train stage is rerun (a fresh process each, as DVC runs it) on one prepared synthetic
market (features, labels) with one setting changed at a time: the window (expanding or the
last 1,260 sessions), session thinning (``walk_forward.train_every``), LightGBM's histogram
bins (``model.max_bin``) and warm starts from the previous fold
(``walk_forward.warm_trees``). Each row gives the stage's wall time and peak memory, the
out-of-sample rank IC and the oracle's rank IC on the same rows (the best any model can do).
Results go to ``benchmarks/results/training_choices.md``.

    python benchmarks/bench_training_choices.py --active 100

``--bundled`` instead compares the bundled data's training defaults (100 trees at learning
rate 0.1, folds trained in parallel processes) with the settings they replaced, for LightGBM
and XGBoost: ``benchmarks/results/training_choices_bundled.md``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import cpu_name
from bench_pipeline import GIB, ROOT, compose, oracle_rank_ic, run_stage, synthetic_overrides

CHOICES: list[tuple[str, list[str]]] = [
    ("expanding window, every session (scale=default)", ["scale=default"]),
    (
        "last 1,260 sessions, every session",
        ["walk_forward.window=rolling", "walk_forward.rolling_sessions=1260"],
    ),
    ("expanding window, every 10th session", ["walk_forward.train_every=10"]),
    ("last 1,260 sessions, every 10th (scale=large)", ["scale=large"]),
    ("scale=large, 63 histogram bins", ["scale=large", "model.max_bin=63"]),
    ("scale=large, warm start: 40 trees per fold", ["scale=large", "walk_forward.warm_trees=40"]),
]

DEFAULT_OUT = "training_choices.md"

# The bundled data's defaults against the settings they replaced (``--bundled``).
BEFORE = ["model.n_estimators=200", "model.learning_rate=0.05"]
BUNDLED_CHOICES: list[tuple[str, list[str]]] = [
    (
        "LightGBM 200 trees, lr 0.05, folds one after another (before)",
        [*BEFORE, "walk_forward.executor=local"],
    ),
    ("LightGBM 200 trees, lr 0.05, folds in 2 processes", BEFORE),
    ("LightGBM 100 trees, lr 0.1, folds one after another", ["walk_forward.executor=local"]),
    ("LightGBM 100 trees, lr 0.1, folds in 2 processes (default)", []),
    ("XGBoost 200 trees, lr 0.05, folds in 2 processes", ["model=xgboost", *BEFORE]),
    ("XGBoost 100 trees, lr 0.1, folds in 2 processes (default)", ["model=xgboost"]),
]


def bundled(work: Path, out: Path) -> None:
    """The train stage on the bundled data under each of ``BUNDLED_CHOICES``."""
    log = work / "stages.log"
    compose([], work / "params.yaml")
    for stage in ("ingest", "features", "labels"):
        run_stage(stage, work / "params.yaml", work, log)
    lines = [
        "# Training choices on the bundled data (20 survivors, 1990-2022)",
        "",
        f"Measured {dt.datetime.now(dt.UTC).date().isoformat()} on {cpu_name()} "
        f"({os.cpu_count()} cores); `python benchmarks/bench_training_choices.py --bundled`. "
        "The train stage only (29 yearly folds on an expanding window plus the final model, "
        "5-day rank label), a fresh process each, reading the features and importing "
        "included. The rank IC is the out-of-sample mean over 7,300 sessions; with 20 names "
        "and overlapping 5-day labels its standard error is about 0.007, so differences "
        "below that are noise.",
        "",
        "| setting | overrides | train stage | peak | rank IC | ICIR |",
        "|---|---|---|---|---|---|",
    ]
    for label, overrides in BUNDLED_CHOICES:
        compose(overrides, work / "params.yaml")
        seconds, peak = run_stage("train", work / "params.yaml", work, log)
        skill = json.loads((work / "data/models/h5/skill.json").read_text())
        ric, icir = float(skill["oos_rank_ic"]), float(skill["oos_icir"])
        print(f"{label}: {seconds:.1f} s, rank IC {ric:.4f}", flush=True)
        lines.append(
            f"| {label} | `{' '.join(overrides)}` | {seconds:.1f} s | {peak / GIB:.2f} GiB | "
            f"{ric:.4f} | {icir:.3f} |"
        )
    text = "\n".join([*lines, ""])
    out.write_text(text)
    print(text)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--active", type=int, default=100)
    p.add_argument("--sessions", type=int, default=7560)
    p.add_argument("--features", default="alpha158")
    p.add_argument("--work", default=str(ROOT / "outputs" / "bench_training"))
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / DEFAULT_OUT))
    p.add_argument(
        "--bundled",
        action="store_true",
        help="the bundled data's defaults against the settings they replaced",
    )
    args = p.parse_args(argv)
    work = Path(args.work)
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    if args.bundled:
        out = Path(args.out)
        bundled(
            work, out.with_name("training_choices_bundled.md") if out.name == DEFAULT_OUT else out
        )
        return
    base = [
        o
        for o in synthetic_overrides(args.active, args.sessions, args.features)
        if not o.startswith("scale=")
    ]
    market = {
        "n_active": args.active,
        "n_sessions": args.sessions,
        "start": "1995-01-03",
        "edge": 0.05,
        "seed": 0,
    }
    log = work / "stages.log"
    compose(base, work / "params.yaml")
    for stage in ("ingest", "features", "labels"):
        run_stage(stage, work / "params.yaml", work, log)
    rows = []
    for label, overrides in CHOICES:
        compose([*base, *overrides], work / "params.yaml")
        seconds, peak = run_stage("train", work / "params.yaml", work, log)
        skill = json.loads((work / "data/models/h5/skill.json").read_text())
        ric = float(skill["oos_rank_ic"])
        oracle = oracle_rank_ic(work, market)
        rows.append((label, " ".join(overrides), seconds, peak, ric, oracle))
        print(
            f"{label}: {seconds:.1f} s, {peak / GIB:.2f} GiB, rank IC {ric:.4f} "
            f"(oracle {oracle:.4f})",
            flush=True,
        )
    lines = [
        "# Training-cost choices and what they cost in rank IC",
        "",
        f"Measured {dt.datetime.now(dt.UTC).date().isoformat()} on {cpu_name()} "
        f"({os.cpu_count()} cores); `python benchmarks/bench_training_choices.py --active "
        f"{args.active}`. Synthetic market: {args.active} active names ({2 * args.active} "
        f"listed) x {args.sessions} sessions, edge 0.05, seed 0, features `{args.features}`, "
        "yearly walk-forward LightGBM on the 5-day rank label. The train stage only, a fresh "
        "process each (reading the features included).",
        "",
        "| setting | overrides | train stage | peak | rank IC | oracle's, same rows | recovery |",
        "|---|---|---|---|---|---|---|",
    ]
    for label, over, seconds, peak, ric, oracle in rows:
        lines.append(
            f"| {label} | `{over}` | {seconds:.0f} s | {peak / GIB:.2f} GiB | {ric:.4f} | "
            f"{oracle:.4f} | {ric / oracle:.0%} |"
        )
    text = "\n".join([*lines, ""])
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
