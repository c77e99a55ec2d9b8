"""Print the results table of the last pipeline run (reports/results.md) and who trades now.

.venv/bin/python scripts/show_results.py [reports/results.md]

Below the table (what the pipeline wrote when it ran), the registry as it is now: the
deployment's @champion and @challenger, and how many trials its research question holds now
(every later experiment raises the DSR's bar; scripts/promote.py re-judges with it).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path


def registry_now(root: Path) -> str:
    """One paragraph: who is champion and challenger now, and the question's trial count."""
    from py_finance import tracking
    from py_finance.config import build, load_params
    from py_finance.pipeline.context import Context

    ctx = Context(build(load_params(root / "params.yaml")), root)
    ref_path = ctx.backtest_dir() / "model_ref.json"
    metrics_path = ctx.backtest_dir() / "metrics.json"
    tracking.setup(ctx.settings.tracking, root)
    name = ctx.deployment
    champion = tracking.get_alias_version(name, tracking.CHAMPION)
    challenger = tracking.get_alias_version(name, tracking.CHALLENGER)
    text = (
        f"Registry now: {name}@champion is "
        + (f"v{champion}" if champion else "none (no model to trade)")
        + (f", @challenger v{challenger}" if challenger else "")
        + "."
    )
    if ref_path.exists() and metrics_path.exists():
        question = json.loads(ref_path.read_text())["question"]
        then = int(json.loads(metrics_path.read_text())["regime_aware"].get("n_trials", 0))
        now = tracking.count_trials(question).n_trials
        if now != then:
            text += (
                f" Its research question holds {now} trials now (the table's DSR is over "
                f"{then}): `scripts/promote.py` judges with {now}."
            )
    return text


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", default="reports/results.md", help="results page")
    parser.add_argument("--root", default=".", help="project root")
    args = parser.parse_args(argv)
    path = Path(args.path)
    if not path.exists():
        print(f"error: {path} not found: run `make run` first", file=sys.stderr)
        raise SystemExit(2)
    print()
    print(path.read_text(encoding="utf-8"))
    logging.basicConfig(level=logging.WARNING)
    for noisy in ("alembic", "mlflow"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    try:
        print(registry_now(Path(args.root).resolve()))
    except Exception as exc:  # the table stands without the registry's line
        print(f"(registry not read: {type(exc).__name__}: {exc})")


if __name__ == "__main__":
    main()
