"""Crash safety: the loop killed with SIGKILL at each checkpoint, then restarted.

After every restart the paper account (orders, positions, cash) equals an uninterrupted run's,
no order exists twice, and every journaled intent is marked submitted.
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from py_finance.live.faults import CHECKPOINTS, ENV
from tests.integration.conftest import LIVE_OVERRIDES

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SCRIPT = Path(__file__).resolve().parents[2] / "scripts/run_live_loop.py"
AS_OF = "2000-12-22T23:00Z"


def run_loop(root: Path, kill_at: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != ENV}
    if kill_at:
        env[ENV] = kill_at
    return subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--root",
            str(root),
            "--broker",
            "paper",
            "--as-of",
            AS_OF,
            *LIVE_OVERRIDES,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def account(root: Path) -> dict:
    db = sqlite3.connect(root / "data/live/paper_broker.sqlite")
    try:
        orders = db.execute(
            "SELECT client_order_id, symbol, side, fill_qty, fill_price, status FROM orders "
            "ORDER BY client_order_id"
        ).fetchall()
        journal = db.execute(
            "SELECT client_order_id, submitted_at IS NOT NULL, abandoned_at IS NOT NULL "
            "FROM intents ORDER BY client_order_id"
        ).fetchall()
        return {
            "orders": orders,
            "positions": db.execute("SELECT symbol, qty FROM positions ORDER BY symbol").fetchall(),
            "cash": db.execute("SELECT cash FROM account").fetchone()[0],
            "journal": journal,
            "equity": db.execute("SELECT session, equity FROM equity").fetchall(),
        }
    finally:
        db.close()


@pytest.fixture(scope="module")
def reference(champion_base, tmp_path_factory):
    root = tmp_path_factory.mktemp("reference") / "root"
    shutil.copytree(champion_base, root)
    done = run_loop(root)
    assert done.returncode == 0, done.stderr
    state = account(root)
    assert len(state["orders"]) >= 3, "the day must send several orders to test"
    return state


@pytest.mark.parametrize("kill_at", [*CHECKPOINTS, "order_sent:2", "order_recorded:3"])
def test_sigkill_at_each_step_then_restart_matches_an_uninterrupted_run(
    kill_at, reference, champion_base, tmp_path
):
    root = tmp_path / "root"
    shutil.copytree(champion_base, root)
    killed = run_loop(root, kill_at)
    assert killed.returncode == -signal.SIGKILL, (kill_at, killed.returncode, killed.stderr[-2000:])
    restarted = run_loop(root)
    assert restarted.returncode == 0, restarted.stderr[-2000:]
    state = account(root)
    ids = [o[0] for o in state["orders"]]
    assert len(ids) == len(set(ids))
    assert state["orders"] == reference["orders"]
    assert [p[0] for p in state["positions"]] == [p[0] for p in reference["positions"]]
    for (_, qty), (_, ref_qty) in zip(state["positions"], reference["positions"], strict=True):
        assert qty == pytest.approx(ref_qty, rel=1e-12)
    assert state["cash"] == pytest.approx(reference["cash"], rel=1e-12)
    assert state["journal"] == reference["journal"]
    assert all(submitted and not abandoned for _, submitted, abandoned in state["journal"])
    assert [e[0] for e in state["equity"]] == [e[0] for e in reference["equity"]]
    for (_, value), (_, ref_value) in zip(state["equity"], reference["equity"], strict=True):
        assert value == pytest.approx(ref_value, rel=1e-12)
    assert (root / "logs/live_trading/daily_log_2000-12-22.json").exists()
