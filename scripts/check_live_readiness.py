"""Check the paper track against the live readiness gates: exit 0 when all pass, 1 when not.

The track is what `--broker alpaca_live` is gated on: the paper broker's daily logs
(live.log_dir) and the Alpaca paper broker's (live.log_dir/alpaca_paper), both by default
(`--track all`), or one of them (`--track paper`, `--track alpaca_paper`).

.venv/bin/python scripts/check_live_readiness.py --verbose
.venv/bin/python scripts/check_live_readiness.py --track alpaca_paper --json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from pathlib import Path
from typing import Any

from py_finance.errors import cli_errors
from py_finance.pipeline.cli import setup_logging

DEFAULT_PARAMS = "params.yaml"


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--verbose", action="store_true", help="each gate's detail, and INFO logs")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument(
        "--track",
        choices=["all", "paper", "alpaca_paper"],
        default="all",
        help="paper track to judge: both paper brokers' logs (default), or one of them",
    )
    p.add_argument(
        "--log-dir",
        default=None,
        help="root folder of the daily logs (default: live.log_dir of the config); the "
        "alpaca_paper track is its alpaca_paper/ sub-folder",
    )
    p.add_argument(
        "--params",
        default=None,
        help=f"composed config with live.gates (default: {DEFAULT_PARAMS} when present, "
        "else the built-in gates)",
    )
    return p.parse_args(argv)


@cli_errors
def main(argv: list[str]) -> None:
    args = parse_args(argv)
    setup_logging(logging.INFO if args.verbose else logging.WARNING)
    from py_finance.live.config import LiveConfig
    from py_finance.live.readiness import (
        evaluate_readiness,
        format_report,
        gates_from_config,
        load_logs,
        load_track,
        ramp_fraction,
    )

    params = args.params or (DEFAULT_PARAMS if Path(DEFAULT_PARAMS).is_file() else None)
    cfg: dict[str, Any] = {}
    if params is not None:
        from omegaconf import OmegaConf

        from py_finance.config import load_params

        container = OmegaConf.to_container(load_params(params), resolve=True)
        cfg = {str(k): v for k, v in container.items()} if isinstance(container, dict) else {}
    gates = gates_from_config(cfg)
    live = cfg.get("live") or {}
    log_dir = Path(args.log_dir or live.get("log_dir") or LiveConfig().log_dir)

    track = load_track(log_dir, args.track)
    report = evaluate_readiness(track.logs, gates, brokers=track.brokers)
    live_dir = Path(LiveConfig(log_dir=str(log_dir)).log_dir_for("alpaca_live"))
    ramp = ramp_fraction(load_logs(live_dir) if live_dir.is_dir() else [], gates)
    if args.json:
        doc = {
            "passed": report.passed,
            "log_dir": str(log_dir),
            "track": args.track,
            "tracks": {
                broker: {"folder": str(folder), "logs": n}
                for broker, (folder, n) in track.folders.items()
            },
            "gates_from": params or "defaults",
            "gates": dataclasses.asdict(gates),
            "report": report.to_dict(),
            "ramp": dataclasses.asdict(ramp),
        }
        print(json.dumps(doc, indent=2))
    else:
        print(f"{args.track} track: {track.describe()}; gates: {params or 'built-in defaults'}")
        print(format_report(report, ramp, verbose=args.verbose))
    raise SystemExit(0 if report.passed else 1)


if __name__ == "__main__":
    main(sys.argv[1:])
