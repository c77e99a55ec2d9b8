"""DVC stage `ingest`: see py_finance.pipeline.research.ingest."""

from py_finance.pipeline.cli import stage_main
from py_finance.pipeline.research import ingest

if __name__ == "__main__":
    stage_main(ingest)
