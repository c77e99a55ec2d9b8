"""Backtest engine, metrics and their settings."""

from py_finance.backtest.config import BacktestConfig
from py_finance.backtest.engine import BacktestResult, buy_and_hold, run_backtest
from py_finance.backtest.metrics import METRIC_KEYS, compute_metrics, max_drawdown

__all__ = [
    "METRIC_KEYS",
    "BacktestConfig",
    "BacktestResult",
    "buy_and_hold",
    "compute_metrics",
    "max_drawdown",
    "run_backtest",
]
