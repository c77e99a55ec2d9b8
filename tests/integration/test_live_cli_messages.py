"""What the live loop's CLI says first when a user gets something wrong or trading is halted."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.conftest import LIVE_OVERRIDES

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts/run_live_loop.py"
AS_OF = "2000-12-29T23:00Z"


def live_cli(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ALERT_", "APCA_", "ALPACA_", "PY_FINANCE_"))
    }
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--root", str(root), *args, *LIVE_OVERRIDES],
        capture_output=True,
        text=True,
        env={**env, "PYTHONWARNINGS": "ignore"},
        cwd=root,
        timeout=300,
    )


def test_an_override_typo_is_one_line_with_did_you_mean(live_root):
    # Regression: two lines, the first naming conf/'s absolute path, and no "did you mean".
    done = live_cli(live_root, "--dry-run", "--as-of", AS_OF, "--override", "portfolio.top_kk=3")
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert "portfolio.top_kk" in lines[0] and "Did you mean: 'top_k'?" in lines[0]
    assert str(ROOT) not in lines[0]


def test_a_dry_run_while_halted_says_that_trading_is_halted(live_root):
    halted = live_cli(live_root, "--halt", "checking fills")
    assert halted.returncode == 0, halted.stderr
    done = live_cli(live_root, "--broker", "paper", "--dry-run", "--as-of", AS_OF)
    assert done.returncode == 0, done.stderr
    assert "(dry run)" in done.stdout
    note = [line for line in done.stdout.splitlines() if "trading is halted" in line]
    assert len(note) == 1 and "checking fills" in note[0] and "--resume" in note[0], done.stdout


def test_alpaca_without_keys_says_so_before_checking_the_data(live_root):
    # Regression: the store's staleness (no --as-of: today's session) was reported first.
    done = live_cli(live_root, "--broker", "alpaca_paper", "--dry-run")
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "needs API keys" in lines[0] and "APCA_API_KEY_ID" in lines[0]
    assert "stale" not in done.stderr
