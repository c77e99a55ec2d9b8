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


def _register(value: float) -> str:
    class _Constant:
        def predict(self, x):
            return np.full(len(x), value)

    with tracking.start_run(f"gate-candidate-{value}"):
        ref = tracking.log_model(
            _Constant(),
            feature_names=["f"],
            input_example=pd.DataFrame({"f": [0.1, 0.2]}),
            pip_requirements=["numpy", "pandas"],
            registered_model_name=NAME,
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
    assert tracking.get_alias_version(NAME, "challenger") == version
    assert tracking.get_alias_version(NAME, "champion") is None

    assert tracking.promote(NAME, version, _evidence(), config=cfg).promote
    assert tracking.get_alias_version(NAME, "champion") == version


def test_count_trials_groups_repeats_of_one_configuration(store):
    from py_finance.tracking.config import TrackingConfig

    cfg = TrackingConfig(experiment="py-finance-trial-count")
    tracking.setup(cfg, root=store.root)
    for i, (leaves, sharpe) in enumerate([(15, 0.5), (15, 0.6), (31, 0.9)]):
        with tracking.start_run(f"t{i}", tags={"variant": "regime_aware"}):
            tracking.log_params({"model": {"num_leaves": leaves}})
            tracking.log_metrics({"sharpe": sharpe})
    with tracking.start_run("not-a-backtest"):  # no variant tag: a sweep or job run
        tracking.log_metrics({"sharpe": 9.0})
    record = tracking.count_trials("py-finance-trial-count")
    assert record.n_trials == 2 and record.n_runs == 3
    assert sorted(record.sharpes) == [0.6, 0.9]  # the latest run of a repeated config
    assert tracking.count_trials("no-such-experiment").n_trials == 1
