"""scripts/check_live_readiness.py on hand-written daily logs: JSON output and exit codes."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts/check_live_readiness.py"
ENV = {**os.environ, "PYTHONWARNINGS": "ignore", "GIT_PYTHON_REFRESH": "quiet"}


def run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        cwd=cwd,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=60,
    )


def write_logs(
    folder: Path,
    n: int,
    *,
    broker: str = "paper",
    fills: int = 2,
    errors_at: tuple[int, ...] = (),
    dry_run: bool = False,
) -> None:
    """``n`` daily logs by hand, as the loop writes them (JSON, one file per session)."""
    folder.mkdir(parents=True, exist_ok=True)
    day = dt.date(2024, 1, 1)
    equity = 100_000.0
    for i in range(n):
        day += dt.timedelta(days=3 if day.weekday() == 4 else 1)
        equity *= 1.003 if i % 2 else 0.999
        doc = {
            "schema_version": 1,
            "session": day.isoformat(),
            "status": "error" if i in errors_at else "ok",
            "dry_run": dry_run,
            "broker": broker,
            "equity": equity,
            "fills": [
                {"client_order_id": f"c{i}-{k}", "qty_filled": 2.0, "status": "filled"}
                for k in range(fills)
            ],
            "errors": ["order rejected"] if i in errors_at else [],
        }
        (folder / f"daily_log_{day.isoformat()}.json").write_text(json.dumps(doc))


def test_passing_track_exits_0_with_json(tmp_path):
    write_logs(tmp_path / "logs", 35)
    write_logs(tmp_path / "logs" / "alpaca_live", 25, broker="alpaca_live")
    proc = run(tmp_path, "--json", "--log-dir", "logs")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["passed"] is True
    assert doc["gates_from"] == "defaults"
    assert doc["report"]["sessions"] == 35
    assert doc["report"]["failed"] == []
    gates = doc["report"]["gates"]
    assert [g["passed"] for g in gates] == [True] * 11
    # Logs without a monitor block: the monitor's gates pass and say nothing was monitored.
    monitor = [g for g in gates if g["name"].startswith("monitor_")]
    assert len(monitor) == 5 and all("no monitored log yet" in g["detail"] for g in monitor)
    assert doc["ramp"] == {"fraction": 0.1, "step": 1, "clean_days": 25, "next_step_at": 40}
    assert doc["gates"]["ramp_up_schedule"][0] == {"fraction": 0.05, "min_clean_days": 0}


def test_failing_track_exits_1_and_names_the_gate(tmp_path):
    write_logs(tmp_path / "logs", 35, errors_at=(10, 11, 12, 13))
    proc = run(tmp_path, "--json", "--log-dir", "logs")
    assert proc.returncode == 1, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["passed"] is False
    assert doc["report"]["failed"] == ["max_consecutive_errors"]

    table = run(tmp_path, "--verbose", "--log-dir", "logs")
    assert table.returncode == 1
    assert "NOT READY: max_consecutive_errors fail" in table.stdout
    assert "longest run of error sessions 4" in table.stdout


def test_dry_runs_do_not_count(tmp_path):
    write_logs(tmp_path / "logs", 35, dry_run=True)
    proc = run(tmp_path, "--json", "--log-dir", "logs")
    assert proc.returncode == 1
    doc = json.loads(proc.stdout)
    assert doc["report"]["sessions"] == 0
    assert doc["ramp"]["fraction"] == 0.05


def test_gates_come_from_params_live_gates(tmp_path):
    write_logs(tmp_path / "live_logs", 12)
    params = tmp_path / "params.yaml"
    params.write_text(
        "live:\n"
        "  log_dir: live_logs\n"
        "  gates:\n"
        "    min_paper_trading_days: 10\n"
        "    min_paper_trades: 20\n"
        "    ramp_up_schedule:\n"
        "      - {fraction: 0.2, min_clean_days: 0}\n"
        "      - {fraction: 1.0, min_clean_days: 5}\n"
    )
    proc = run(tmp_path, "--json")  # params.yaml of the working directory, its log_dir
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["gates_from"] == "params.yaml"
    assert doc["log_dir"] == "live_logs"
    assert doc["gates"]["min_paper_trading_days"] == 10
    assert doc["ramp"]["fraction"] == 0.2

    strict = tmp_path / "strict.yaml"
    strict.write_text("live:\n  gates:\n    min_paper_trading_days: 30\n    min_paper_trades: 1\n")
    proc = run(tmp_path, "--json", "--params", "strict.yaml", "--log-dir", "live_logs")
    assert proc.returncode == 1
    assert json.loads(proc.stdout)["report"]["failed"] == ["min_paper_trading_days"]


@pytest.mark.parametrize(
    ("args", "files", "message"),
    [
        (["--log-dir", "missing"], {}, "missing is not a folder"),
        (["--log-dir", "logs", "--params", "nope.yaml"], {}, "nope.yaml not found"),
        (
            ["--log-dir", "logs"],
            {"params.yaml": "live:\n  gates:\n    max_paper_drawdown_pct: 2\n"},
            "max_paper_drawdown_pct must be in (0, 1]",
        ),
        (["--log-dir", "logs"], {"logs/daily_log_2024-01-02.json": "{not json"}, "corrupt"),
    ],
)
def test_errors_print_one_line_and_exit_2(tmp_path, args, files, message):
    (tmp_path / "logs").mkdir()
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    proc = run(tmp_path, *args)
    assert proc.returncode == 2, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""


def test_the_alpaca_paper_track_is_read_labelled_and_chosen_with_track(tmp_path):
    # The paper broker's track passes; the Alpaca paper broker's failed four days running.
    write_logs(tmp_path / "logs", 35)
    write_logs(
        tmp_path / "logs" / "alpaca_paper", 35, broker="alpaca_paper", errors_at=(5, 6, 7, 8)
    )
    both = run(tmp_path, "--json", "--log-dir", "logs")
    assert both.returncode == 1, both.stderr
    doc = json.loads(both.stdout)
    assert doc["track"] == "all" and doc["report"]["failed"] == ["max_consecutive_errors"]
    assert doc["tracks"] == {
        "paper": {"folder": "logs", "logs": 35},
        "alpaca_paper": {"folder": "logs/alpaca_paper", "logs": 35},
    }
    assert doc["report"]["sessions_by_broker"] == {"paper": 35, "alpaca_paper": 35}

    table = run(tmp_path, "--verbose", "--log-dir", "logs")
    assert table.returncode == 1
    head = table.stdout.splitlines()[0]
    assert head.startswith("all track: paper: logs (35 log(s)); alpaca_paper: logs/alpaca_paper")
    assert "paper track: 35 sessions (paper 35, alpaca_paper 35)" in table.stdout

    paper = run(tmp_path, "--json", "--log-dir", "logs", "--track", "paper")
    assert paper.returncode == 0, paper.stderr
    alpaca = run(tmp_path, "--json", "--log-dir", "logs", "--track", "alpaca_paper")
    assert alpaca.returncode == 1
    assert json.loads(alpaca.stdout)["report"]["brokers"] == ["alpaca_paper"]
