"""Backtest one model and horizon: Baseline vs Regime-Aware vs SPY buy-and-hold.

Trailing `key=value` arguments are Hydra overrides (e.g. `portfolio.weighting=inverse_vol`).
Outputs go to outputs/backtests/<tag>/, runs to MLflow (`make ui`).
"""

from __future__ import annotations

import argparse
import sys

from py_finance.data.cli import date_arg
from py_finance.errors import cli_errors


def add_backtest_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--start-date", type=date_arg, default=None, help="first session (default: data's)"
    )
    p.add_argument("--end-date", type=date_arg, default=None, help="last session (default: data's)")
    p.add_argument("--top-k", type=int, default=None, help="names held (default: config, 10)")
    p.add_argument("--regime-aware", action="store_true", help="regime exposure multipliers")
    p.add_argument("--vol-scaling", action="store_true", help="volatility targeting")
    p.add_argument("--drawdown-throttle", action="store_true", help="15%% drawdown throttle")
    p.add_argument("--sector-tilts", action="store_true", help="regime sector tilts")
    p.add_argument("overrides", nargs="*", help="Hydra overrides key=value")


@cli_errors
def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument(
        "--model", default="lightgbm", help="lightgbm | xgboost | lstm | tcn | transformer"
    )
    p.add_argument("--horizon", type=int, default=5, help="label horizon: 1, 5 or 20")
    add_backtest_flags(p)
    args = p.parse_args(argv)

    from py_finance.pipeline.cli import setup_logging
    from py_finance.pipeline.runner import BacktestFlags, run_backtest_cli

    setup_logging()
    flags = BacktestFlags(
        start_date=args.start_date,
        end_date=args.end_date,
        model=args.model,
        horizon=args.horizon,
        top_k=args.top_k,
        regime_aware=args.regime_aware,
        vol_scaling=args.vol_scaling,
        drawdown_throttle=args.drawdown_throttle,
        sector_tilts=args.sector_tilts,
    )
    _, report = run_backtest_cli(flags, args.overrides)
    print("\n" + report)


if __name__ == "__main__":
    main(sys.argv[1:])
