"""DVC stage `backtest`: see py_finance.pipeline.evaluation.backtest."""

from py_finance.pipeline.cli import stage_main
from py_finance.pipeline.evaluation import backtest

if __name__ == "__main__":
    stage_main(backtest)
