from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os

import numpy as np
import pandas as pd
import pytest

from py_finance.errors import PyFinanceError
from py_finance.live.alerts import Redactor
from py_finance.live.brokers.base import Fill
from py_finance.live.daily_log import (
    SCHEMA_VERSION,
    append_run,
    daily_log_path,
    day_with_run,
    is_logged,
    logged_sessions,
    merge_runs,
    read_daily_log,
    write_daily_log,
)
from py_finance.live.orders import OrderIntent

SESSION = dt.date(2024, 3, 15)
NOW = dt.datetime(2024, 3, 15, 21, 5, tzinfo=dt.UTC)


def payload():
    intent = OrderIntent("pf-1", SESSION, "AAA", "buy", 1.5, 10.0, 15.0)
    fill = Fill("pf-1", "AAA", "buy", np.float64(1.5), 10.01, 0.0, "filled", NOW)
    return {
        "session": SESSION,
        "regime": np.int64(2),
        "model_name": "py-finance-h5",
        "model_version": "7",
        "target_weights": pd.Series({"AAA": np.float32(0.25), "BBB": 0.5}),
        "orders": [intent],
        "fills": [fill],
        "dry_run": np.bool_(False),
        "broker": "paper",
        "risk_state": {"mode": "ACTIVE", "vol_scale": np.float64(0.8), "dd": float("nan")},
        "equity": np.float64(10_012.5),
        "generated_at": NOW,
    }


def test_path_is_named_by_session(tmp_path):
    assert daily_log_path(tmp_path, SESSION) == tmp_path / "daily_log_2024-03-15.json"


def test_write_then_read_round_trips_with_plain_json_values(tmp_path):
    path = write_daily_log(tmp_path / "logs", SESSION, payload())
    assert path == daily_log_path(tmp_path / "logs", SESSION)
    doc = read_daily_log(tmp_path / "logs", SESSION)
    assert doc == json.loads(path.read_text())
    assert doc["session"] == "2024-03-15"
    assert doc["regime"] == 2
    assert doc["target_weights"] == {"AAA": 0.25, "BBB": 0.5}
    assert doc["orders"][0]["session"] == "2024-03-15"
    assert doc["orders"][0]["qty"] == 1.5
    assert doc["fills"][0]["filled_at"] == "2024-03-15T21:05:00+00:00"
    assert doc["dry_run"] is False
    assert doc["risk_state"]["dd"] is None  # NaN is not valid JSON
    assert doc["equity"] == 10_012.5
    assert "NaN" not in path.read_text()


def test_write_leaves_no_temp_file(tmp_path):
    write_daily_log(tmp_path, SESSION, payload())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["daily_log_2024-03-15.json"]


def test_unserialisable_payload_leaves_no_file(tmp_path):
    bad = payload() | {"model": object()}
    with pytest.raises(TypeError, match="model"):
        write_daily_log(tmp_path, SESSION, bad)
    assert list(tmp_path.iterdir()) == []
    assert not is_logged(tmp_path, SESSION)


def test_failed_rename_leaves_old_log_and_no_temp(tmp_path, monkeypatch):
    write_daily_log(tmp_path, SESSION, payload() | {"equity": 1.0})

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        write_daily_log(tmp_path, SESSION, payload())
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["daily_log_2024-03-15.json"]
    assert read_daily_log(tmp_path, SESSION)["equity"] == 1.0


def test_payload_for_another_session_is_refused(tmp_path):
    with pytest.raises(PyFinanceError, match="session"):
        write_daily_log(tmp_path, dt.date(2024, 3, 18), payload())
    assert list(tmp_path.iterdir()) == []


def test_is_logged_and_logged_sessions(tmp_path):
    assert not is_logged(tmp_path / "missing", SESSION)
    assert logged_sessions(tmp_path / "missing") == []
    write_daily_log(tmp_path, SESSION, payload())
    later = dt.date(2024, 3, 18)
    write_daily_log(tmp_path, later, payload() | {"session": later})
    (tmp_path / "notes.json").write_text("{}")
    assert is_logged(tmp_path, SESSION)
    assert not is_logged(tmp_path, dt.date(2024, 3, 14))
    assert logged_sessions(tmp_path) == [SESSION, later]


def test_read_missing_or_corrupt_log_raises(tmp_path):
    with pytest.raises(PyFinanceError, match="no daily log"):
        read_daily_log(tmp_path, SESSION)
    daily_log_path(tmp_path, SESSION).write_text("{not json")
    with pytest.raises(PyFinanceError, match="corrupt"):
        read_daily_log(tmp_path, SESSION)


def test_frames_dataclasses_and_timestamps_keys_serialise(tmp_path):
    @dataclasses.dataclass
    class Risk:
        mode: str
        scale: np.float32

    frame = pd.DataFrame({"AAA": [0.1]}, index=[pd.Timestamp("2024-03-15")])
    write_daily_log(
        tmp_path,
        SESSION,
        {"w": frame, "risk": Risk("HALTED", np.float32(0.5)), "arr": np.arange(3), "nat": pd.NaT},
    )
    doc = read_daily_log(tmp_path, SESSION)
    assert doc["w"] == {"2024-03-15T00:00:00": {"AAA": 0.1}}
    assert doc["risk"] == {"mode": "HALTED", "scale": 0.5}
    assert doc["arr"] == [0, 1, 2]
    assert doc["nat"] is None


# ------------------------------------------------------------------ every run of a day
def run(n: int, **fields):
    """A loop run's record of SESSION (plain JSON values, as the loop's payload becomes)."""
    return {
        "session": "2024-03-15",
        "status": "ok",
        "dry_run": False,
        "broker": "alpaca_paper",
        "generated_at": f"2024-03-15T21:0{n}:00+00:00",
        "errors": [],
        **fields,
    }


def fill(coid: str, status: str, qty: float = 0.0, reason: str = "") -> dict:
    return {"client_order_id": coid, "status": status, "qty_filled": qty, "reason": reason}


def test_a_same_day_rerun_appends_and_keeps_the_first_runs_errors(tmp_path):
    first = run(
        1,
        status="degraded",
        plan="new",
        target_weights={"AAA": 0.5},
        orders=[{"client_order_id": "a"}, {"client_order_id": "b"}],
        fills=[fill("a", "rejected", reason="no buying power"), fill("b", "unconfirmed")],
        errors=["order a rejected: no buying power", "degraded: 1 of 2 order(s) ..."],
        equity=100.0,
    )
    append_run(tmp_path, SESSION, first)
    before = read_daily_log(tmp_path, SESSION)
    second = run(
        2,
        plan="resumed",
        target_weights={"AAA": 0.4, "BBB": 0.1},  # recomputed: not what was traded
        orders=[{"client_order_id": "a"}, {"client_order_id": "b"}],
        fills=[fill("b", "filled", 2.0)],
        equity=101.0,
    )
    path = append_run(tmp_path, SESSION, second)
    doc = read_daily_log(tmp_path, SESSION)
    assert path == daily_log_path(tmp_path, SESSION)
    assert doc["schema_version"] == SCHEMA_VERSION == 3
    # The first run is kept exactly as it was written.
    assert doc["runs"][0] == before["runs"][0]
    assert [r["run"] for r in doc["runs"]] == [1, 2]
    assert [r["status"] for r in doc["runs"]] == ["degraded", "ok"]
    # The day: the first run's errors stay (the readiness gates count them) ...
    assert doc["errors"] == first["errors"]
    assert doc["status"] == "ok" and doc["equity"] == 101.0
    # ... each order once, in its latest state ...
    assert [(f["client_order_id"], f["status"]) for f in doc["fills"]] == [
        ("a", "rejected"),
        ("b", "filled"),
    ]
    assert [o["client_order_id"] for o in doc["orders"]] == ["a", "b"]
    # ... and the targets the traded plan was built from, not the rerun's.
    assert doc["target_weights"] == {"AAA": 0.5}


def test_a_dry_run_never_shadows_a_run_that_traded(tmp_path):
    append_run(tmp_path, SESSION, run(1, plan="new", equity=100.0, errors=["order a rejected"]))
    append_run(tmp_path, SESSION, run(2, dry_run=True, equity=5.0))
    doc = read_daily_log(tmp_path, SESSION)
    assert doc["dry_run"] is False and doc["equity"] == 100.0
    assert doc["errors"] == ["order a rejected"]
    assert [r["dry_run"] for r in doc["runs"]] == [False, True]
    only_dry = merge_runs([run(1, dry_run=True, equity=5.0)])
    assert only_dry["dry_run"] is True and only_dry["equity"] == 5.0


def test_a_failed_rerun_keeps_the_days_equity_and_adds_its_error(tmp_path):
    append_run(tmp_path, SESSION, run(1, plan="new", equity=100.0, positions={"AAA": 1.0}))
    append_run(tmp_path, SESSION, run(2, status="error", errors=["DataError: no bars"]))
    doc = read_daily_log(tmp_path, SESSION)
    assert doc["status"] == "error" and doc["errors"] == ["DataError: no bars"]
    assert doc["equity"] == 100.0 and doc["positions"] == {"AAA": 1.0}


def test_a_version_1_log_becomes_the_first_run(tmp_path):
    v1 = run(0, schema_version=1, equity=100.0, errors=["order x rejected"])
    write_daily_log(tmp_path, SESSION, v1)
    append_run(tmp_path, SESSION, run(1, equity=101.0))
    doc = read_daily_log(tmp_path, SESSION)
    assert len(doc["runs"]) == 2 and doc["runs"][0]["schema_version"] == 1
    assert doc["errors"] == ["order x rejected"] and doc["equity"] == 101.0


def test_day_with_run_previews_without_writing(tmp_path):
    append_run(tmp_path, SESSION, run(1, errors=["boom"]))
    text = daily_log_path(tmp_path, SESSION).read_text()
    preview = day_with_run(tmp_path, SESSION, run(2, equity=3.0))
    assert preview["errors"] == ["boom"] and len(preview["runs"]) == 2
    assert daily_log_path(tmp_path, SESSION).read_text() == text


def test_append_masks_secrets_in_every_string(tmp_path):
    key = "PKECHOEDKEY123456"
    redact = Redactor([key])
    record = run(
        1,
        errors=[f"order a rejected: HTTP 403: key {key} may not trade"],
        fills=[fill("a", "rejected", reason=f"key {key}")],
        nested={f"k-{key}": [f"x {key} y"]},
    )
    append_run(tmp_path, SESSION, record, redact=redact)
    text = daily_log_path(tmp_path, SESSION).read_text()
    assert key not in text and "key ***" in text


def test_a_corrupt_log_is_set_aside_not_lost(tmp_path):
    daily_log_path(tmp_path, SESSION).write_text("{half a log")
    append_run(tmp_path, SESSION, run(1, equity=1.0))
    assert read_daily_log(tmp_path, SESSION)["equity"] == 1.0
    aside = [p for p in tmp_path.iterdir() if ".corrupt-" in p.name]
    assert len(aside) == 1 and aside[0].read_text() == "{half a log"
    assert logged_sessions(tmp_path) == [SESSION]


def test_append_refuses_a_record_of_another_session(tmp_path):
    with pytest.raises(PyFinanceError, match="session"):
        append_run(tmp_path, dt.date(2024, 3, 18), run(1))
    assert not is_logged(tmp_path, dt.date(2024, 3, 18))
