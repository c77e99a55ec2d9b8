"""Ingest: source -> validation -> store, in committed batches that an interrupted run resumes.

Each batch of symbols is fetched, validated (refused rows go to quarantine with a reason)
and written in one store transaction, so a crash loses at most the batch in flight. A
journal under ``<store>/_journal/`` lists the batches a run has committed; rerunning the
same command skips them and removes the journal when the run completes. Ingesting a range
that is already stored adds nothing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from py_finance.data.calendar import check_sessions
from py_finance.data.sources.registry import default_benchmark
from py_finance.data.store import Store, membership_versions
from py_finance.data.validation import validate_bars
from py_finance.errors import DataError
from py_finance.io import write_json

log = logging.getLogger(__name__)


@dataclass(slots=True)
class IngestReport:
    """What an ingest did; :meth:`summary` is the text the CLI prints."""

    source: str
    symbols: list[str]
    start: dt.date
    end: dt.date
    rows_added: dict[str, int] = field(default_factory=dict)
    rows_restated: int = 0
    rows_unchanged: int = 0
    rows_quarantined: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    suspect: list[str] = field(default_factory=list)
    gaps: dict[str, tuple[str, ...]] = field(default_factory=dict)
    empty: list[str] = field(default_factory=list)
    resumed: list[str] = field(default_factory=list)
    fingerprint: str = ""

    def summary(self) -> str:
        """A few lines for people: rows added, quarantined and gaps."""
        added = ", ".join(f"{k} {v}" for k, v in sorted(self.rows_added.items()) if v) or "none"
        lines = [
            f"{self.source} {self.start}..{self.end}, {len(self.symbols)} symbols -> "
            f"snapshot {self.fingerprint}",
            f"rows added: {added}; restated {self.rows_restated}; "
            f"already known {self.rows_unchanged}",
            f"rows quarantined: {self.rows_quarantined}"
            + (
                " (" + ", ".join(f"{k} {v}" for k, v in sorted(self.reasons.items())) + ")"
                if self.reasons
                else ""
            ),
            f"gaps: {sum(len(v) for v in self.gaps.values())} missing sessions"
            + (
                " (" + ", ".join(f"{k} {len(v)}" for k, v in sorted(self.gaps.items())) + ")"
                if self.gaps
                else ""
            ),
        ]
        if self.suspect:
            lines.append(
                f"kept but suspect (split-like jumps in adjusted data): {len(self.suspect)} "
                f"({', '.join(self.suspect[:5])}{', ...' if len(self.suspect) > 5 else ''})"
            )
        if self.empty:
            lines.append(f"no data returned for: {', '.join(self.empty)}")
        if self.resumed:
            lines.append(f"resumed: {len(self.resumed)} symbols committed by the interrupted run")
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form (goes into the manifest and ``meta.json``)."""
        return {
            "source": self.source,
            "symbols": self.symbols,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "rows_added": self.rows_added,
            "rows_restated": self.rows_restated,
            "rows_quarantined": self.rows_quarantined,
            "quarantine_reasons": self.reasons,
            "suspect_kept": self.suspect,
            "gaps": {k: list(v) for k, v in self.gaps.items()},
            "empty": self.empty,
        }


def read_universe(path: str | Path) -> pd.DataFrame:
    """Membership spells from a CSV with columns ``symbol,start,end`` (empty end: listed)."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"universe file {path} not found: pass a CSV with symbol,start,end")
    frame = pd.read_csv(path, dtype=str)
    missing = {"symbol", "start", "end"} - set(frame.columns)
    if missing:
        raise DataError(f"universe file {path} lacks columns {sorted(missing)}")
    frame["symbol"] = frame["symbol"].str.upper()
    try:
        frame["start"] = pd.to_datetime(frame["start"])
        frame["end"] = pd.to_datetime(frame["end"])
    except (ValueError, TypeError) as exc:
        raise DataError(f"universe file {path}: dates must be YYYY-MM-DD ({exc})") from exc
    return frame[["symbol", "start", "end"]]


def clip_universe(
    spells: pd.DataFrame,
    symbols: Sequence[str],
    start: dt.date,
    end: dt.date,
    calendar: str = "XNYS",
) -> pd.DataFrame:
    """Membership spells of ``symbols`` inside ``[start, end]``.

    A spell that began before ``start`` begins at the first session; one that ends after
    ``end`` is open (its end is not known at ``end``); spells wholly outside are dropped.
    """
    from py_finance.data.calendar import sessions as calendar_sessions

    frame = spells[spells["symbol"].astype(str).str.upper().isin(list(symbols))].copy()
    frame["symbol"] = frame["symbol"].astype(str).str.upper()
    frame["start"] = pd.to_datetime(frame["start"]).dt.normalize()
    frame["end"] = pd.to_datetime(frame["end"]).dt.normalize()
    days = calendar_sessions(start, end, calendar)
    if not len(days):
        return frame.iloc[:0][["symbol", "start", "end"]]
    first, last = pd.Timestamp(days[0]), pd.Timestamp(days[-1])
    frame = frame[(frame["start"] <= last) & (frame["end"].isna() | (frame["end"] >= first))]
    frame.loc[frame["start"] < first, "start"] = first
    frame.loc[frame["end"] >= last, "end"] = pd.NaT
    return frame[["symbol", "start", "end"]].reset_index(drop=True)


def ingest_bars(
    store: Store,
    source: Any,
    symbols: Sequence[str],
    start: dt.date,
    end: dt.date,
    *,
    calendar: str = "XNYS",
    benchmark: str | None = None,
    universe: pd.DataFrame | None = None,
    batch_size: int = 10,
    progress: bool = True,
    now: pd.Timestamp | None = None,
) -> IngestReport:
    """Fetch, validate and store bars, actions, the benchmark and the universe.

    Parameters
    ----------
    store, source
        Where to write and what to read (a source from ``sources.registry``).
    symbols, start, end
        What to ingest: sessions in ``[start, end]``.
    benchmark
        Benchmark symbol for the ``benchmark`` table (default: the source's own).
    universe
        Membership spells (``symbol, start, end``); default: one spell per symbol from its
        first to its last ingested session, left open when the data reaches ``end``.
    batch_size
        Symbols per committed snapshot.
    now
        Knowledge time stamped on restated rows (default: the wall clock).
    """
    if end < start:
        raise DataError(f"end date {end} is before start date {start}")
    symbols = list(dict.fromkeys(source.check_symbols(list(symbols))))
    if not symbols:
        raise DataError("no symbols to ingest: pass --symbols or a universe")
    bench = benchmark or default_benchmark(source)
    if universe is None and callable(getattr(source, "universe", None)):
        universe = source.universe()  # the source's own membership (files, synthetic)
    if universe is not None:
        universe = clip_universe(universe, symbols, start, end, calendar)
    delistings = source.delistings() if callable(getattr(source, "delistings", None)) else None
    report = IngestReport(source=source.info.name, symbols=symbols, start=start, end=end)
    units = [("bars", s) for s in symbols] + [("benchmark", bench)]
    journal = _Journal(store.root, source.info.name, units, start, end)
    done = journal.load()
    report.resumed = [s for t, s in units if f"{t}:{s}" in done and t == "bars"]
    todo = [u for u in units if f"{u[0]}:{u[1]}" not in done]
    bar = _progress(len(units), progress, initial=len(units) - len(todo))
    spans: dict[str, tuple[pd.Timestamp, pd.Timestamp]] = {}
    try:
        for first in range(0, len(todo), batch_size):
            batch = todo[first : first + batch_size]
            fetched = []
            for table, sym in batch:
                bar.set_postfix_str(sym)
                fetched.append((table, sym, source.fetch(sym, start, end)))
                bar.update(1)
            with store.transaction(build_index=False):
                # One write per table and batch: the store diffs a batch against what it
                # knows once, not once per symbol.
                clean: dict[str, list[pd.DataFrame]] = {}
                actions: list[pd.DataFrame] = []
                for table in dict.fromkeys(t for t, _, _ in fetched):
                    items = [(sym, got) for t, sym, got in fetched if t == table]
                    checked = _check_batch(
                        store,
                        report,
                        table,
                        items,
                        calendar,
                        spans,
                        adjusted_only=source.info.adjusted_only,
                    )
                    if checked is not None:
                        clean.setdefault(table, []).append(checked)
                    actions += [got.actions for _, got in items if len(got.actions)]
                for table, frames in clean.items():
                    summary = store.write_bars(
                        pd.concat(frames, ignore_index=True),
                        table=table,
                        calendar=calendar,
                        now=now,
                    )
                    report.rows_added[table] = report.rows_added.get(table, 0) + summary.rows_added
                    report.rows_restated += summary.rows_restated
                    report.rows_unchanged += summary.rows_unchanged
                if actions:
                    acts = store.write_actions(pd.concat(actions, ignore_index=True), now=now)
                    report.rows_added["actions"] = (
                        report.rows_added.get("actions", 0) + acts.rows_added
                    )
                store.record_ingest(report.as_dict())
            journal.commit([f"{t}:{s}" for t, s, _ in fetched])
        with store.transaction():
            _write_universe(store, symbols, universe, spans, end, calendar, now)
            if delistings is not None and len(delistings):
                inside = delistings[
                    delistings["symbol"].astype(str).str.upper().isin(symbols)
                    & (pd.to_datetime(delistings["date"]) > pd.Timestamp(start))
                    & (pd.to_datetime(delistings["date"]) <= pd.Timestamp(end))
                ]
                added = store.write_delistings(inside, calendar=calendar, now=now)
                report.rows_added["delistings"] = added.rows_added
            store.record_ingest(report.as_dict())
    finally:
        bar.close()
    journal.finish()
    report.fingerprint = store.fingerprint()
    return report


def _check_batch(
    store: Store,
    report: IngestReport,
    table: str,
    items: list[tuple[str, Any]],
    calendar: str,
    spans: dict[str, tuple[pd.Timestamp, pd.Timestamp]],
    *,
    adjusted_only: bool = False,
) -> pd.DataFrame | None:
    """Validate a batch of fetches at once: quarantine what is refused, return clean bars."""
    frames = []
    for symbol, got in items:
        if got.bars.empty:
            report.empty.append(symbol)
            log.warning("%s returned no bars for %s", report.source, symbol)
        else:
            frames.append(got.bars)
    if not frames:
        return None
    bars = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    symbols = [s for s, got in items if not got.bars.empty]
    known = store.actions(symbols, pd.Timestamp.max.tz_localize("UTC"))
    given = [got.actions for _, got in items if len(got.actions)]
    split_list = pd.concat(
        [*(a[a["kind"] == "split"] for a in given), known[known["kind"] == "split"]]
    )[["symbol", "ex_date"]]
    checked = validate_bars(
        bars,
        calendar=calendar,
        splits=split_list,
        table=table,
        source=report.source,
        split_jumps="report" if adjusted_only else "quarantine",
    )
    if checked.suspect is not None and len(checked.suspect):
        # Said once, when the rows first enter the store: a later ingest of the same data
        # (every live run, every sweep's snapshot check) keeps nothing new.
        found = [
            f"{r.symbol} {r.session}"
            for r in checked.suspect.itertuples()
            if not _known(store, str(r.symbol), r.session, table)
        ]
        report.suspect.extend(found)
        if found:
            log.warning("kept %d split-like jumps of adjusted data: %s", len(found), found)
    if len(checked.quarantine):
        added = store.write_quarantine(checked.quarantine)
        report.rows_quarantined += len(checked.quarantine)
        for reason in checked.quarantine["reason"]:
            rule = str(reason).split(":", 1)[0]
            report.reasons[rule] = report.reasons.get(rule, 0) + 1
        log.warning(
            "%d rows of %s quarantined (%d new)",
            len(checked.quarantine),
            ", ".join(sorted(set(checked.quarantine["symbol"].astype(str))))[:200],
            added,
        )
    if checked.gaps:
        report.gaps.update(checked.gaps)
    if checked.clean.empty:
        return None
    if table == "bars":
        bounds = checked.clean.groupby("symbol")["session"].agg(["min", "max"])
        for sym, lo, hi in zip(bounds.index, bounds["min"], bounds["max"], strict=True):
            spans[str(sym)] = (pd.Timestamp(lo), pd.Timestamp(hi))
    return checked.clean


def _write_universe(
    store: Store,
    symbols: list[str],
    universe: pd.DataFrame | None,
    spans: dict[str, tuple[pd.Timestamp, pd.Timestamp]],
    end: dt.date,
    calendar: str,
    now: pd.Timestamp | None,
) -> None:
    if universe is None:
        if not spans:  # resumed run: spans come from the store
            stored = store.bars(symbols, None, end, pd.Timestamp.max.tz_localize("UTC"))
            firsts = stored.groupby("symbol")["session"].min()
            lasts = stored.groupby("symbol")["session"].max()
            spans = {
                str(s): (pd.Timestamp(firsts[s]), pd.Timestamp(lasts[s])) for s in firsts.index
            }
        from py_finance.data.calendar import sessions as calendar_sessions

        last_session = calendar_sessions(pd.Timestamp(end) - pd.Timedelta(days=10), end, calendar)
        last = last_session[-1] if len(last_session) else pd.Timestamp(end)
        universe = pd.DataFrame(
            [
                {"symbol": s, "start": a, "end": b if b < last else pd.NaT}
                for s, (a, b) in sorted(spans.items())
            ],
            columns=["symbol", "start", "end"],
        )
    if universe.empty:
        return
    versions = membership_versions(universe, calendar)
    stored = store._versions("universe")
    if not stored.empty:
        # a spell's versions are facts with their own knowledge times: skip those stored
        seen = set(_spell_keys(stored))
        keep = [key not in seen for key in _spell_keys(versions)]
        versions = versions[keep]
    opened = versions[versions["end"].isna()]
    closed = versions[versions["end"].notna()]
    for part in (opened, closed):
        if len(part):
            store.write_universe(part.drop_duplicates(["symbol", "start"], keep="last"), now=now)


def _spell_keys(frame: pd.DataFrame) -> list[tuple[str, str, str, str]]:
    def iso(col: str) -> list[str]:
        values = pd.to_datetime(frame[col], utc=col == "available_at")
        return ["" if pd.isna(v) else pd.Timestamp(v).isoformat() for v in values]

    return list(
        zip(
            frame["symbol"].astype(str),
            iso("start"),
            iso("end"),
            iso("available_at"),
            strict=True,
        )
    )


def check_calendar(store: Store, symbols: Sequence[str], end: dt.date, calendar: str) -> Any:
    """Calendar check of the stored sessions of ``symbols`` through ``end``.

    Names without a bar yet (listed after ``end``) are left out: they have no sessions.
    """
    known = set(store.symbols())
    listed = [s for s in symbols if s in known]
    stored = store.bars(listed, None, end, pd.Timestamp.max.tz_localize("UTC"))
    return check_sessions(pd.DatetimeIndex(stored["session"].unique()), calendar, through=end)


class _Journal:
    """Which units an unfinished run has committed (so a rerun resumes)."""

    def __init__(
        self, root: Path, source: str, units: list[tuple[str, str]], start: dt.date, end: dt.date
    ) -> None:
        key = json.dumps([source, units, start.isoformat(), end.isoformat()])
        self.path = root / "_journal" / f"{hashlib.sha256(key.encode()).hexdigest()[:16]}.json"
        self.done: list[str] = []

    def load(self) -> set[str]:
        if self.path.exists():
            self.done = list(json.loads(self.path.read_text(encoding="utf-8")))
        return set(self.done)

    def commit(self, units: list[str]) -> None:
        self.done.extend(units)
        write_json(self.done, self.path)

    def finish(self) -> None:
        if self.path.exists():
            self.path.unlink()
        try:
            self.path.parent.rmdir()
        except OSError:
            pass


def _known(store: Store, symbol: str, session: Any, table: str) -> bool:
    """Whether the store already holds a value of ``symbol`` at ``session`` (any time)."""
    try:
        value = store.point(symbol, session, pd.Timestamp.max.tz_localize("UTC"), table=table)
    except DataError:  # a symbol the store has never seen
        return False
    return bool(np.isfinite(value))


def _progress(total: int, enabled: bool, initial: int = 0) -> Any:
    """A progress bar when ``enabled`` and stderr is a terminal (none in a log file)."""
    from tqdm import tqdm

    # disable=None: tqdm's own "not a terminal" test.
    return tqdm(
        total=total,
        initial=initial,
        disable=None if enabled else True,
        unit="symbol",
        desc="ingest",
    )


def ingest_table(
    store: Store,
    kind: str,
    fetch: Any,
    source_name: str,
    symbols: Sequence[str],
    start: dt.date,
    end: dt.date,
    *,
    progress: bool = True,
    now: pd.Timestamp | None = None,
) -> IngestReport:
    """Ingest ``fundamentals`` or ``news`` symbol by symbol (one committed snapshot each).

    ``fetch(symbol, start, end)`` returns the rows for ``Store.write_<kind>``. A rerun of an
    interrupted ingest skips the symbols it committed; ingesting the same range again adds
    nothing.
    """
    if kind not in ("fundamentals", "news"):
        raise DataError(f"unknown table {kind!r}: use fundamentals or news")
    if end < start:
        raise DataError(f"end date {end} is before start date {start}")
    symbols = [s.upper() for s in dict.fromkeys(symbols)]
    report = IngestReport(source=source_name, symbols=symbols, start=start, end=end)
    units = [(kind, s) for s in symbols]
    journal = _Journal(store.root, source_name, units, start, end)
    done = journal.load()
    report.resumed = [s for t, s in units if f"{t}:{s}" in done]
    bar = _progress(len(units), progress, initial=len(report.resumed))
    writer = getattr(store, f"write_{kind}")
    try:
        for table, sym in units:
            if f"{table}:{sym}" in done:
                continue
            bar.set_postfix_str(sym)
            rows = fetch(sym, start, end)
            if rows.empty:
                report.empty.append(sym)
            else:
                with store.transaction():
                    summary = writer(rows, now=now)
                    report.rows_added[kind] = report.rows_added.get(kind, 0) + summary.rows_added
                    report.rows_restated += summary.rows_restated
                    report.rows_unchanged += summary.rows_unchanged
                    store.record_ingest(report.as_dict())
            journal.commit([f"{table}:{sym}"])
            bar.update(1)
    finally:
        bar.close()
    journal.finish()
    report.fingerprint = store.fingerprint()
    return report
