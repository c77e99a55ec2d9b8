"""Shared entry point of the DVC stage scripts in ``pipelines/``."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from py_finance.config import build, load_params
from py_finance.errors import cli_errors
from py_finance.pipeline.context import Context


def setup_logging(level: int = logging.INFO) -> None:
    """Plain one-line log records on stderr; quiet third-party chatter."""
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("alembic", "mlflow", "urllib3", "git", "numexpr", "lightning", "matplotlib"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)


def context_from_args(argv: list[str] | None = None, description: str = "") -> Context:
    """Parse ``--params`` and ``--root`` and build the stage's context."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--params", default="params.yaml", help="composed config (params.yaml)")
    parser.add_argument("--root", default=".", help="project root the paths are relative to")
    args = parser.parse_args(argv)
    root = Path(args.root).resolve()
    params = Path(args.params)
    if not params.is_absolute():
        params = root / params
    return Context(build(load_params(params)), root)


RECOVER_HINT = (
    "hint: DVC removed this stage's outputs before running it; the last good ones are in the "
    "DVC cache: `.venv/bin/dvc checkout` restores them (after a failed `dvc exp run -S`, first "
    "`git checkout params.yaml dvc.lock` to undo its overrides)"
)


def stage_main(stage: Callable[[Context], Any], argv: list[str] | None = None) -> None:
    """Run one stage function from the command line.

    A user error prints one ``error:`` line and exits 2 (:func:`~py_finance.errors.cli_errors`);
    under DVC (``$DVC_STAGE`` set) a failure also says how to get the last good outputs back.
    """

    @cli_errors
    def main() -> None:
        setup_logging()
        ctx = context_from_args(argv, description=stage.__doc__ or "")
        stage(ctx)

    try:
        main()
    except BaseException as exc:
        failed = not isinstance(exc, SystemExit) or exc.code not in (0, None)
        if failed and os.environ.get("DVC_STAGE") and not isinstance(exc, KeyboardInterrupt):
            print(RECOVER_HINT, file=sys.stderr)
        raise
