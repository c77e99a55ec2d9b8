"""Three weekly retrains on the synthetic market: each decision, and who trades after each."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from py_finance import tracking
from py_finance.config import build, compose
from py_finance.data.calendar import sessions
from py_finance.data.sources.synthetic import SyntheticSource
from py_finance.knownanswer import market_overrides
from py_finance.live.loop import run_live_day
from py_finance.live.retrain import retrain
from py_finance.pipeline.context import Context

pytestmark = pytest.mark.slow
MARKET = {"n_active": 30, "n_sessions": 1260, "edge": 0.05, "seed": 0}
SMALL = [
    "walk_forward.min_train_sessions=504",
    "regimes.min_train_sessions=252",
    "model.n_estimators=30",
    "model.learning_rate=0.1",
    "model.patience=0",
    "portfolio.top_k=5",
    "promotion.dsr_confidence=0.5",
    "promotion.min_oos_sessions=252",
    "promotion.retrain_apply=true",
]


def _week(root, end, *extra):
    base = market_overrides(**MARKET)
    base = [o for o in base if not o.startswith("data.end=")]
    return Context(build(compose([*base, f"data.end={end.date()}", *SMALL, *extra])), root)


def test_three_weekly_retrains_decide_and_the_loop_trades_the_champion_after_each(tmp_path):
    first, last = SyntheticSource(**MARKET).coverage()
    days = sessions(first, last)
    weeks = [days[-11], days[-6], days[-1]]
    trades = []
    decisions = []
    for i, end in enumerate(weeks):
        # The third week's config accepts a statistical tie: the job may then promote.
        extra = ["promotion.vs_champion=not_worse"] if i == 2 else []
        ctx = _week(tmp_path, end, *extra)
        out = retrain(ctx)
        assert out["status"] == "decided"
        decisions.append(out)
        day = run_live_day(ctx, dry_run=True, as_of=pd.Timestamp(f"{end.date()}T23:00Z"))
        trades.append(day.payload["model_version"])
        assert day.payload["model_version"] == out["champion"], out
        assert out["champion"] == tracking.get_alias_version(ctx.deployment, tracking.CHAMPION)

    one, two, three = decisions
    assert one["decision"] == "promoted" and one["previous_champion"] is None
    # A week more of data: the champion is re-scored on the new sessions and compared on the
    # same ones; nearly the same model is a tie, which keeps it.
    assert two["decision"] == "challenger" and two["champion"] == one["candidate_version"]
    vs_line = next(r for r in two["reasons"] if r.startswith("vs champion"))
    assert "re-scored" in vs_line and "a statistical tie" in vs_line
    assert three["decision"] == "promoted" and three["champion"] == three["candidate_version"]
    assert trades == [
        one["candidate_version"],
        one["candidate_version"],
        three["candidate_version"],
    ]

    # Safe to rerun: nothing new since the last retrain, nothing done.
    again = retrain(_week(tmp_path, weeks[-1], "promotion.vs_champion=not_worse"))
    assert again["status"] == "unchanged" and again["champion"] == three["champion"]
    history = [
        json.loads(line) for line in (tmp_path / "logs/retrain.jsonl").read_text().splitlines()
    ]
    assert [h["status"] for h in history] == ["decided"] * 3 + ["unchanged"]
