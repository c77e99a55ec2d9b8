"""`dvc exp run` whose -S overrides are checked against conf/ first (`make exp ARGS=...`).

make exp ARGS="-S model=xgboost -S labels=h20"
.venv/bin/python scripts/exp_run.py -S portfolio.top_k=5 [any other `dvc exp run` flag]

Every -S override is composed with the others against conf/ and the schemas before DVC runs
anything, so a mistyped key, an unknown option or a wrong type is one `error:` line (with
"Did you mean" where there is a near key) and exit status 2; `dvc exp run -S` with the same
typo fails inside DVC's Hydra composition with a traceback-like report and exit 255. The
experiment itself is DVC's own (`dvc exp run`, in this process), without the chatter that
is not about it: the Hydra plugin scanner's deprecation warnings, and one "No file hash info
found" warning per output of a stage the experiment has not run yet (a new horizon).
"""

from __future__ import annotations

import logging
import sys
import warnings

from py_finance.errors import cli_errors

_SET = ("-S", "--set-param")
# Warnings of libraries that DVC's Hydra composition imports, not about the experiment.
_QUIET_WARNINGS = (
    r"register_new_resolver\(\) is deprecated",  # hydra-ray-launcher, found by Hydra's scan
    "The version_base parameter is deprecated",  # DVC's own Hydra call
)
# "No file hash info found for '<out>'. It won't be created.": DVC restores the outputs that
# dvc.lock knows before it reproduces; the outputs of a new horizon are not known yet.
_QUIET_LOGGERS = ("dvc_data.index.checkout", "dvc_data.hashfile.checkout")


def set_params(argv: list[str]) -> list[str]:
    """The Hydra overrides of ``-S``/``--set-param`` (a ``params.yaml:`` prefix removed)."""
    found = []
    for i, arg in enumerate(argv):
        value = None
        if arg in _SET and i + 1 < len(argv):
            value = argv[i + 1]
        elif arg.startswith("--set-param="):
            value = arg.split("=", 1)[1]
        elif arg.startswith("-S") and arg not in _SET and not arg.startswith("--"):
            value = arg[2:]
        if value is not None:
            found.append(value.split(":", 1)[1] if value.startswith("params.yaml:") else value)
    return found


@cli_errors
def check(argv: list[str]) -> None:
    """Compose the -S overrides (each value of a sweep in turn); one line on the first error."""
    from py_finance.pipeline.experiment import check_command_line

    check_command_line(["-m", *set_params(argv)])


def main(argv: list[str]) -> int:
    if any(a in ("-h", "--help") for a in argv):
        print(__doc__)
        return 0
    check(argv)
    for message in _QUIET_WARNINGS:
        warnings.filterwarnings("ignore", message=message)
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    from dvc.cli import main as dvc_main

    return int(dvc_main(["exp", "run", *argv]))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
