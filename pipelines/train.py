"""DVC stage `train`: see py_finance.pipeline.research.train."""

from py_finance.pipeline.cli import stage_main
from py_finance.pipeline.research import train

if __name__ == "__main__":
    stage_main(train)
