"""Ingest daily bars into the bitemporal store (bundled offline source by default).

Idempotent and resumable: ingesting the same range twice adds nothing, a changed value is
stored as a restatement with a later knowledge time, and an interrupted run picks up where
it stopped. Bad rows are quarantined with a reason; the summary lists them and any gaps.
Vendor sources read their keys from the environment or .env (see docs/data.md).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from py_finance.data.cli import add_range_args, check_range
from py_finance.errors import PyFinanceError, cli_errors


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__)
    add_range_args(p, symbols_required=False)
    p.add_argument(
        "--source", default="bundled", help="bundled (default), files, yahoo, tiingo or alpaca"
    )
    p.add_argument(
        "--path",
        default=None,
        help="directory of bar files for --source files (format: docs/data.md)",
    )
    p.add_argument(
        "--universe",
        default=None,
        help="CSV of membership spells symbol,start,end (default: derived from the data)",
    )
    p.add_argument("--benchmark", default=None, help="benchmark (default: SPY; bundled: SP500)")
    p.add_argument("--batch-size", type=int, default=10, help="symbols per committed snapshot")
    return p.parse_args(argv)


@cli_errors
def main(argv: list[str]) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from py_finance.data.ingest import check_calendar, ingest_bars, read_universe
    from py_finance.data.sources.registry import get_source
    from py_finance.data.store import Store

    check_range(args)
    if args.source == "files" and not args.path:
        raise PyFinanceError("--source files needs --path DIR (the directory of bar files)")
    if args.path and args.source != "files":
        raise PyFinanceError(f"--path is for --source files, not --source {args.source}")
    options = {"path": args.path} if args.source == "files" else {}
    if args.source == "files" and args.benchmark:
        options["benchmark_symbol"] = args.benchmark
    source = get_source(args.source, **options)
    universe = read_universe(args.universe) if args.universe else None
    if args.symbols:
        symbols = source.check_symbols(args.symbols)
    elif universe is not None:
        symbols = sorted(universe["symbol"].unique())
    elif hasattr(source, "symbols"):
        symbols = source.symbols()
    else:
        raise PyFinanceError(f"--symbols (or --universe) is required for --source {args.source}")
    if hasattr(source, "_check_range"):
        source._check_range(args.start_date, args.end_date)
    store = Store(Path(args.store))
    report = ingest_bars(
        store,
        source,
        symbols,
        args.start_date,
        args.end_date,
        benchmark=args.benchmark,
        universe=universe,
        batch_size=args.batch_size,
        progress=not args.no_progress,
    )
    check = check_calendar(store, symbols, args.end_date, "XNYS")
    print(f"{report.summary()}\n{check.summary()}\n-> {store.root}")
    own_universe = callable(getattr(source, "universe", None)) and source.universe() is not None
    if source.info.survivorship_biased or (universe is None and not own_universe):
        print("note: this universe is survivorship-biased (symbols chosen today; see docs/data.md)")


if __name__ == "__main__":
    main(sys.argv[1:])
