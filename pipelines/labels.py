"""DVC stage `labels`: see py_finance.pipeline.research.labels."""

from py_finance.pipeline.cli import stage_main
from py_finance.pipeline.research import labels

if __name__ == "__main__":
    stage_main(labels)
