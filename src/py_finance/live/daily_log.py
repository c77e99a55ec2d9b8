"""One JSON log per session: ``{log_dir}/daily_log_YYYY-MM-DD.json`` (schema version 1).

The loop writes it last, atomically, so its presence means the day is done
(``--skip-if-logged``), and the readiness gates read the paper track record from these files.
This module only makes values JSON-safe; the fields (documented in ``docs/live.md``) are:

- ``schema_version`` (1), ``session``, ``status`` (``ok``, ``error``, ``stale``),
  ``generated_at``, ``as_of``, ``dry_run``, ``broker``, ``horizon``, ``errors`` (list of
  strings: a rejected order, a failure), ``timings`` (seconds per step);
- ``calendar``: ``session_close``, ``early_close``, ``market_closed_today``,
  ``market_open_at_run``, ``broker_clock`` (Alpaca);
- ``data``: ``source``, ``survivorship_biased``, ``last_session``, ``sessions_behind``;
- ``model_name``, ``model_version``, ``model_run_id`` (the ``@champion`` traded);
- ``regime``, ``previous_regime``, ``regime_exposure``, ``risk_state`` (ACTIVE, REDUCING,
  HALTED), ``throttle_multiplier``, ``capital_fraction`` (ramp-up share of capital);
- ``predictions`` (count, mean, std, top), ``scores``, ``target_weights``,
  ``actual_weights``, ``sector_weights``, ``gross_exposure``, ``rebalance``;
- ``reconciliation``, ``orders`` (intents), ``fills`` (broker states: ``client_order_id``,
  ``symbol``, ``side``, ``qty_filled``, ``price``, ``commission``, ``status``, ...);
- ``equity``, ``peak_equity``, ``drawdown``, ``cash``, ``positions``;
- ``readiness_passed`` (paper track, gates including this session).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import enum
import json
import logging
import math
import os
import re
from collections.abc import Mapping
from pathlib import Path, PurePath
from typing import Any

import numpy as np
import pandas as pd

from py_finance.errors import PyFinanceError
from py_finance.io import write_json

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1

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
    """Write the log of ``session`` atomically (temp file + rename); replaces an older one.

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
