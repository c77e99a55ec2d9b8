"""Crash safety: the loop killed with SIGKILL at each checkpoint, then restarted.

Day 1 trades without faults (its orders wait for the next close). Day 2 fills them
(``settle``), plans and sends its own orders, and is killed at one checkpoint, then restarted.
After every restart the paper account (orders, positions, cash, equity marks) equals an
uninterrupted run's, no order exists twice, and every journaled intent is marked submitted.
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
DAY1, DAY2 = "2000-12-21T23:00Z", "2000-12-22T23:00Z"
# Rebalance every session, so day 2 both fills day 1's orders and sends its own.
OVERRIDES = [*LIVE_OVERRIDES, "portfolio.rebalance_every=1"]


def run_loop(
    root: Path, kill_at: str | None = None, as_of: str = DAY2
) -> subprocess.CompletedProcess[str]:
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
            as_of,
            # The champion was evaluated with a 5-session rebalance: trading it every session
            # is an explicit override of its recorded config.
            "--override",
            *OVERRIDES,
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
def after_day1(champion_base, tmp_path_factory):
    root = tmp_path_factory.mktemp("day1") / "root"
    shutil.copytree(champion_base, root)
    done = run_loop(root, as_of=DAY1)
    assert done.returncode == 0, done.stderr
    return root


@pytest.fixture(scope="module")
def reference(after_day1, tmp_path_factory):
    root = tmp_path_factory.mktemp("reference") / "root"
    shutil.copytree(after_day1, root)
    done = run_loop(root)
    assert done.returncode == 0, done.stderr
    state = account(root)
    filled = [o for o in state["orders"] if o[3] > 0]
    pending = [o for o in state["orders"] if o[5] == "pending"]
    assert len(filled) >= 3 and len(pending) >= 3, "day 2 must fill and send several orders"
    return state


@pytest.mark.parametrize("kill_at", [*CHECKPOINTS, "order_sent:2", "order_recorded:3"])
def test_sigkill_at_each_step_then_restart_matches_an_uninterrupted_run(
    kill_at, reference, after_day1, tmp_path
):
    root = tmp_path / "root"
    shutil.copytree(after_day1, root)
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
