"""The DSR promotion gate: pure checks, the trial count of an experiment, dry runs and tags."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from py_finance import tracking
from py_finance.errors import ConfigError
from py_finance.tracking import GateEvidence, PromotionConfig, evaluate_gate, gate_evidence
from py_finance.tracking.promotion import expected_max_sharpe, trial_key

NAME = "py-finance-gate-test-h5"


def _returns(sharpe: float, n: int, seed: int = 0) -> pd.Series:
    rng = np.random.default_rng(seed)
    r = rng.standard_normal(n) * 0.01
    r = (r - r.mean()) / r.std(ddof=1) * 0.01 + sharpe / math.sqrt(252) * 0.01
    return pd.Series(r)


def _evidence(**kw) -> GateEvidence:
    base = dict(
        sharpe=1.0,
        benchmark_sharpe=0.5,
        dsr=0.99,
        psr=0.999,
        n_trials=3,
        expected_max_sharpe=0.2,
        sr_variance=1e-4,
        max_drawdown=-0.2,
        n_sessions=2000,
    )
    return GateEvidence(**{**base, **kw})


def test_all_checks_pass_and_each_failure_is_named():
    cfg = PromotionConfig()
    passed, reasons = evaluate_gate(_evidence(), config=cfg)
    assert passed and len(reasons) == 5
    for change, word in [
        ({"sharpe": 0.4}, "benchmark"),
        ({"dsr": 0.94}, "dsr"),
        ({"max_drawdown": -0.45}, "max drawdown"),
        ({"n_sessions": 500}, "oos sessions"),
        ({"dsr": math.nan}, "dsr"),
    ]:
        passed, reasons = evaluate_gate(_evidence(**change), config=cfg)
        assert not passed
        failed = [r for r in reasons if r.endswith(": fail")]
        assert len(failed) == 1 and word in failed[0], reasons


def test_more_trials_raise_the_bar_until_a_real_sharpe_fails():
    r = _returns(0.8, 2520)
    few = gate_evidence(r, 0.3, n_trials=1)
    many = gate_evidence(r, 0.3, n_trials=1000, trial_sharpes=list(np.linspace(-1, 1.2, 50)))
    assert few.dsr == pytest.approx(few.psr)
    assert many.expected_max_sharpe > few.expected_max_sharpe == 0.0
    assert many.dsr < few.dsr
    assert evaluate_gate(few, config=PromotionConfig())[0]
    assert not evaluate_gate(many, config=PromotionConfig())[0]
    assert expected_max_sharpe(1, 1.0) == 0.0
    assert expected_max_sharpe(100, 1e-4) > expected_max_sharpe(10, 1e-4) > 0


def test_evidence_matches_the_backtest_metrics():
    from py_finance.backtest.metrics import compute_metrics

    r = _returns(0.6, 1500, seed=3)
    ev = gate_evidence(r, 0.2, n_trials=4, sr_variance="sampling")
    m = compute_metrics(r, n_trials=4)
    assert ev.sharpe == pytest.approx(m["sharpe"])
    assert ev.dsr == pytest.approx(m["dsr"])
    assert ev.max_drawdown == pytest.approx(m["max_drawdown"])
    assert ev.n_sessions == 1500


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("dsr_confidence", 1.5),
        ("max_drawdown", -0.3),
        ("min_oos_sessions", 0),
        ("n_trials", 0),
        ("sr_variance", "median"),
        ("candidate", "benchmark"),
    ],
)
def test_bad_settings_name_their_key(field, value):
    with pytest.raises(ConfigError, match=f"promotion.{field}"):
        PromotionConfig(**{field: value})


def test_trial_key_ignores_where_a_run_wrote():
    a = {"model.num_leaves": "15", "tracking.experiment": "a", "paths.store": "x"}
    b = {"model.num_leaves": "15", "tracking.experiment": "b", "paths.store": "y"}
    assert trial_key(a, "regime_aware") == trial_key(b, "regime_aware")
    assert trial_key(a, "regime_aware") != trial_key(a, "baseline")
    assert trial_key(a) != trial_key({**a, "model.num_leaves": "31"})


def test_trial_key_ignores_how_a_run_executed():
    # The walk-forward executor gives bit-identical predictions; threads, devices and the
    # other cells of the DVC matrix do not change this run's results either.
    a = {
        "model.num_leaves": "15",
        "walk_forward.executor": "processes",
        "walk_forward.workers": "0",
        "model.n_jobs": "2",
        "models.xgboost.max_depth": "4",
        "data.batch_size": "10",
        "model.accelerator": "auto",
    }
    b = {
        **a,
        "walk_forward.executor": "local",
        "walk_forward.workers": "4",
        "model.n_jobs": "8",
        "models.xgboost.max_depth": "6",
        "data.batch_size": "250",
        "model.accelerator": "cpu",
    }
    assert trial_key(a, "regime_aware") == trial_key(b, "regime_aware")
    # What the walk-forward computes still counts.
    assert trial_key(a) != trial_key({**a, "walk_forward.embargo": "10"})
    assert trial_key(a) != trial_key({**a, "model.batch_size": "256"})


def _register(value: float, name: str = NAME) -> str:
    class _Constant:
        def predict(self, x):
            return np.full(len(x), value)

    with tracking.start_run(f"gate-candidate-{value}"):
        ref = tracking.log_model(
            _Constant(),
            feature_names=["f"],
            input_example=pd.DataFrame({"f": [0.1, 0.2]}),
            pip_requirements=["numpy", "pandas"],
            registered_model_name=name,
        )
    assert ref.version is not None
    return ref.version


def test_dry_run_changes_nothing_and_a_real_run_tags_the_figures(store):
    version = _register(1.0)
    cfg = PromotionConfig()
    dry = tracking.promote(NAME, version, _evidence(), config=cfg, dry_run=True)
    assert dry.promote
    assert tracking.get_alias_version(NAME, "champion") is None
    assert tracking.get_alias_version(NAME, "challenger") is None
    assert "gate.decision" not in tracking.get_version_tags(NAME, version)

    rejected = tracking.promote(NAME, version, _evidence(dsr=0.5), config=cfg)
    assert not rejected.promote
    tags = tracking.get_version_tags(NAME, version)
    assert tags["gate.decision"] == "rejected"
    assert float(tags["gate.dsr"]) == 0.5
    assert tags["gate.n_trials"] == "3"
    assert tags["gate.config.dsr_confidence"] == "0.95"
    assert "dsr 0.5 >= 0.95" in tags["gate.reasons"]
    assert tracking.get_alias_version(NAME, "challenger") is None  # rejected: not worth a shadow
    assert tracking.get_alias_version(NAME, "champion") is None

    assert tracking.promote(NAME, version, _evidence(), config=cfg).promote
    assert tracking.get_alias_version(NAME, "champion") == version


def _trial(question: str, params: dict, sharpe: float | None, *, fail: bool = False) -> None:
    tags = tracking.trial_tags(question, params, "regime_aware")
    if fail:
        tracking.record_failed_run("t-failed", params, tags)
        return
    with tracking.start_run("t", tags=tags):
        tracking.log_params(params)
        if sharpe is not None:
            tracking.log_metrics({"sharpe": sharpe})


def test_count_trials_groups_repeats_of_one_configuration(store):
    from py_finance.tracking.config import TrackingConfig

    question = tracking.research_question("snapshot-repeats", ["A", "B"], 5)
    tracking.setup(TrackingConfig(experiment="py-finance-trial-count"), root=store.root)
    for leaves, sharpe in [(15, 0.5), (15, 0.6), (31, 0.9)]:
        _trial(question, {"model.num_leaves": leaves}, sharpe)
    with tracking.start_run("not-a-backtest"):  # no ledger tags: a sweep or job run
        tracking.log_metrics({"sharpe": 9.0})
    record = tracking.count_trials(question)
    assert record.n_trials == 2 and record.n_runs == 3
    assert sorted(record.sharpes) == [0.6, 0.9]  # the latest run of a repeated config
    assert tracking.count_trials("no-such-question").n_trials == 1


def test_trials_of_a_question_count_across_experiments_failures_included(store):
    from py_finance.tracking.config import TrackingConfig

    question = tracking.research_question("snapshot-across", ["A", "B"], 5)
    other = tracking.research_question("snapshot-toy-slice", ["A"], 5)
    assert question != other
    assert question != tracking.research_question("snapshot-across", ["A", "B"], 20)
    for i, experiment in enumerate(["ledger-a", "ledger-b"]):
        tracking.setup(TrackingConfig(experiment=experiment), root=store.root)
        _trial(question, {"model.num_leaves": i}, 0.4 + i)
    tracking.setup(TrackingConfig(experiment="ledger-c"), root=store.root)
    _trial(question, {"model.num_leaves": 99}, None, fail=True)
    _trial(other, {"model.num_leaves": 5}, 3.0)  # a quick look on another slice
    record = tracking.count_trials(question)
    # two experiments, one crash: three configurations tried; the crash has no Sharpe
    assert record.n_trials == 3
    assert sorted(record.sharpes) == [0.4, 1.4]
    assert tracking.count_trials(other).n_trials == 1


def test_the_champion_is_rechecked_and_demoted_when_its_question_gains_trials(store):
    from py_finance.tracking.config import TrackingConfig

    name = "py-finance-recheck-test-h5"
    question = tracking.research_question("snapshot-recheck", ["A", "B"], 5)
    tracking.setup(TrackingConfig(experiment="ledger-recheck"), root=store.root)
    returns = _returns(1.2, 1000, seed=3)
    curve = (1.0 + returns).cumprod()
    bench = (1.0 + _returns(0.2, 1000, seed=4)).cumprod()
    equity = pd.DataFrame({"regime_aware": curve, "benchmark": bench})
    params = {"model.num_leaves": 7}

    class _Constant:
        def predict(self, x):
            return np.zeros(len(x))

    with tracking.start_run("champion", tags=tracking.trial_tags(question, params, "regime_aware")):
        tracking.log_params(params)
        tracking.log_metrics({"sharpe": 1.2})
        tracking.log_frame(equity, "equity.parquet")
        ref = tracking.log_model(
            _Constant(),
            feature_names=["f"],
            input_example=pd.DataFrame({"f": [0.1, 0.2]}),
            pip_requirements=["numpy"],
        )
    version = tracking.register_logged_model(name, ref.run_id, ref.model_uri).version
    # registering the same run again gives the same version
    assert tracking.register_logged_model(name, ref.run_id, ref.model_uri).version == version
    assert tracking.version_of_run(name, ref.run_id) == version
    cfg = PromotionConfig(min_oos_sessions=500)
    tracking.set_version_tags(name, version, {"gate.n_trials": "1"})
    tracking.set_alias(name, "champion", version)

    assert tracking.recheck_champion(name, cfg) is None  # still one trial: nothing to do
    for i in range(40):  # a sweep on the same question, Sharpes spread widely
        _trial(question, {"model.num_leaves": 100 + i}, float(np.linspace(-2, 2, 40)[i]))
    dry = tracking.recheck_champion(name, cfg, dry_run=True)
    assert dry is not None and not dry.passed and not dry.demoted
    assert tracking.get_alias_version(name, "champion") == version
    done = tracking.recheck_champion(name, cfg)
    assert done is not None and done.n_trials_now == 41 and done.demoted
    assert tracking.get_alias_version(name, "champion") is None
    assert tracking.get_version_tags(name, version)["gate.recheck"].startswith("failed over 41")


def _paired(edge: float, n: int = 2520, seed: int = 3) -> tuple[pd.Series, pd.Series]:
    """Two strategies sharing the market's moves; the candidate earns ``edge`` a session more."""
    rng = np.random.default_rng(seed)
    idx = pd.bdate_range("2010-01-04", periods=n)
    market = rng.standard_t(5, n) * 0.008
    champion = pd.Series(market + rng.standard_normal(n) * 0.004 + 0.0003, idx)
    candidate = pd.Series(market + rng.standard_normal(n) * 0.004 + 0.0003 + edge, idx)
    return candidate, champion


def test_sharpe_difference_test_uses_common_sessions_and_knows_its_sign():
    cand, champ = _paired(0.0008)
    test = tracking.sharpe_difference_test(cand, champ.iloc[100:])
    assert test.n_sessions == len(cand) - 100
    assert test.first == champ.index[100].date().isoformat()
    assert test.difference > 0 and test.std_error > 0
    assert test.z == pytest.approx(test.difference / test.std_error)
    flipped = tracking.sharpe_difference_test(champ.iloc[100:], cand)
    assert flipped.difference == pytest.approx(-test.difference)
    assert flipped.std_error == pytest.approx(test.std_error)


def test_sharpe_difference_std_error_matches_its_sampling_spread():
    # Across independent draws the HAC standard error is the spread of the difference
    # (within 25%: 200 draws, serially independent returns).
    diffs, errors = [], []
    for seed in range(200):
        cand, champ = _paired(0.0, n=750, seed=seed)
        t = tracking.sharpe_difference_test(cand, champ)
        diffs.append(t.difference)
        errors.append(t.std_error)
    assert np.mean(errors) == pytest.approx(np.std(diffs), rel=0.25)


@pytest.mark.parametrize(
    ("edge", "mode", "passes", "word"),
    [
        (0.0008, "better", True, "better at 95%"),
        (-0.0008, "better", False, "worse at 95%"),
        (0.00002, "better", False, "a statistical tie"),
        (0.00002, "not_worse", True, "a statistical tie"),
        (-0.0008, "not_worse", False, "worse at 95%"),
        (-0.0008, "ignore", True, "worse at 95%"),
    ],
)
def test_the_comparison_with_the_champion_decides_by_its_mode(edge, mode, passes, word):
    cand, champ = _paired(edge)
    test = tracking.sharpe_difference_test(cand, champ)
    ok, line = tracking.judge_vs_champion(test, PromotionConfig(vs_champion=mode))
    assert ok is passes, line
    assert word in line and line.endswith("pass" if passes else "fail")


def test_too_few_common_sessions_fail_the_comparison():
    cand, champ = _paired(0.0008)
    test = tracking.sharpe_difference_test(cand.iloc[:100], champ)
    ok, line = tracking.judge_vs_champion(test, PromotionConfig())
    assert not ok and "fewer than 252 comparable sessions" in line


def test_a_worse_candidate_is_refused_a_better_one_promoted_and_a_tie_keeps_the_champion(store):
    cfg = PromotionConfig()
    name = "py-finance-vs-champion-test-h5"
    champion = _register(1.0, name)
    assert tracking.promote(name, champion, _evidence(), config=cfg).promote
    for edge, promoted in ((-0.0008, False), (0.00002, False), (0.0008, True)):
        candidate = _register(2.0, name)
        test = tracking.sharpe_difference_test(*_paired(edge))
        decision = tracking.promote(name, candidate, _evidence(), config=cfg, comparison=test)
        assert decision.promote is promoted, decision.reasons
        expected = candidate if promoted else champion
        assert tracking.get_alias_version(name, "champion") == expected
        # Passing the absolute checks, each is the newest challenger.
        assert tracking.get_alias_version(name, "challenger") == candidate
        assert any(r.startswith("vs champion") for r in decision.reasons)


def test_a_candidate_that_may_not_deploy_stops_at_challenger(store):
    cfg = PromotionConfig()
    name = "py-finance-propose-test-h5"
    version = _register(1.0, name)
    decision = tracking.promote(name, version, _evidence(), config=cfg, deploy=False)
    assert not decision.promote and decision.decision == "challenger"
    assert tracking.get_alias_version(name, "champion") is None
    assert tracking.get_alias_version(name, "challenger") == version
    assert any("promote.py --apply" in r for r in decision.reasons)


def test_identical_tracks_are_a_tie_not_an_error():
    cand, _ = _paired(0.0)
    test = tracking.sharpe_difference_test(cand, cand.copy())
    assert test.difference == 0.0 and test.std_error == 0.0 and test.z == 0.0
    ok, line = tracking.judge_vs_champion(test, PromotionConfig())
    assert not ok and "a statistical tie" in line
    assert tracking.judge_vs_champion(test, PromotionConfig(vs_champion="not_worse"))[0]


def test_the_champion_judged_again_moves_no_alias(store):
    # A retrain on unchanged data, or --apply on the champion's own backtest: the challenger
    # (another version, in its shadow book) stays.
    cfg = PromotionConfig()
    name = "py-finance-rejudge-test-h5"
    champion = _register(1.0, name)
    assert tracking.promote(name, champion, _evidence(), config=cfg).promote
    challenger = _register(2.0, name)
    tracking.promote(name, challenger, _evidence(), config=cfg, deploy=False)
    assert tracking.get_alias_version(name, "challenger") == challenger
    again = tracking.promote(name, champion, _evidence(dsr=0.5), config=cfg)
    assert again.decision == "champion" and not again.promote
    assert any("is @champion already" in r for r in again.reasons)
    assert tracking.get_alias_version(name, "champion") == champion
    assert tracking.get_alias_version(name, "challenger") == challenger
    assert tracking.get_version_tags(name, champion)["gate.decision"] == "promoted"


def test_a_comparison_without_returns_says_how_many_sessions_it_had():
    test = tracking.sharpe_difference_test(pd.Series(dtype=float), pd.Series(dtype=float))
    ok, line = tracking.judge_vs_champion(test, PromotionConfig(min_common_sessions=20))
    assert not ok and line.startswith("vs champion v: 0 common sessions") and "nan" not in line
