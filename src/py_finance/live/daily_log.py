"""One JSON log per session: ``{log_dir}/daily_log_YYYY-MM-DD.json`` (schema version 3).

Every run of the loop appends its record to the session's log (:func:`append_run`), last
and atomically; nothing a run wrote is ever dropped by a later run of the same day. The
file's top level is the day as a whole (:func:`merge_runs`), so ``--skip-if-logged`` and
the readiness gates read it as they read a version 1 log; ``runs`` keeps each run's own
record. The fields (documented in ``docs/live.md``) are:

- ``schema_version`` (3: adds ``monitor``), ``session``, ``status`` (the latest run's:
  ``ok``, ``degraded``, ``error``, ``stale``), ``generated_at``, ``as_of``, ``dry_run``,
  ``broker``, ``horizon``,
  ``errors`` (every run's messages: a rejected or unconfirmed order, a failure), ``timings``
  (seconds per step), ``plan`` (``new``, ``resumed``, ``resize`` or ``none``), ``runs``;
- ``calendar``: ``session_close``, ``early_close``, ``market_closed_today``,
  ``market_open_at_run``, ``broker_clock`` (Alpaca);
- ``data``: ``source``, ``survivorship_biased``, ``last_session``, ``sessions_behind``;
- ``model_name``, ``model_version``, ``model_run_id`` (the ``@champion`` traded);
- ``regime``, ``previous_regime``, ``regime_exposure``, ``risk_state`` (ACTIVE, REDUCING,
  HALTED), ``throttle_multiplier``, ``capital_fraction`` (ramp-up share of capital);
- ``predictions`` (count, mean, std, top), ``scores``, ``target_weights``,
  ``actual_weights``, ``sector_weights``, ``gross_exposure``, ``rebalance``;
- ``reconciliation``, ``orders`` (intents), ``fills`` (broker states: ``client_order_id``,
  ``symbol``, ``side``, ``qty_filled``, ``price``, ``commission``, ``status``, ...; one per
  order, its latest state over the day's runs);
- ``equity``, ``peak_equity``, ``drawdown``, ``cash``, ``positions``;
- ``readiness_passed`` (paper track, gates including this session);
- ``monitor``: the replay of the session filled since the last log, shortfall, drift, realised
  IC and their checks (:mod:`py_finance.live.monitor`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import decimal
import enum
import json
import logging
import math
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path, PurePath
from typing import Any

import numpy as np
import pandas as pd

from py_finance.errors import PyFinanceError
from py_finance.io import write_json

log = logging.getLogger(__name__)

SCHEMA_VERSION = 3

# Decision fields of the run that planned the session's orders: a rerun that resumes a
# journaled plan trades that plan, so the day shows the targets the plan was built from,
# not the rerun's fresh ones next to the old orders.
PLAN_FIELDS = (
    "model_name",
    "model_version",
    "model_run_id",
    "regime",
    "previous_regime",
    "regime_exposure",
    "regime_policy",
    "risk_state",
    "throttle_multiplier",
    "capital_fraction",
    "predictions",
    "scores",
    "target_weights",
    "sector_weights",
    "gross_exposure",
    "rebalance",
)
# Per-order lists: the day keeps every order once, in its latest state.
_ORDER_LISTS = ("orders", "fills", "settled")

_NAME_RE = re.compile(r"^daily_log_(\d{4}-\d{2}-\d{2})\.json$")


def daily_log_path(log_dir: str | os.PathLike[str], session: dt.date) -> Path:
    """Return ``{log_dir}/daily_log_YYYY-MM-DD.json`` for ``session``."""
    if isinstance(session, dt.datetime):
        session = session.date()
    return Path(log_dir) / f"daily_log_{session.isoformat()}.json"


def to_jsonable(obj: Any, *, where: str = "payload") -> Any:
    """Convert ``obj`` into plain JSON values.

    Dates and datetimes become ISO strings, numpy/pandas scalars and arrays become Python
    numbers and lists, Series become ``{index: value}``, DataFrames ``{index: {column: value}}``,
    dataclasses dicts, enums their value, NaN/inf/NaT ``None``; mapping keys become strings.

    Raises
    ------
    TypeError
        A value has no JSON form; the message names where in the payload it is.
    """
    if obj is None or isinstance(obj, bool | str):
        return obj
    if obj is pd.NaT:
        return None
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, np.generic):
        return to_jsonable(obj.item(), where=where)
    if isinstance(obj, decimal.Decimal):
        return to_jsonable(float(obj), where=where)
    if isinstance(obj, dt.datetime | dt.date | dt.time):
        return obj.isoformat()
    if isinstance(obj, pd.Timedelta | dt.timedelta):
        return pd.Timedelta(obj).isoformat()
    if isinstance(obj, enum.Enum):
        return to_jsonable(obj.value, where=where)
    if isinstance(obj, PurePath):
        return str(obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {
            f.name: to_jsonable(getattr(obj, f.name), where=f"{where}.{f.name}")
            for f in dataclasses.fields(obj)
        }
    if isinstance(obj, pd.DataFrame):
        return {
            _key(idx): to_jsonable(row.to_dict(), where=f"{where}[{idx!r}]")
            for idx, row in obj.iterrows()
        }
    if isinstance(obj, pd.Series):
        return to_jsonable(obj.to_dict(), where=where)
    if isinstance(obj, np.ndarray | pd.Index):
        return [to_jsonable(v, where=f"{where}[]") for v in obj.tolist()]
    if isinstance(obj, Mapping):
        return {_key(k): to_jsonable(v, where=f"{where}[{k!r}]") for k, v in obj.items()}
    if isinstance(obj, set | frozenset):
        items = [to_jsonable(v, where=f"{where}[]") for v in obj]
        return sorted(items, key=lambda v: json.dumps(v, sort_keys=True))
    if isinstance(obj, list | tuple):
        return [to_jsonable(v, where=f"{where}[{i}]") for i, v in enumerate(obj)]
    raise TypeError(f"daily log {where} is not JSON serialisable: {type(obj).__name__}")


def _key(key: Any) -> str:
    if isinstance(key, str):
        return key
    value = to_jsonable(key, where="key")
    return value if isinstance(value, str) else json.dumps(value)


def write_daily_log(
    log_dir: str | os.PathLike[str], session: dt.date, payload: Mapping[str, Any]
) -> Path:
    """Write ``payload`` as the whole log of ``session`` atomically (temp file + rename).

    Replaces an older file: the loop appends its runs with :func:`append_run` instead.

    The payload is made JSON-safe first (see :func:`to_jsonable`), so a value that cannot be
    serialised raises before any file is touched; a failed write leaves no file behind.

    Parameters
    ----------
    log_dir
        Folder of the daily logs (created if missing).
    session
        The traded session; must match ``payload["session"]`` when that is given.
    payload
        The loop's log record.

    Returns
    -------
    Path
        The written file.
    """
    doc = to_jsonable(payload)
    if "session" in doc and doc["session"] != to_jsonable(session):
        raise PyFinanceError(
            f"daily log payload is for session {doc['session']}, but is being written for {session}"
        )
    path = write_json(doc, daily_log_path(log_dir, session))
    log.info("daily log written: %s", path)
    return path


def day_runs(doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The runs recorded in a daily log: ``runs`` of a version 2 log; a version 1 log is one."""
    runs = doc.get("runs")
    if isinstance(runs, list):
        return [dict(r) for r in runs if isinstance(r, Mapping)]
    return [dict(doc)]


def _unique(items: Iterable[Any]) -> list[Any]:
    out: list[Any] = []
    for item in items:
        if item not in out:
            out.append(item)
    return out


def _latest_by_id(lists: Iterable[Any]) -> list[Any]:
    """One entry per ``client_order_id`` (the latest), in the order first seen."""
    merged: dict[str, Any] = {}
    for n, items in enumerate(lists):
        for i, item in enumerate(items or []):
            coid = item.get("client_order_id") if isinstance(item, Mapping) else None
            key = str(coid) if coid else f"#{n}.{i}"
            merged[key] = item
    return list(merged.values())


def merge_runs(runs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The daily log of a session from the records of its runs, oldest first.

    The top level is the day as a whole: the non-dry runs when there are any (a dry run
    never shadows a run that traded), each later run's fields over the earlier ones'; the
    decision fields (:data:`PLAN_FIELDS`) of the run that planned the orders
    (``plan: new``); ``errors`` of every run, each message once; ``orders``, ``fills`` and
    ``settled`` with each order once, in its latest state; ``runs``: every run's own record,
    numbered from 1.
    """
    if not runs:
        raise PyFinanceError("a daily log needs at least one run")
    records = [{k: v for k, v in r.items() if k not in ("runs", "run")} for r in runs]
    basis = [r for r in records if not r.get("dry_run")] or records
    doc: dict[str, Any] = {}
    for record in basis:
        doc.update(record)
    planner = next((r for r in basis if r.get("plan") in ("new", "resize")), None)
    if planner is not None:
        doc.update({f: planner[f] for f in PLAN_FIELDS if f in planner})
    doc["errors"] = _unique(e for r in basis for e in r.get("errors") or [])
    for name in _ORDER_LISTS:
        if any(name in r for r in basis):
            doc[name] = _latest_by_id(r.get(name) for r in basis)
    doc["schema_version"] = SCHEMA_VERSION
    doc["runs"] = [{"run": i, **r} for i, r in enumerate(records, start=1)]
    return doc


@contextlib.contextmanager
def _locked(log_dir: Path) -> Iterator[None]:
    """Serialise read-merge-write of the logs in ``log_dir`` between processes (POSIX)."""
    try:
        import fcntl
    except ImportError:  # no advisory locks here: runs of one day must not overlap
        yield
        return
    log_dir.mkdir(parents=True, exist_ok=True)
    with open(log_dir / ".daily_log.lock", "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _logged_runs(log_dir: Path, session: dt.date, *, set_aside: bool) -> list[dict[str, Any]]:
    path = daily_log_path(log_dir, session)
    if not path.exists():
        return []
    try:
        return day_runs(read_daily_log(log_dir, session))
    except PyFinanceError as exc:
        if not set_aside:
            return []
        # Never lose it, never stop a run that has traded: keep it beside the new log.
        aside = path.with_name(f"{path.name}.corrupt-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S%f}")
        path.rename(aside)
        log.error("%s; kept as %s, the day's log starts again", exc, aside)
        return []


def day_with_run(
    log_dir: str | os.PathLike[str], session: dt.date, payload: Mapping[str, Any]
) -> dict[str, Any]:
    """The log ``session`` would have with ``payload`` appended (nothing is written)."""
    run = to_jsonable(payload)
    if "session" in run and run["session"] != to_jsonable(session):
        raise PyFinanceError(
            f"daily log payload is for session {run['session']}, but is being written for {session}"
        )
    return merge_runs([*_logged_runs(Path(log_dir), session, set_aside=False), run])


def append_run(
    log_dir: str | os.PathLike[str],
    session: dt.date,
    payload: Mapping[str, Any],
    *,
    redact: Callable[[str], str] | None = None,
) -> Path:
    """Append one run's record to the log of ``session``; earlier runs are kept as written.

    Parameters
    ----------
    log_dir
        Folder of the daily logs (created if missing).
    session
        The session; must match ``payload["session"]`` when that is given.
    payload
        The run's record (made JSON-safe first, so a bad value raises before any write).
    redact
        Masks secrets in every string of the record (a broker may echo an API key).

    Returns
    -------
    Path
        The written file (temp file + rename: a reader never sees half of it).
    """
    from py_finance.live.redaction import redact_json

    run = to_jsonable(payload)
    if "session" in run and run["session"] != to_jsonable(session):
        raise PyFinanceError(
            f"daily log payload is for session {run['session']}, but is being written for {session}"
        )
    if redact is not None:
        run = redact_json(run, redact)
    folder = Path(log_dir)
    with _locked(folder):
        doc = merge_runs([*_logged_runs(folder, session, set_aside=True), run])
        path = write_json(doc, daily_log_path(folder, session))
    log.info("daily log written: %s (run %d of the day)", path, len(doc["runs"]))
    return path


def is_logged(log_dir: str | os.PathLike[str], session: dt.date) -> bool:
    """Return True if the log of ``session`` exists (the day is done)."""
    return daily_log_path(log_dir, session).is_file()


def read_daily_log(log_dir: str | os.PathLike[str], session: dt.date) -> dict[str, Any]:
    """Read the log of ``session``.

    Raises
    ------
    PyFinanceError
        The log does not exist or is not valid JSON.
    """
    path = daily_log_path(log_dir, session)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PyFinanceError(f"no daily log for {session}: {path} does not exist") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise PyFinanceError(
            f"daily log {path} is corrupt ({exc}); delete it to rerun the session"
        ) from None
    if not isinstance(doc, dict):
        raise PyFinanceError(f"daily log {path} is not a JSON object; delete it to rerun")
    return doc


def logged_sessions(log_dir: str | os.PathLike[str]) -> list[dt.date]:
    """Return the sessions that have a daily log in ``log_dir``, oldest first."""
    folder = Path(log_dir)
    if not folder.is_dir():
        return []
    sessions = []
    for p in folder.iterdir():
        m = _NAME_RE.match(p.name)
        if m and p.is_file():
            sessions.append(dt.date.fromisoformat(m.group(1)))
    return sorted(sessions)
