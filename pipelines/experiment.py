"""Hydra experiment app: one job per configuration, each an MLflow child run of the sweep.

    python pipelines/experiment.py model=xgboost labels=h20
    python pipelines/experiment.py -m model=lightgbm,xgboost labels=h1,h5 regime_policy=none,fixed
    python pipelines/experiment.py -m hydra/sweeper=tpe hydra.sweeper.n_trials=30

See docs/platform.md; the job body is py_finance.pipeline.experiment.hydra_job.
"""

import sys
from pathlib import Path

import hydra

from py_finance.errors import PyFinanceError
from py_finance.pipeline.cli import setup_logging
from py_finance.pipeline.experiment import hydra_job

CONF = str(Path(__file__).resolve().parents[1] / "conf")


@hydra.main(version_base=None, config_path=CONF, config_name="experiment")
def main(cfg) -> float:
    setup_logging()
    try:
        return hydra_job(cfg)
    except PyFinanceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    # The Optuna sweeper's default SQLite study lives in outputs/ (relative to the cwd).
    Path("outputs").mkdir(exist_ok=True)
    main()
