"""Backtest engine, metrics and their settings."""

from py_finance.backtest.config import BacktestConfig
from py_finance.backtest.engine import BacktestResult, buy_and_hold, run_backtest
from py_finance.backtest.metrics import (
    METRIC_KEYS,
    compute_metrics,
    deflated_sharpe_ratio,
    max_drawdown,
    probabilistic_sharpe_ratio,
    score_ic,
)

__all__ = [
    "METRIC_KEYS",
    "BacktestConfig",
    "BacktestResult",
    "buy_and_hold",
    "compute_metrics",
    "deflated_sharpe_ratio",
    "max_drawdown",
    "probabilistic_sharpe_ratio",
    "run_backtest",
    "score_ic",
]
