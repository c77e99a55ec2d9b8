"""DVC stage `features`: see py_finance.pipeline.research.features."""

from py_finance.pipeline.cli import stage_main
from py_finance.pipeline.research import features

if __name__ == "__main__":
    stage_main(features)
