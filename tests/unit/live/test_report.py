"""The live report: one offline page from the daily logs of a simulated paper track."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from py_finance.live.report import drift_frame, track_frame, write_report
from tests.unit.live.simtrack import simulate

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def track60(tmp_path_factory):
    """60 sessions of the paper broker with 25 bps slippage (a shortfall to show)."""
    return simulate(
        tmp_path_factory.mktemp("track"), n_sessions=60, slippage_bps=25.0, cost_bps=10.0
    )


@pytest.mark.slow
def test_the_frames_come_from_the_logs_alone(track60):
    frame = track_frame(track60.log_dir)
    assert len(frame) == 60
    # The replay starts with the live equity; 25 bps against a 10 bps model: live lags.
    assert frame["replay_equity"].iloc[0] == frame["equity"].iloc[0]
    assert frame["equity"].iloc[-1] < frame["replay_equity"].iloc[-1]
    assert frame["cumulative_shortfall"].iloc[-1] > 0
    assert frame["ic_60"].notna().sum() > 40
    drift = drift_frame(track60.log_dir)
    assert set(drift.index) == {"mom_20", "ret_5"} and drift.shape[1] == 59


@pytest.mark.slow
def test_the_report_renders_offline_in_a_real_browser(track60, tmp_path):
    # The headless-Chromium helper (skips where no Chromium is installed).
    render = pytest.importorskip("tests.browser").render

    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts/live_report.py"),
            "--log-dir",
            str(track60.log_dir),
            "--out",
            str(tmp_path / "live"),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    html = (tmp_path / "live.html").read_text()
    assert "http://" not in html and "https://" not in html  # nothing to fetch
    assert (tmp_path / "live.png").read_bytes()[:4] == b"\x89PNG"
    page = render(
        tmp_path / "live.html",
        screenshot=tmp_path / "screen.png",
        wait_for="document.getElementById('panels').complete"
        " && document.getElementById('panels').naturalWidth > 0",
        probe="[document.getElementById('panels').naturalWidth,"
        " document.querySelectorAll('#checks tr').length]",
    )
    width, rows = page.probe
    assert width > 1000  # the inline PNG decoded
    assert rows == 6  # header + the five checks
    assert "Live track vs backtest" in page.text
    assert "shortfall" in page.text and "BREACHED" in page.text
    assert page.screenshot is not None and page.screenshot.stat().st_size > 10_000


def test_an_empty_log_folder_is_one_clear_error(tmp_path):
    from py_finance.errors import PyFinanceError

    (tmp_path / "logs").mkdir()
    with pytest.raises(PyFinanceError, match="nothing to report"):
        write_report(tmp_path / "logs", tmp_path / "out")
