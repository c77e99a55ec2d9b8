"""Evaluation helpers: the 'model cannot matter' check, the DVC summary, the gate's returns."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from py_finance.pipeline.evaluation import candidate_returns, held_every_name, summary


def _scores(n_sessions: int, n_names: int) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(rng.standard_normal((n_sessions, n_names)))


def test_holding_every_scored_name_on_every_rebalance_is_flagged():
    scores = _scores(10, 6)
    every = pd.DataFrame(np.nan, index=scores.index, columns=scores.columns)
    every.iloc[::5] = 1 / 6
    assert held_every_name(every, scores)
    some = every.copy()
    some.iloc[5, :3] = 0.0  # one rebalance holds three names of six: the scores chose them
    assert not held_every_name(some, scores)
    scores.iloc[0, 5] = np.nan  # an unscored name need not be held
    every.iloc[0, 5] = np.nan
    assert held_every_name(every, scores)


def test_candidate_returns_keep_the_first_sessions_cost():
    curve = pd.Series([0.999, 1.01, 1.0])
    r = candidate_returns(curve)
    assert math.isclose(r.iloc[0], -0.001) and math.isclose(r.iloc[1], 1.01 / 0.999 - 1)


def test_the_summary_is_the_candidates_figures_rounded():
    m = {"sharpe": 0.5881, "cagr": 0.07071, "max_drawdown": -0.3211, "dsr": 0.99612}
    metrics = {
        "regime_aware": {**m, "n_trials": 2.0, "turnover": 16.949},
        "benchmark": {"sharpe": 0.4771},
        "skill": {"oos_rank_ic": 0.018239},
    }
    assert summary(metrics) == {
        "sharpe": 0.588,
        "cagr": 0.0707,
        "max_dd": -0.3211,
        "dsr": 0.996,
        "n_trials": 2,
        "rank_ic": 0.0182,
        "turnover": 16.95,
        "bench_sharpe": 0.477,
    }
    metrics["regime_aware"]["sharpe"] = float("nan")
    assert summary(metrics)["sharpe"] is None


def test_a_backtest_that_crashes_is_still_a_trial_of_its_question(small_ctx):
    import mlflow
    import pytest

    from py_finance import tracking
    from py_finance.errors import DataError
    from py_finance.pipeline import evaluation, research

    research.ingest(small_ctx)
    with pytest.raises(DataError, match="run the train stage first"):
        evaluation.backtest(small_ctx)  # no predictions: it fails before any result
    question = evaluation.research_question(small_ctx)
    record = tracking.count_trials(question)
    assert record.n_trials == 2 and record.n_runs == 2 and record.sharpes == ()
    runs = mlflow.search_runs(experiment_names=[small_ctx.settings.tracking.experiment])
    assert set(runs["status"]) == {"FAILED"}
    assert set(runs["tags.variant"]) == {"baseline", "regime_aware"}
    assert all("run the train stage first" in e for e in runs["tags.error"])


def test_only_a_clean_checkout_outside_dvc_experiments_may_deploy(tmp_path, monkeypatch):
    import subprocess
    from types import SimpleNamespace

    from py_finance.pipeline.evaluation import deploy_blockers

    git = ["git", "-c", "user.name=t", "-c", "user.email=t@e.invalid"]
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    for name in ("params.yaml", "dvc.lock"):
        (tmp_path / name).write_text("a: 1\n")
    subprocess.run([*git, "add", "-A"], cwd=tmp_path, check=True)
    subprocess.run([*git, "commit", "-qm", "x"], cwd=tmp_path, check=True)
    monkeypatch.delenv("DVC_EXP_NAME", raising=False)
    ctx = SimpleNamespace(root=tmp_path)
    assert deploy_blockers(ctx) == []
    (tmp_path / "dvc.lock").write_text("a: 2\n")  # what any `dvc repro` rewrites
    assert deploy_blockers(ctx) == []
    (tmp_path / "params.yaml").write_text("a: 2\n")
    assert deploy_blockers(ctx) == ["uncommitted changes to params.yaml"]
    # A pipeline rooted in a folder inside the checkout (null test outputs) is not its workspace.
    (tmp_path / "outputs").mkdir()
    assert deploy_blockers(SimpleNamespace(root=tmp_path / "outputs")) == []
    monkeypatch.setenv("DVC_EXP_NAME", "fussy-moth")
    assert deploy_blockers(SimpleNamespace(root=tmp_path / "outputs")) == [
        "DVC experiment 'fussy-moth'"
    ]
