"""Hydra experiment app: one job per configuration, each an MLflow child run of the sweep.

    python pipelines/experiment.py model=xgboost labels=h20
    python pipelines/experiment.py -m model=lightgbm,xgboost labels=h1,h5 regime_policy=none,fixed
    python pipelines/experiment.py -m hydra/sweeper=tpe hydra.sweeper.n_trials=30

See docs/platform.md; the job body is py_finance.pipeline.experiment.hydra_job.
"""

import os
import sys
import warnings
from pathlib import Path

# Framework deprecation chatter is not the user's business on a normal run.
QUIET = (
    "ignore::DeprecationWarning",
    "ignore::FutureWarning",
    "ignore:The version_base parameter is deprecated",
    # hydra-ray-launcher, imported by Hydra's plugin scan whatever the launcher
    "ignore:register_new_resolver() is deprecated:UserWarning",
)
# The parallel launcher's worker processes start without this process's filters: as
# -W options in the environment they inherit them.
os.environ["PYTHONWARNINGS"] = ",".join(filter(None, (os.environ.get("PYTHONWARNINGS"), *QUIET)))
warnings.filterwarnings("ignore", category=DeprecationWarning)
warnings.filterwarnings("ignore", category=FutureWarning)
warnings.filterwarnings("ignore", message="The version_base parameter is deprecated")
warnings.filterwarnings("ignore", message=r"register_new_resolver\(\) is deprecated")
# Hydra 1.4 warns when it instantiates a callback without an execution whitelist; the only
# callback is the project's own (conf/experiment.yaml).
warnings.filterwarnings("ignore", message=r"hydra\.utils\.instantiate\(\) resolved")

import hydra  # noqa: E402

from py_finance.errors import cli_errors  # noqa: E402
from py_finance.pipeline.cli import setup_logging  # noqa: E402
from py_finance.pipeline.experiment import check_command_line, hydra_job, run_hydra_job  # noqa: E402

CONF = str(Path(__file__).resolve().parents[1] / "conf")


@hydra.main(version_base=None, config_path=CONF, config_name="experiment")
def main(cfg) -> float:
    setup_logging()
    return run_hydra_job(hydra_job, cfg)


@cli_errors
def checked() -> bool:
    """Check the overrides before Hydra creates anything; True for a multirun."""
    return check_command_line(sys.argv[1:])


if __name__ == "__main__":
    if checked():
        # The Optuna sweeper's default SQLite study lives in outputs/ (relative to the cwd).
        Path("outputs").mkdir(exist_ok=True)
    main()
