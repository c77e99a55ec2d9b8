"""DVC stage `promote`: see py_finance.pipeline.evaluation.promote."""

from py_finance.pipeline.cli import stage_main
from py_finance.pipeline.evaluation import promote

if __name__ == "__main__":
    stage_main(promote)
