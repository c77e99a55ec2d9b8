"""The seed's backtest scripts: flags -> overrides, a run on a slice, clear errors."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pytest

from py_finance.config import build, compose
from py_finance.errors import PyFinanceError
from py_finance.pipeline.runner import BacktestFlags, run_backtest_cli
from tests.conftest import SLICE

ROOT = Path(__file__).resolve().parents[2]


def test_flags_switch_overlays_on_one_by_one():
    bare = build(compose(BacktestFlags().overrides()))
    assert bare.risk.vol_target is None and bare.risk.drawdown_throttle is None
    assert bare.risk.sector_tilts is None and bare.regime_policy.name == "none"
    assert bare.risk.max_position == 0.20 and bare.risk.max_sector == 0.40
    full = build(
        compose(
            BacktestFlags(
                model="xgboost",
                horizon=20,
                top_k=7,
                regime_aware=True,
                vol_scaling=True,
                drawdown_throttle=True,
                sector_tilts=True,
                start_date=dt.date(2000, 1, 3),
                end_date=dt.date(2010, 12, 31),
            ).overrides()
        )
    )
    assert full.model_name == "xgboost" and full.labels.horizon == 20
    assert full.portfolio.top_k == 7 and full.portfolio.rebalance_every == 20
    assert full.regime_policy.name == "fixed"
    assert full.risk.vol_target == 0.15 and full.risk.drawdown_throttle == 0.15
    assert full.risk.sector_tilts is not None
    assert full.data.start == "2000-01-03" and full.data.end == "2010-12-31"


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (BacktestFlags(horizon=7), "--horizon"),
        (BacktestFlags(model="prophet"), "--model"),
        (BacktestFlags(start_date=dt.date(2010, 1, 4), end_date=dt.date(2009, 1, 2)), "before"),
    ],
)
def test_bad_flags_are_clear_errors(flags, message):
    with pytest.raises(PyFinanceError, match=message):
        flags.overrides()


def test_run_backtest_on_a_slice_reports_all_columns_and_the_caveat(tmp_path):
    flags = BacktestFlags(regime_aware=True, drawdown_throttle=True, top_k=4)
    metrics, report = run_backtest_cli(flags, SLICE, root=tmp_path)
    assert {"baseline", "regime_aware", "benchmark", "equal_weight"} <= set(metrics)
    assert "Survivorship bias" in report and "| Sharpe (`sharpe`) |" in report
    assert (tmp_path / "outputs/backtests" / flags.tag() / "data/backtest/h5/metrics.json").exists()
    assert (tmp_path / "mlflow.db").exists()
    # logged as trials of their question, never as versions of the production model
    import mlflow

    client = mlflow.MlflowClient(
        tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
        registry_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
    )
    assert client.search_registered_models() == []
    runs = client.search_runs(
        [e.experiment_id for e in client.search_experiments()],
        filter_string="tags.`trial.question` != ''",
    )
    assert {r.data.tags["variant"] for r in runs} == {"baseline", "regime_aware"}
    assert metrics["regime_aware"]["n_trials"] == 2


def test_cli_prints_one_line_errors():
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts/run_backtest.py"), "--horizon", "7"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("error: --horizon")
