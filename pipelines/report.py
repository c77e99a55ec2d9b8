"""DVC stage `report`: see py_finance.pipeline.evaluation.report."""

from py_finance.pipeline.cli import stage_main
from py_finance.pipeline.evaluation import report

if __name__ == "__main__":
    stage_main(report)
