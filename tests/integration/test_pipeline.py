"""The whole pipeline on a small slice: ingest -> ... -> promote -> one paper day."""

from __future__ import annotations

import json
import time

import pandas as pd
import pytest

from py_finance import tracking
from py_finance.config import build, compose
from py_finance.errors import ModelNotFoundError, PyFinanceError
from py_finance.live.daily_log import read_daily_log
from py_finance.live.loop import run_live_day
from py_finance.pipeline import evaluation, research
from py_finance.pipeline.context import Context
from tests.conftest import SLICE

STAGES = (
    research.ingest,
    research.features,
    research.labels,
    research.regimes,
    lambda ctx: research.train(ctx, progress=False),
    evaluation.backtest,
    evaluation.report,
    evaluation.promote,
)


# Three out-of-sample years cannot make a Sharpe of ~0.6 significant at the default 95% DSR;
# these tests need a champion to trade, so the slice's gate asks for 50%.
GATE = ["promotion.dsr_confidence=0.5"]


def _ctx(tmp_path, *overrides):
    return Context(build(compose([*SLICE, *GATE, *overrides])), tmp_path)


def test_pipeline_on_a_small_slice_promotes_a_champion_and_trades_a_paper_day(tmp_path):
    import matplotlib.pyplot as plt

    ctx = _ctx(tmp_path)
    started = time.perf_counter()
    open_before = set(plt.get_fignums())
    for stage in STAGES:
        stage(ctx)
    # The backtest's plots go to MLflow and are closed: pyplot keeps every open figure.
    assert set(plt.get_fignums()) <= open_before
    decision = json.loads(ctx.path("promotion", "h5.json").read_text())
    metrics = json.loads((ctx.backtest_dir() / "metrics.json").read_text())
    # The gate's verdict follows from the measured numbers, whichever it is.
    beats = metrics["regime_aware"]["sharpe"] > max(0.0, metrics["benchmark"]["sharpe"])
    beats = beats and decision["evidence"]["dsr"] >= 0.5
    assert decision["promoted"] is beats
    assert decision["promoted"], f"slice expected to pass the gate: {decision['reasons']}"
    tracking.setup(ctx.settings.tracking, ctx.root)
    assert tracking.get_alias_version(ctx.deployment, "champion") == decision["candidate_version"]

    result = run_live_day(ctx, dry_run=True, as_of=pd.Timestamp("2000-12-29T23:00Z"))
    elapsed = time.perf_counter() - started
    log = read_daily_log(ctx.root / ctx.settings.live.log_dir, result.session)
    assert log["session"] == "2000-12-29"
    assert log["model_version"] == decision["candidate_version"]
    weights = pd.Series(log["target_weights"], dtype="float64")
    assert len(weights) > 0
    assert weights.max() <= 0.20 + 1e-9
    assert max(log["sector_weights"].values()) <= 0.40 + 1e-9
    assert weights.sum() <= 1.0 + 1e-9
    assert log["orders"] and all(o["side"] == "buy" for o in log["orders"])
    assert elapsed < 120, f"pipeline slice took {elapsed:.0f}s"

    report = ctx.path("reports", "results.md").read_text()
    assert "Survivorship bias" in report and "| Sharpe (`sharpe`) |" in report

    # An MLflow run per backtest with the contract's metrics.
    import mlflow

    runs = mlflow.search_runs(experiment_names=["py-finance"])
    assert set(runs["tags.variant"]) == {"baseline", "regime_aware"}
    for key in ("cagr", "sharpe", "max_drawdown", "turnover"):
        assert runs[f"metrics.{key}"].notna().all(), key


def test_a_rejected_candidate_leaves_live_trading_without_a_champion(tmp_path):
    # Costs of 5% per trade make any active strategy lose to buy-and-hold.
    ctx = _ctx(tmp_path, "backtest.cost_bps=500")
    for stage in STAGES:
        stage(ctx)
    decision = json.loads(ctx.path("promotion", "h5.json").read_text())
    assert decision["promoted"] is False
    assert decision["champion"] is None
    with pytest.raises(ModelNotFoundError, match=f"{ctx.deployment}@champion"):
        run_live_day(ctx, dry_run=True, as_of=pd.Timestamp("2000-12-29T23:00Z"))
    assert not (ctx.root / ctx.settings.live.log_dir).exists()


def test_paper_days_fill_hold_between_rebalances_and_skip_logged_days(tmp_path):
    ctx = _ctx(tmp_path)
    for stage in STAGES:
        stage(ctx)
    log_dir = ctx.root / ctx.settings.live.log_dir
    first = run_live_day(ctx, dry_run=False, as_of=pd.Timestamp("2000-12-22T23:00Z"))
    assert str(first.session) == "2000-12-22"
    # Decided after the close of 22 December, the orders wait for the next close the loop sees.
    fills = first.payload["fills"]
    assert fills and all(f.status == "pending" and f.open for f in fills)
    assert first.payload["positions"] == {} and first.payload["cash"] == 100_000.0

    # Four sessions later is inside the 5-session holding period: no new orders, and the
    # first day's orders fill at this session's close.
    second = run_live_day(ctx, dry_run=False, as_of=pd.Timestamp("2000-12-29T23:00Z"))
    assert second.payload["rebalance"]["due"] is False
    assert second.payload["orders"] == [] and second.payload["fills"] == []
    settled = second.payload["settled"]
    assert {f.client_order_id for f in settled} == {f.client_order_id for f in fills}
    assert all(f.status in ("filled", "partially_filled") for f in settled)
    closes = ctx.store.wide("adj_close", None, None, None, pd.Timestamp("2000-12-29T23:00Z"))
    for f in settled:  # at the 29 December close, moved against the order by 5 bps
        assert f.price == pytest.approx(closes[f.symbol].iloc[-1] * (1 + 5e-4))
    held = pd.Series(second.payload["positions"], dtype="float64")
    assert set(held.index) == set(first.payload["target_weights"])
    assert second.payload["cash"] >= 0
    assert read_daily_log(log_dir, second.session)["rebalance"]["sessions_since_last"] == 4

    again = run_live_day(
        ctx, dry_run=False, as_of=pd.Timestamp("2000-12-29T23:00Z"), skip_if_logged=True
    )
    assert again.skipped

    with pytest.raises(PyFinanceError, match="replayed with --dry-run"):
        run_live_day(ctx, dry_run=False, as_of=pd.Timestamp("2000-12-27T23:00Z"))


def test_live_loop_feeds_held_names_to_the_hold_buffer(tmp_path):
    # With a buffer as wide as the universe, a held name is kept while it ranks anywhere:
    # the second day's targets are exactly the first day's holdings.
    ctx = _ctx(
        tmp_path,
        "portfolio.hold_buffer=8",
        "portfolio.rebalance_every=1",
        "live.paper_fill_at=close",
    )
    for stage in STAGES:
        stage(ctx)
    first = run_live_day(ctx, dry_run=False, as_of=pd.Timestamp("2000-12-27T23:00Z"))
    held = set(first.payload["positions"])
    assert held
    second = run_live_day(ctx, dry_run=True, as_of=pd.Timestamp("2000-12-28T23:00Z"))
    assert set(second.payload["target_weights"]) == held
    # The same champion and account without the buffer (an explicit override: the champion
    # was evaluated with it): the ranking did move that day.
    unbuffered = _ctx(tmp_path, "portfolio.rebalance_every=1")
    with pytest.raises(PyFinanceError, match=r"portfolio.hold_buffer=8 \(local 0\)"):
        run_live_day(unbuffered, dry_run=True, as_of=pd.Timestamp("2000-12-28T23:00Z"))
    plain = run_live_day(
        unbuffered, dry_run=True, as_of=pd.Timestamp("2000-12-28T23:00Z"), override=True
    )
    assert plain.payload["config_overrides"] == [
        {"key": "portfolio.hold_buffer", "champion": "8", "local": "0"}
    ]
    assert set(plain.payload["target_weights"]) != held, "pick a day where the ranking moved"
