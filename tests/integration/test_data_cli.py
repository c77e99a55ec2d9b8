"""The ingest CLIs: summary, no-op rerun, missing keys as one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(script: str, *args: str, cwd: Path, env: dict[str, str] | None = None):
    base = {**os.environ, "PYTHONWARNINGS": "ignore"}
    for var in ("TIINGO_API_KEY", "FINNHUB_API_KEY", "ALPACA_API_KEY", "ALPACA_SECRET_KEY"):
        base.pop(var, None)
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / script), *args],
        cwd=cwd,
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_ingest_bars_prints_the_summary_and_a_rerun_adds_nothing(tmp_path):
    args = ["--start-date", "2000-01-03", "--end-date", "2000-03-31", "--symbols", "AAPL", "KO"]
    first = _run("ingest_bars.py", *args, "--no-progress", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "rows added: bars 126, benchmark 63" in first.stdout
    assert "rows quarantined: 0" in first.stdout and "gaps: 0 missing sessions" in first.stdout
    assert "survivorship-biased" in first.stdout
    manifest = (tmp_path / "data/store/manifest.json").read_bytes()
    again = _run("ingest_bars.py", *args, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "rows added: none" in again.stdout and "already known 189" in again.stdout
    assert "ingest:" not in again.stderr  # no progress bar when stderr is not a terminal
    assert (tmp_path / "data/store/manifest.json").read_bytes() == manifest


def test_missing_vendor_keys_name_the_variable_and_write_nothing(tmp_path):
    cases = [
        ("ingest_bars.py", ["--source", "tiingo", "--symbols", "AAPL"], "TIINGO_API_KEY"),
        ("ingest_fundamentals.py", ["--symbols", "AAPL"], "TIINGO_API_KEY"),
        ("ingest_news.py", ["--symbols", "AAPL"], "FINNHUB_API_KEY"),
    ]
    for script, extra, var in cases:
        proc = _run(
            script, "--start-date", "2024-01-02", "--end-date", "2024-01-31", *extra, cwd=tmp_path
        )
        assert proc.returncode == 2, proc.stderr
        errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and var in errors[0] and "Traceback" not in proc.stderr
    assert not (tmp_path / "data").exists()


def test_vendor_source_without_symbols_is_a_clear_error(tmp_path):
    proc = _run(
        "ingest_bars.py",
        "--source",
        "yahoo",
        "--start-date",
        "2024-01-02",
        "--end-date",
        "2024-01-31",
        cwd=tmp_path,
    )
    assert proc.returncode == 2 and "--symbols (or --universe) is required" in proc.stderr
