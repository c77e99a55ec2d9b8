"""Overlay the equity and drawdown curves of MLflow runs against the benchmark, with a table.

.venv/bin/python scripts/compare_runs.py RUN_ID RUN_ID
.venv/bin/python scripts/compare_runs.py --latest backtest-h5-regime_aware backtest-h5-baseline
.venv/bin/python scripts/compare_runs.py --sweep latest

A run is a run id or a run name of the configured experiment. A name that several runs share
(every `dvc repro` and experiment logs `backtest-h5-baseline`) is an error listing them (id,
start time, what differs) unless --latest takes the newest of each name on purpose. --sweep
takes a sweep's parent run (id, name, or `latest`) and adds its finished jobs.
Writes compare.png and compare.md to --out and prints the table, best Sharpe first.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from py_finance.errors import PyFinanceError, cli_errors


@cli_errors
def main(argv: list[str] | None = None) -> None:
    from py_finance import tracking
    from py_finance.config import build, load_params
    from py_finance.pipeline.cli import setup_logging

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="*", metavar="RUN_ID", help="run ids or run names")
    parser.add_argument(
        "--latest",
        action="store_true",
        help="a run name that several runs share means the newest of them (else an error "
        "lists them)",
    )
    parser.add_argument(
        "--sweep",
        metavar="PARENT_RUN_ID",
        help="also compare the finished jobs of this sweep (`latest`: the newest sweep)",
    )
    parser.add_argument(
        "--out", type=Path, default=Path("outputs/compare"), help="where compare.png/.md go"
    )
    parser.add_argument(
        "--log-to", metavar="RUN_ID", help="also log compare.png/.md as artifacts of this run"
    )
    parser.add_argument("--params", default="params.yaml", help="composed config (params.yaml)")
    parser.add_argument("--root", default=".", help="project root the paths are relative to")
    args = parser.parse_args(argv)
    setup_logging(logging.WARNING)

    root = Path(args.root).resolve()
    params = Path(args.params)
    cfg = build(load_params(params if params.is_absolute() else root / params)).tracking
    _require_store(cfg.tracking_uri, root)
    tracking.setup(cfg, root)

    # Names to ids first: an ambiguous name fails here, listing its runs.
    runs = [str(tracking.resolve_run(r, latest=args.latest).info.run_id) for r in args.runs]
    log_to = args.log_to
    if log_to is not None:
        log_to = str(tracking.resolve_run(log_to, latest=args.latest).info.run_id)
    if args.sweep:
        sweep = (
            tracking.latest_sweep()
            if args.sweep == "latest"
            else str(tracking.resolve_run(args.sweep, latest=args.latest).info.run_id)
        )
        jobs = tracking.sweep_job_ids(sweep)
        if not jobs:
            raise PyFinanceError(f"sweep {sweep} has no finished job runs")
        runs += [j for j in jobs if j not in runs]
    if not runs:
        raise PyFinanceError(
            "nothing to compare: give at least one RUN_ID or --sweep PARENT_RUN_ID"
        )
    out = args.out if args.out.is_absolute() else root / args.out
    table = tracking.compare(runs, out_dir=out, log_to=log_to)
    print(tracking.table_markdown(table), end="")
    print(f"\nchart: {out / 'compare.png'}  table: {out / 'compare.md'}")
    if log_to:
        print(f"logged compare.png and compare.md to run {log_to}")


def _require_store(uri: str, root: Path) -> None:
    """Refuse to create an empty SQLite store just to find no runs in it."""
    from py_finance.tracking import resolve_tracking_uri

    resolved = resolve_tracking_uri(uri, root)
    prefix = "sqlite:///"
    if resolved.startswith(prefix) and not Path(resolved[len(prefix) :]).exists():
        raise PyFinanceError(
            f"no tracking store at {resolved[len(prefix) :]}: run `make run` (or a sweep) first"
        )


if __name__ == "__main__":
    main()
