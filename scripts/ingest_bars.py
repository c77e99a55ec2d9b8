"""Ingest daily bars into the bitemporal store (bundled offline source by default).

Idempotent: ingesting the same range twice adds nothing; a changed value is stored as a
restatement with a later knowledge time.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

from py_finance.errors import PyFinanceError, cli_errors


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO date (YYYY-MM-DD): {text!r}") from None


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--start-date", type=_date, required=True)
    p.add_argument("--end-date", type=_date, required=True)
    p.add_argument("--symbols", nargs="+", default=None, help="default: every symbol of the source")
    p.add_argument("--source", default="bundled", help="data source (default: bundled)")
    p.add_argument("--store", default="data/store", help="store directory (default: data/store)")
    return p.parse_args(argv)


@cli_errors
def main(argv: list[str]) -> None:
    args = parse_args(argv)
    from py_finance.data.calendar import check_sessions
    from py_finance.data.sources.bundled import get_source
    from py_finance.data.store import Store

    if args.end_date < args.start_date:
        raise PyFinanceError(f"--end-date {args.end_date} is before --start-date {args.start_date}")
    source = get_source(args.source)
    symbols = source.check_symbols(args.symbols) if args.symbols else source.symbols()
    bars = source.bars(symbols, args.start_date, args.end_date)
    store = Store(Path(args.store))
    summary = store.write_bars(bars)
    import pandas as pd

    check = check_sessions(pd.DatetimeIndex(bars["session"].unique()), through=args.end_date)
    print(
        f"{summary.rows_added} rows added, {summary.rows_unchanged} already known, "
        f"{len(symbols)} symbols -> {store.root}\n{check.summary()}"
    )
    if source.info.survivorship_biased:
        print("note: this source's universe is survivorship-biased (today's survivors only)")


if __name__ == "__main__":
    main(sys.argv[1:])
