from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os

import numpy as np
import pandas as pd
import pytest

from py_finance.errors import PyFinanceError
from py_finance.live.brokers.base import Fill
from py_finance.live.daily_log import (
    daily_log_path,
    is_logged,
    logged_sessions,
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
