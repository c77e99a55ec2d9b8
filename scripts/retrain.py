"""The scheduled retrain job: refresh the data, run the pipeline, decide against the champion.

.venv/bin/python scripts/retrain.py                 # weekly (cron line in docs/live.md)
.venv/bin/python scripts/retrain.py --enable-alerts # the decision by email/Slack as well

The candidate is judged as `scripts/promote.py` judges it (its own figures, then the paired
Sharpe test against the champion on the same sessions). It becomes @champion only when
`promotion.retrain_apply` is true and it passes; otherwise it stays @challenger (shadow-traded
by the daily loop) for a deliberate `scripts/promote.py --apply`. Nothing new since the last
retrain (same data snapshot and config): nothing is done. Refused while a live run holds the
project's job lock. Every run is a line of logs/retrain.jsonl.
Exit status: 0 done (or nothing new), 2 an error to act on (one line).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from py_finance.config import build, load_params
from py_finance.errors import cli_errors
from py_finance.pipeline.cli import setup_logging
from py_finance.pipeline.context import Context


@cli_errors
def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--params", default="params.yaml", help="composed config (params.yaml)")
    p.add_argument("--root", default=".", help="project root")
    p.add_argument("--enable-alerts", action="store_true", help="email/Slack the decision")
    p.add_argument("--force", action="store_true", help="run even when nothing is new")
    args = p.parse_args(argv)
    root = Path(args.root).resolve()
    from dotenv import load_dotenv

    from py_finance.live.alerts import secrets_from_env
    from py_finance.live.redaction import install_output_redaction

    load_dotenv(root / ".env", override=False)
    install_output_redaction(secrets_from_env(os.environ))
    setup_logging()
    params = Path(args.params)
    ctx = Context(build(load_params(params if params.is_absolute() else root / params)), root)
    from py_finance.live.loop import _alerter
    from py_finance.live.retrain import describe, retrain

    out = retrain(ctx, alerter=_alerter(ctx, args.enable_alerts, os.environ), force=args.force)
    print(f"retrain: {describe(out)}")
    for reason in out.get("reasons", []):
        print(f"  {reason}")


if __name__ == "__main__":
    main(sys.argv[1:])
