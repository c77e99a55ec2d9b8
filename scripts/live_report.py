"""Write one page on the live track from its daily logs alone: HTML + PNG, offline.

Live equity against the backtest engine's replay, cumulative implementation shortfall,
rolling realised rank IC against the backtest's out-of-sample band and a feature-drift heat
map; the HTML embeds the PNG (nothing is loaded from the network). With --mlflow both files
are logged to the deployment's monitor track in MLflow.

.venv/bin/python scripts/live_report.py --log-dir logs/live_trading --out logs/live_report
.venv/bin/python scripts/live_report.py --broker alpaca_paper --mlflow
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from py_finance.errors import cli_errors
from py_finance.pipeline.cli import setup_logging


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--log-dir",
        default=None,
        help="root folder of the daily logs (default: live.log_dir of the config)",
    )
    p.add_argument(
        "--broker",
        choices=["paper", "alpaca_paper", "alpaca_live"],
        default="paper",
        help="whose track: the paper broker's logs (default) or an Alpaca broker's sub-folder",
    )
    p.add_argument(
        "--out",
        default="logs/live_report",
        help="path of the page without suffix: writes <out>.html and <out>.png",
    )
    p.add_argument(
        "--mlflow",
        action="store_true",
        help="log the page to the monitor track of the last logged model version in MLflow",
    )
    p.add_argument("overrides", nargs="*", help="config overrides (key=value), for --mlflow")
    return p.parse_args(argv)


@cli_errors
def main(argv: list[str]) -> None:
    args = parse_args(argv)
    setup_logging(logging.WARNING)
    from py_finance.live.readiness import track_dir
    from py_finance.live.report import write_report

    log_root = args.log_dir
    ctx = None
    if log_root is None or args.mlflow:
        from py_finance.config import build, compose
        from py_finance.pipeline.context import Context

        ctx = Context(build(compose(args.overrides)), Path.cwd())
        log_root = log_root or str(ctx.root / ctx.settings.live.log_dir)
    folder = track_dir(log_root, args.broker)
    html, png = write_report(folder, args.out)
    print(f"wrote {html} and {png}")
    if args.mlflow and ctx is not None:
        from py_finance.live.monitor import log_report
        from py_finance.live.readiness import load_logs

        last = load_logs(folder)[-1]
        run_id = log_report(ctx, args.broker, last, [html, png])
        print(f"logged to MLflow run {run_id}")


if __name__ == "__main__":
    main(sys.argv[1:])
