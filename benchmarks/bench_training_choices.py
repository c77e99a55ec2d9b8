"""What each training-cost choice costs in out-of-sample rank IC, on the synthetic market.

The train stage is rerun (a fresh process each, as DVC runs it) on one prepared synthetic
market (features, labels) with one setting changed at a time: the window (expanding or the
last 1,260 sessions), session thinning (``walk_forward.train_every``), LightGBM's histogram
bins (``model.max_bin``) and warm starts from the previous fold
(``walk_forward.warm_trees``). Each row gives the stage's wall time and peak memory, the
out-of-sample rank IC and the oracle's rank IC on the same rows (the best any model can do).
Results go to ``benchmarks/results/training_choices.md``.

    python benchmarks/bench_training_choices.py --active 100
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


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--active", type=int, default=100)
    p.add_argument("--sessions", type=int, default=7560)
    p.add_argument("--features", default="alpha158")
    p.add_argument("--work", default=str(ROOT / "outputs" / "bench_training"))
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "training_choices.md"))
    args = p.parse_args(argv)
    work = Path(args.work)
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
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
