"""Bad input: one clear line on stderr, exit status 2, nothing half-written."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONWARNINGS": "ignore", "GIT_PYTHON_REFRESH": "quiet"}


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=ENV, capture_output=True, text=True, timeout=120
    )


def _assert_one_line_error(proc: subprocess.CompletedProcess[str], pattern: str) -> None:
    assert proc.returncode == 2, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr
    assert pattern in errors[0], errors[0]
    assert "Traceback" not in proc.stderr


def _ingest(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return _run(str(ROOT / "scripts/ingest_bars.py"), "--store", "data/store", *args, cwd=tmp_path)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--start-date", "2000-01-03", "--end-date", "2000-06-30", "--symbols", "AAPL", "ZZZZ"],
            "unknown symbol(s) ZZZZ",
        ),
        (["--start-date", "2000-06-30", "--end-date", "2000-01-03"], "before --start-date"),
        (
            ["--start-date", "2020-01-02", "--end-date", "2024-01-02"],
            "covers 1990-01-02..2022-12-28",
        ),
    ],
)
def test_ingest_refuses_bad_input_and_writes_nothing(tmp_path, args, message):
    proc = _ingest(tmp_path, *args)
    _assert_one_line_error(proc, message)
    assert not (tmp_path / "data").exists()


def _ingest_a_year(tmp_path: Path) -> None:
    ok = _ingest(
        tmp_path,
        "--start-date",
        "2000-01-03",
        "--end-date",
        "2000-12-29",
        "--symbols",
        "AAPL",
        "KO",
    )
    assert ok.returncode == 0, ok.stderr


def test_live_loop_without_a_champion_fails_clearly(tmp_path):
    _ingest_a_year(tmp_path)
    proc = _run(
        str(ROOT / "scripts/run_live_loop.py"),
        "--dry-run",
        "--params",
        str(ROOT / "params.yaml"),
        "--as-of",
        "2001-01-01T00:00Z",
        cwd=tmp_path,
    )
    _assert_one_line_error(proc, "no model 'py-finance-bundled-h5@champion'")
    assert not (tmp_path / "logs").exists()


def test_a_stage_on_a_corrupt_parquet_file_fails_clearly(tmp_path):
    _ingest_a_year(tmp_path)
    part = next((tmp_path / "data/store/bars").glob("*.parquet"))
    part.write_bytes(part.read_bytes()[:200])
    proc = _run(
        str(ROOT / "pipelines/features.py"), "--params", str(ROOT / "params.yaml"), cwd=tmp_path
    )
    _assert_one_line_error(proc, part.name)
    assert not (tmp_path / "data/features").exists()
