"""Ingest fundamentals (Tiingo statements) into the bitemporal store.

Each value is known from its filing time; Tiingo gives only the statement date, so values
are taken as known a filing lag later, at the next session's close (see docs/data.md).
Idempotent and resumable, like ingest_bars.py. Needs TIINGO_API_KEY (environment or .env).
"""

from __future__ import annotations

import argparse
import sys

from py_finance.data.cli import add_range_args, run_table_ingest
from py_finance.errors import cli_errors


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__)
    add_range_args(p, symbols_required=True)
    p.add_argument("--source", default="tiingo", choices=["tiingo"])
    p.add_argument("--filing-lag-days", type=int, default=45)
    return p.parse_args(argv)


@cli_errors
def main(argv: list[str]) -> None:
    args = parse_args(argv)
    from py_finance.data.sources.tiingo import TiingoSource

    run_table_ingest(
        args,
        "fundamentals",
        lambda: TiingoSource(filing_lag_days=args.filing_lag_days).fundamentals,
        "tiingo",
    )


if __name__ == "__main__":
    main(sys.argv[1:])
