"""The promotion gate: pure decisions, then aliases and tags in a temporary registry."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from py_finance import tracking
from py_finance.tracking import evaluate_gate

NAME = "py-finance-promotion-test-h1"


@pytest.mark.parametrize(
    ("sharpe", "bench", "min_sharpe", "expected"),
    [
        (0.71, 0.45, 0.0, True),
        (0.71, 0.90, 0.0, False),  # below the benchmark
        (-0.2, -0.5, 0.0, False),  # beats the benchmark but not the floor
        (0.30, 0.10, 0.5, False),  # custom floor
        (0.45, 0.45, 0.0, False),  # equal to the benchmark: strict
        (0.0, -1.0, 0.0, False),  # equal to the floor: strict
        (math.nan, 0.45, 0.0, False),
        (0.71, math.nan, 0.0, False),
        (math.inf, 0.45, 0.0, False),
        (0.1, 0.0, -math.inf, True),  # no floor
    ],
)
def test_gate_requires_sharpe_strictly_above_floor_and_benchmark(
    sharpe: float, bench: float, min_sharpe: float, expected: bool
) -> None:
    passed, reasons = evaluate_gate({"sharpe": sharpe}, {"sharpe": bench}, min_sharpe=min_sharpe)
    assert passed is expected
    assert len(reasons) == 2
    assert all(r.endswith((": pass", ": fail")) for r in reasons)
    assert any(r.endswith(": fail") for r in reasons) is not expected


def test_gate_reasons_state_numbers() -> None:
    passed, reasons = evaluate_gate({"sharpe": 0.71}, {"sharpe": 0.45})
    assert passed
    assert reasons == ["sharpe 0.71 > 0: pass", "sharpe 0.71 > benchmark 0.45: pass"]
    _, close = evaluate_gate({"sharpe": 0.450001}, {"sharpe": 0.45})
    assert close[1] == "sharpe 0.450001 > benchmark 0.45: pass"
    _, nan = evaluate_gate({"sharpe": math.nan}, {"sharpe": 0.45})
    assert nan == ["sharpe nan > 0: fail", "sharpe nan > benchmark 0.45: fail"]


def test_gate_fails_when_sharpe_is_missing() -> None:
    passed, reasons = evaluate_gate({"cagr": 0.2}, {"sharpe": 0.1})
    assert not passed
    assert reasons[0] == "sharpe nan > 0: fail"


class _Constant:
    """Smallest object with a predict: a constant score per row."""

    def __init__(self, value: float) -> None:
        self.value = value

    def predict(self, x: pd.DataFrame) -> np.ndarray:
        return np.full(len(x), self.value)


def _register(value: float) -> str:
    example = pd.DataFrame({"f": [0.1, 0.2]})
    with tracking.start_run(f"candidate-{value}"):
        ref = tracking.log_model(
            _Constant(value),
            feature_names=["f"],
            input_example=example,
            pip_requirements=["numpy", "pandas"],
            registered_model_name=NAME,
        )
    assert ref.version is not None
    return ref.version


def test_rejected_candidate_keeps_champion_and_challenger(
    store,
) -> None:
    first = _register(1.0)
    decision = tracking.promote(NAME, first, {"sharpe": 0.8}, {"sharpe": 0.4})
    assert decision.promote
    assert decision.previous_champion is None
    assert decision.candidate_version == first
    assert tracking.get_alias_version(NAME, "champion") == first
    assert tracking.get_alias_version(NAME, "challenger") == first
    tags = tracking.get_version_tags(NAME, first)
    assert tags["gate.decision"] == "promoted"
    assert tags["gate.sharpe"] == "0.8"
    assert tags["gate.benchmark_sharpe"] == "0.4"
    assert tags["gate.reasons"] == "sharpe 0.8 > 0: pass; sharpe 0.8 > benchmark 0.4: pass"

    second = _register(2.0)
    decision = tracking.promote(NAME, second, {"sharpe": 0.3}, {"sharpe": 0.4})
    assert not decision.promote
    assert decision.previous_champion == first
    assert "sharpe 0.3 > benchmark 0.4: fail" in decision.reasons
    assert tracking.get_alias_version(NAME, "champion") == first
    # @challenger is the newest candidate that passed the absolute checks (worth shadowing):
    # a rejected one does not take it.
    assert tracking.get_alias_version(NAME, "challenger") == first
    assert tracking.get_version_tags(NAME, second)["gate.decision"] == "rejected"
    champion = tracking.load_model(NAME)
    assert champion.version == first
    assert champion.predict(pd.DataFrame({"f": [0.0]})).tolist() == [1.0]

    decision = tracking.promote(NAME, second, {"sharpe": 0.9}, {"sharpe": 0.4})
    assert decision.promote
    assert decision.previous_champion == first
    assert tracking.get_alias_version(NAME, "champion") == second
    assert tracking.load_model(NAME).predict(pd.DataFrame({"f": [0.0]})).tolist() == [2.0]
