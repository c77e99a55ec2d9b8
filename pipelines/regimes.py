"""DVC stage `regimes`: see py_finance.pipeline.research.regimes."""

from py_finance.pipeline.cli import stage_main
from py_finance.pipeline.research import regimes

if __name__ == "__main__":
    stage_main(regimes)
