"""Backtest one model at several horizons and print a results table per horizon.

Trailing `key=value` arguments are Hydra overrides. With --run-benchmarks the tables include
SPY buy-and-hold (the bundled S&P 500 index stands in offline) and the equal-weight universe.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from py_finance.errors import cli_errors
from run_backtest import add_backtest_flags


@cli_errors
def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument(
        "--model-type", default="lightgbm", help="lightgbm | xgboost | lstm | tcn | transformer"
    )
    p.add_argument("--horizons", type=int, nargs="+", default=[1, 5, 20])
    p.add_argument("--run-benchmarks", action="store_true", help="add SPY B&H and EW columns")
    add_backtest_flags(p)
    args = p.parse_args(argv)

    from py_finance.pipeline.cli import setup_logging
    from py_finance.pipeline.evaluation import results_table
    from py_finance.pipeline.runner import BacktestFlags, run_backtest_cli

    setup_logging()
    sections = []
    for horizon in args.horizons:
        flags = BacktestFlags(
            start_date=args.start_date,
            end_date=args.end_date,
            model=args.model_type,
            horizon=horizon,
            top_k=args.top_k,
            regime_aware=args.regime_aware,
            vol_scaling=args.vol_scaling,
            drawdown_throttle=args.drawdown_throttle,
            sector_tilts=args.sector_tilts,
        )
        metrics, _ = run_backtest_cli(flags, args.overrides)
        if not args.run_benchmarks:
            metrics = {k: v for k, v in metrics.items() if k not in ("benchmark", "equal_weight")}
        period = metrics["period"]
        sections.append(
            f"## Horizon {horizon} ({args.model_type}, {period['start']} to {period['end']})\n\n"
            + results_table(metrics)
        )
        caveat = metrics.get("survivorship_biased", False)
    text = "\n\n".join(sections)
    if caveat:
        text += (
            "\n\nSurvivorship bias: the bundled universe is 20 large caps that survived to "
            "2022; every strategy number is inflated by that choice."
        )
    print("\n" + text)


if __name__ == "__main__":
    main(sys.argv[1:])
