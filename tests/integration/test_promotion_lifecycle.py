"""The promotion lifecycle on a small slice: the first champion, candidates that only propose,
a deliberate promotion, the comparison with the champion on the same sessions, and a live
loop that trades a champion only with the settings it was evaluated with."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from py_finance import tracking
from py_finance.config import build, compose
from py_finance.errors import PyFinanceError
from py_finance.live.daily_log import read_daily_log
from py_finance.live.loop import run_live_day
from py_finance.pipeline import evaluation, research
from py_finance.pipeline.context import Context
from tests.conftest import SLICE

GATE = ["promotion.dsr_confidence=0.5"]
RESEARCH = (
    research.ingest,
    research.features,
    research.labels,
    research.regimes,
    lambda ctx: research.train(ctx, progress=False),
)
EVALUATION = (evaluation.backtest, evaluation.report, evaluation.promote)
AS_OF = pd.Timestamp("2000-12-29T23:00Z")
DAY1 = pd.Timestamp("2000-12-28T23:00Z")


def _ctx(root, *overrides):
    return Context(build(compose([*SLICE, *GATE, *overrides])), root)


def _run(ctx, stages):
    for stage in stages:
        stage(ctx)
    return json.loads(ctx.path("promotion", f"h{ctx.horizon}.json").read_text())


def test_candidates_propose_apply_promotes_and_the_loop_trades_only_the_evaluated_config(
    tmp_path,
):
    first = _ctx(tmp_path)
    bootstrap = _run(first, (*RESEARCH, *EVALUATION))
    assert bootstrap["promoted"] and bootstrap["how"] == "bootstrap", bootstrap["reasons"]
    name = first.deployment
    assert name == f"py-finance-{first.settings.data.universe_id()}-h5"
    v1 = bootstrap["champion"]
    tags = tracking.get_version_tags(name, v1)
    recorded = json.loads(tags[tracking.deployment.CONFIG_TAG])
    assert recorded["portfolio"]["top_k"] == 4 and "hydra" not in recorded

    # Another configuration of the same question: it is judged against the champion on the
    # same sessions, and proposes only (the deployment has a champion).
    other = _ctx(tmp_path, "portfolio.top_k=3", "promotion.vs_champion=ignore")
    proposed = _run(other, EVALUATION)
    assert proposed["champion"] == v1 and not proposed["promoted"]
    assert proposed["decision"] in ("challenger", "rejected")
    vs = proposed["vs_champion"]
    assert vs["champion_version"] == v1 and vs["rescored_sessions"] == 0
    assert vs["n_sessions"] == proposed["evidence"]["n_sessions"]
    assert any(r.startswith(f"vs champion v{v1}") for r in proposed["reasons"])
    assert tracking.get_alias_version(name, "champion") == v1

    # The loop trades the champion with its own settings, and refuses the other's.
    traded = run_live_day(first, dry_run=True, as_of=AS_OF)
    assert traded.payload["model_version"] == v1 and len(traded.payload["target_weights"]) == 4
    with pytest.raises(PyFinanceError, match=r"portfolio.top_k=4 \(local 3\)") as refused:
        run_live_day(other, dry_run=True, as_of=AS_OF)
    assert "\n" not in str(refused.value) and "--override" in str(refused.value)

    if proposed["decision"] == "rejected":
        pytest.skip("the slice's top-3 candidate failed the absolute checks")
    applied = evaluation.promote(other, apply=True)
    assert applied["promoted"] and applied["how"] == "applied"
    v2 = applied["candidate_version"]
    assert v2 == proposed["candidate_version"] != v1
    assert tracking.get_alias_version(name, "champion") == v2
    audit = (tmp_path / "logs" / "promotions.jsonl").read_text().splitlines()
    assert [json.loads(line)["candidate_version"] for line in audit] == [v1, v2]
    # The file of the promote stage still says what the stage decided: apply leaves the
    # DVC outputs as they were.
    stage_file = json.loads(other.path("promotion", "h5.json").read_text())
    assert stage_file["champion"] == v1
    assert len(run_live_day(other, dry_run=True, as_of=AS_OF).payload["target_weights"]) == 3
    with pytest.raises(PyFinanceError, match=r"portfolio.top_k=3 \(local 4\)"):
        run_live_day(first, dry_run=True, as_of=AS_OF)


def test_the_champion_is_re_simulated_from_its_model_on_a_longer_window(tmp_path):
    early = _ctx(tmp_path, "data.end=1999-12-31", "promotion.min_oos_sessions=252")
    decision = _run(early, (*RESEARCH, *EVALUATION))
    assert decision["promoted"], decision["reasons"]
    name, v1 = early.deployment, decision["champion"]
    logged = pd.read_parquet(early.backtest_dir() / "equity.parquet")["regime_aware"]

    later = _ctx(tmp_path, "data.end=2000-12-29", "promotion.min_oos_sessions=252")
    assert later.deployment == name  # new data, same deployment
    for stage in RESEARCH:
        stage(later)
    evaluation.backtest(later)
    equity = pd.read_parquet(later.backtest_dir() / "equity.parquet")["regime_aware"]
    sessions = pd.DatetimeIndex(equity.index)
    returns, rescored = evaluation.champion_returns(later, name, v1, sessions)
    new = sessions[sessions > logged.index.max()]
    assert rescored == len(new) > 200
    assert returns.index.max() == sessions.max()
    # Where the champion's own backtest ran, the re-simulation is that backtest.
    own = logged.pct_change().dropna()
    common = own.index.intersection(returns.index)
    assert len(common) == len(own)
    np.testing.assert_allclose(returns.loc[common], own.loc[common], rtol=0, atol=1e-12)

    out = evaluation.promote(later, dry_run=True)
    vs = out["vs_champion"]
    assert vs["rescored_sessions"] == rescored and vs["last"] == "2000-12-29"


def test_the_shadow_book_trades_what_the_challenger_would_have(tmp_path):
    import shutil

    root = tmp_path / "root"
    first = _ctx(root)
    assert _run(first, (*RESEARCH, *EVALUATION))["promoted"]
    other = _ctx(root, "portfolio.top_k=3", "promotion.vs_champion=ignore")
    proposed = _run(other, EVALUATION)
    if proposed["decision"] == "rejected":
        pytest.skip("the slice's top-3 candidate failed the absolute checks")
    challenger = proposed["challenger"]
    twin = tmp_path / "twin"
    shutil.copytree(root, twin)

    day = run_live_day(first, dry_run=False, as_of=DAY1)
    shadow = day.payload["shadow"]
    assert shadow["version"] == challenger and len(shadow["target_weights"]) == 3
    assert day.payload["model_version"] != challenger
    assert len(day.payload["target_weights"]) == 4  # the champion's own book is untouched
    logged = read_daily_log(first.root / first.settings.live.log_dir, day.session)
    assert logged["shadow"]["target_weights"] == shadow["target_weights"]

    # The challenger as the champion of an identical project, on the same session and cash.
    alone_ctx = Context(other.settings, twin)
    assert evaluation.promote(alone_ctx, apply=True)["promoted"]
    alone = run_live_day(alone_ctx, dry_run=True, as_of=DAY1)
    assert alone.payload["model_version"] == challenger
    assert shadow["target_weights"] == alone.payload["target_weights"]

    def orders(entries):
        return [(o["symbol"], o["side"], round(o["qty"], 9)) for o in entries]

    assert orders(shadow["orders"]) == orders(alone.payload["orders"])

    # The next session: the would-be orders fill at its close, the book is marked.
    later = run_live_day(first, dry_run=False, as_of=AS_OF)
    assert later.payload["shadow"]["version"] == challenger
    assert set(later.payload["shadow"]["positions"]) == set(shadow["target_weights"])
    assert later.payload["shadow"]["equity"] != shadow["equity"]
    # The monitor replays the shadow book's filled session as it does the champion's.
    watched = later.payload["monitor"]["shadow"]
    assert watched["version"] == challenger and watched["replay"]["traded"]
    assert watched["replay"]["live_start"] == pytest.approx(shadow["equity"], rel=1e-12)
    assert abs(watched["replay"]["tracking_difference"]) < 1e-3  # 5 bps paid vs 10 modelled
    assert set(later.payload["shadow"]["scores"]) == set(later.payload["scores"])
    # Both tracks in MLflow, a run per deployed version, step = session.
    import mlflow

    client = mlflow.MlflowClient()
    live = client.get_experiment_by_name("py-finance-live")
    runs = {r.info.run_name: r for r in client.search_runs([live.experiment_id])}
    champion_run = runs[f"paper-{first.deployment}-v{day.payload['model_version']}"]
    shadow_run = runs[f"shadow-paper-{first.deployment}-v{challenger}"]
    steps = [m.step for m in client.get_metric_history(shadow_run.info.run_id, "equity")]
    assert steps == [20001228, 20001229]
    assert champion_run.data.metrics["equity"] == later.payload["equity"]


def test_promote_from_shadow_needs_its_sessions_then_compares_the_two_tracks(tmp_path):
    from py_finance.live.shadow import promote_from_shadow

    first = _ctx(tmp_path, "promotion.min_shadow_sessions=3")
    assert _run(first, (*RESEARCH, *EVALUATION))["promoted"]
    other = _ctx(tmp_path, "portfolio.top_k=3", "promotion.vs_champion=ignore")
    if _run(other, EVALUATION)["decision"] == "rejected":
        pytest.skip("the slice's top-3 candidate failed the absolute checks")
    sessions = ["2000-12-21", "2000-12-22", "2000-12-26"]
    for day in sessions:
        run_live_day(first, dry_run=False, as_of=pd.Timestamp(f"{day}T23:00Z"))
    early = promote_from_shadow(first, apply=True)
    assert early["shadow_sessions"] == 3 and not early["promoted"]
    assert "fewer than 3 comparable sessions" in early["reasons"][0]
    for day in ("2000-12-27", "2000-12-28", "2000-12-29"):
        run_live_day(first, dry_run=False, as_of=pd.Timestamp(f"{day}T23:00Z"))
    # promotion.vs_champion=ignore is the local config's: what `--from-shadow` judges with.
    lenient = Context(
        build(
            compose(
                [*SLICE, *GATE, "promotion.min_shadow_sessions=3", "promotion.vs_champion=ignore"]
            )
        ),
        tmp_path,
    )
    dry = promote_from_shadow(lenient)
    assert dry["shadow_sessions"] == 6 and dry["passes"] and not dry["promoted"]
    assert dry["vs_champion"]["n_sessions"] == 5
    done = promote_from_shadow(lenient, apply=True)
    assert done["promoted"] and done["champion"] == done["challenger"]
    audit = (tmp_path / "logs" / "promotions.jsonl").read_text().splitlines()
    assert json.loads(audit[-1])["how"] == "from_shadow"
