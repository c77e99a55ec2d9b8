"""The live monitor inside the daily loop: each session replayed, logged, tracked and reported."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from py_finance.live.daily_log import logged_sessions, read_daily_log
from py_finance.live.loop import run_live_day
from tests.integration.test_live_loop import ctx_at, replay_times

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_the_loop_replays_every_session_and_equals_it_without_costs(live_root, tmp_path):
    # The paper broker on the backtest's fill model (next close) and the engine on the same
    # costs (none): the replay of each session is the live P&L, to 1e-9 of equity.
    ctx = ctx_at(live_root, "live.slippage_bps=0", "backtest.cost_bps=0")
    for t in replay_times(12):
        run_live_day(ctx, dry_run=False, as_of=t, override=True)
    log_dir = live_root / "logs/live_trading"
    logs = [read_daily_log(log_dir, s) for s in logged_sessions(log_dir)]
    assert all(e["schema_version"] == 3 for e in logs)
    replays = [e["monitor"]["replay"] for e in logs[1:]]
    assert len(replays) == 11 and sum(r["traded"] for r in replays) >= 2
    for r in replays:
        assert r["targets_equal"] is True
        assert abs(r["live_pnl"] - r["replay_pnl"]) <= 1e-9 * r["live_start"], r
    # Drift and IC against the champion's research outputs, from the second session on.
    last = logs[-1]["monitor"]
    assert last["drift"]["psi"] and last["drift"]["top"]
    assert last["ic"]["oos_mean"] is not None
    assert last["ic"]["realised_sessions"] >= 12 - 2 - ctx.horizon
    assert set(last["checks"]) == {
        "tracking_difference",
        "shortfall",
        "feature_drift",
        "score_drift",
        "ic_decay",
    }

    # One MLflow run per deployed version, one step per session, and the chart.
    from py_finance import tracking
    from py_finance.tracking._mlflow import import_mlflow

    tracking.setup(ctx.settings.tracking, ctx.root)
    client = import_mlflow().MlflowClient()
    experiment = client.get_experiment_by_name(f"{ctx.settings.tracking.experiment}-monitor")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 1
    history = client.get_metric_history(runs[0].info.run_id, "replay_equity")
    assert len(history) == 11
    names = [a.path for a in client.list_artifacts(runs[0].info.run_id, "monitor")]
    assert names == ["monitor/live_vs_replay.png"]

    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts/live_report.py"),
            "--log-dir",
            str(log_dir),
            "--out",
            str(tmp_path / "report"),
        ],
        capture_output=True,
        text=True,
        cwd=live_root,
    )
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "report.html").stat().st_size > 10_000
