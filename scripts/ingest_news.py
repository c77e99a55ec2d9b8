"""Ingest company news (Finnhub) into the bitemporal store; known at publication time.

Idempotent and resumable, like ingest_bars.py. Needs FINNHUB_API_KEY (environment or .env).
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

from py_finance.errors import PyFinanceError, cli_errors


def date_arg(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO date (YYYY-MM-DD): {text!r}") from None


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--start-date", type=date_arg, required=True)
    p.add_argument("--end-date", type=date_arg, required=True)
    p.add_argument("--symbols", nargs="+", required=True)
    p.add_argument("--source", default="finnhub", choices=["finnhub"])
    p.add_argument("--store", default="data/store")
    p.add_argument("--no-progress", action="store_true")
    return p.parse_args(argv)


@cli_errors
def main(argv: list[str]) -> None:
    args = parse_args(argv)
    from py_finance.data.ingest import ingest_table
    from py_finance.data.sources.finnhub import FinnhubSource
    from py_finance.data.store import Store

    if args.end_date < args.start_date:
        raise PyFinanceError(f"--end-date {args.end_date} is before --start-date {args.start_date}")
    source = FinnhubSource()
    report = ingest_table(
        Store(Path(args.store)),
        "news",
        source.news,
        "finnhub",
        args.symbols,
        args.start_date,
        args.end_date,
        progress=not args.no_progress,
    )
    print(report.summary())


if __name__ == "__main__":
    main(sys.argv[1:])
