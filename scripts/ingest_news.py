"""Ingest company news (Finnhub) into the bitemporal store; known at publication time.

Idempotent and resumable, like ingest_bars.py. Needs FINNHUB_API_KEY (environment or .env).
"""

from __future__ import annotations

import argparse
import sys

from py_finance.data.cli import add_range_args, run_table_ingest
from py_finance.errors import cli_errors


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__)
    add_range_args(p, symbols_required=True)
    p.add_argument("--source", default="finnhub", choices=["finnhub"])
    return p.parse_args(argv)


@cli_errors
def main(argv: list[str]) -> None:
    args = parse_args(argv)
    from py_finance.data.sources.finnhub import FinnhubSource

    run_table_ingest(args, "news", lambda: FinnhubSource().news, "finnhub")


if __name__ == "__main__":
    main(sys.argv[1:])
