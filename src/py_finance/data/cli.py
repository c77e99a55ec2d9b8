"""Argument helpers shared by the ingest scripts (dates, symbols, store)."""

from __future__ import annotations

import argparse
import datetime as dt
from collections.abc import Callable
from typing import Any

from py_finance.errors import PyFinanceError


def date_arg(text: str) -> dt.date:
    """Parse an ISO date for argparse (a clear usage error otherwise)."""
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO date (YYYY-MM-DD): {text!r}") from None


def add_range_args(p: argparse.ArgumentParser, *, symbols_required: bool) -> None:
    """``--start-date --end-date --symbols --store --no-progress``."""
    p.add_argument("--start-date", type=date_arg, required=True)
    p.add_argument("--end-date", type=date_arg, required=True)
    p.add_argument(
        "--symbols",
        nargs="+",
        required=symbols_required,
        default=None,
        help=None if symbols_required else "default: every symbol of the source",
    )
    p.add_argument("--store", default="data/store", help="store directory (default: data/store)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def check_range(args: argparse.Namespace) -> None:
    """Refuse an end date before the start date."""
    if args.end_date < args.start_date:
        raise PyFinanceError(f"--end-date {args.end_date} is before --start-date {args.start_date}")


def run_table_ingest(
    args: argparse.Namespace, kind: str, make_fetch: Callable[[], Any], source_name: str
) -> None:
    """Ingest ``fundamentals`` or ``news`` for the parsed range and print the summary.

    ``make_fetch`` builds the source's fetch function after the range is checked (a source
    with a missing key fails only for a valid request).
    """
    from pathlib import Path

    from py_finance.data.ingest import ingest_table
    from py_finance.data.store import Store

    check_range(args)
    report = ingest_table(
        Store(Path(args.store)),
        kind,
        make_fetch(),
        source_name,
        args.symbols,
        args.start_date,
        args.end_date,
        progress=not args.no_progress,
    )
    print(report.summary())
