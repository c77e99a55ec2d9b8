"""Daily live loop: trade the `@champion` model for the latest session (run after the close)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from py_finance.config import build, compose, load_params
from py_finance.errors import PyFinanceError, cli_errors
from py_finance.pipeline.cli import setup_logging
from py_finance.pipeline.context import Context


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument(
        "--broker",
        choices=["paper", "alpaca_paper", "alpaca_live"],
        default=None,
        help="broker to trade on (default: live.broker of the config, paper)",
    )
    p.add_argument("--dry-run", action="store_true", help="plan and log orders, send nothing")
    p.add_argument(
        "--skip-if-logged",
        action="store_true",
        help="do nothing if this session already has a (non dry-run) daily log",
    )
    p.add_argument(
        "--as-of",
        default=None,
        help="knowledge time, tz-aware ISO (default: now); replays a past session",
    )
    p.add_argument(
        "--horizon",
        type=int,
        choices=[1, 5, 20],
        default=None,
        help="label horizon of the champion to trade (default: the config's)",
    )
    p.add_argument("--params", default="params.yaml", help="composed config (params.yaml)")
    p.add_argument("--root", default=".", help="project root")
    p.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. portfolio.top_k=5")
    return p.parse_args(argv)


@cli_errors
def main(argv: list[str]) -> None:
    args = parse_args(argv)
    setup_logging()
    root = Path(args.root).resolve()
    overrides = list(args.overrides)
    if args.horizon is not None:
        overrides.append(f"labels=h{args.horizon}")
    cfg = compose(overrides) if overrides else load_params(root / args.params)
    as_of = None
    if args.as_of:
        try:
            as_of = pd.Timestamp(args.as_of)
        except ValueError as exc:
            raise PyFinanceError(f"--as-of {args.as_of!r} is not a date/time") from exc
    from py_finance.live.loop import run_live_day

    result = run_live_day(
        Context(build(cfg), root),
        dry_run=args.dry_run,
        as_of=as_of,
        skip_if_logged=args.skip_if_logged,
        broker=args.broker,
    )
    if result.skipped:
        print(f"{result.session}: already logged at {result.log_path}; skipped")
        return
    p = result.payload
    weights = ", ".join(f"{k} {v:.1%}" for k, v in sorted(p["target_weights"].items()))
    print(
        f"{p['session']} ({'dry run' if p['dry_run'] else p['broker']}): "
        f"{p['model_name']} v{p['model_version']}, regime {p['regime']}, "
        f"risk {p['risk_state']}, {len(p['orders'])} orders\n"
        f"  weights: {weights}\n  log: {result.log_path}"
    )


if __name__ == "__main__":
    main(sys.argv[1:])
