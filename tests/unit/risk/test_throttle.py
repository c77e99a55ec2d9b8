from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from py_finance.risk import RiskConfig, ThrottleState, throttle_multiplier, throttle_step


def _run(path: list[float], cfg: RiskConfig) -> list[ThrottleState]:
    states: list[ThrottleState] = []
    prev: ThrottleState | None = None
    for equity in path:
        prev = throttle_step(prev, equity, cfg)
        states.append(prev)
    return states


def _names(states: list[ThrottleState]) -> list[str]:
    return [s.state for s in states]


NO_RESET = RiskConfig(drawdown_throttle=0.15, recovery_drawdown=0.075, reset_after_sessions=None)


def test_enters_reducing_at_15_percent_drawdown() -> None:
    states = _run([100.0, 90.0, 85.01, 85.0], NO_RESET)
    assert _names(states) == ["ACTIVE", "ACTIVE", "ACTIVE", "REDUCING"]
    assert states[-1].peak == 100.0
    assert throttle_multiplier(states[-1], NO_RESET) == 0.5


def test_recovers_only_below_recovery_drawdown() -> None:
    states = _run([100.0, 84.0, 90.0, 92.0, 93.0], NO_RESET)
    # 10% and 8% drawdowns are below the trigger but not below 7.5%: still REDUCING.
    assert _names(states) == ["ACTIVE", "REDUCING", "REDUCING", "REDUCING", "ACTIVE"]
    assert [s.sessions_in_state for s in states] == [1, 1, 2, 3, 1]


def test_peak_is_the_high_water_mark() -> None:
    states = _run([100.0, 120.0, 110.0, 101.0], NO_RESET)
    assert [s.peak for s in states] == [100.0, 120.0, 120.0, 120.0]
    # 1 - 101/120 = 15.8%.
    assert _names(states)[-1] == "REDUCING"


def test_peak_resets_after_n_sessions_throttled() -> None:
    cfg = RiskConfig(drawdown_throttle=0.15, recovery_drawdown=0.075, reset_after_sessions=3)
    states = _run([100.0, 80.0, 80.0, 80.0, 80.0, 79.0], cfg)
    assert _names(states) == ["ACTIVE", "REDUCING", "REDUCING", "REDUCING", "ACTIVE", "ACTIVE"]
    assert states[4].peak == 80.0
    assert [throttle_multiplier(s, cfg) for s in states] == [1.0, 0.5, 0.5, 0.5, 1.0, 1.0]


def test_halted_beyond_halt_drawdown_and_stays_until_recovery() -> None:
    cfg = RiskConfig(
        drawdown_throttle=0.15,
        halt_drawdown=0.3,
        recovery_drawdown=0.075,
        reset_after_sessions=None,
    )
    states = _run([100.0, 84.0, 69.0, 80.0, 90.0, 95.0], cfg)
    assert _names(states) == ["ACTIVE", "REDUCING", "HALTED", "HALTED", "HALTED", "ACTIVE"]
    assert throttle_multiplier(states[2], cfg) == 0.0


def test_halted_resets_after_n_sessions_even_when_flat() -> None:
    cfg = RiskConfig(
        drawdown_throttle=0.15, halt_drawdown=0.3, recovery_drawdown=0.05, reset_after_sessions=2
    )
    # HALTED means all cash: equity stays flat, so only the reset can free the book.
    states = _run([100.0, 60.0, 60.0, 60.0], cfg)
    assert _names(states) == ["ACTIVE", "HALTED", "HALTED", "ACTIVE"]


def test_no_drawdown_throttle_means_always_active() -> None:
    cfg = RiskConfig(drawdown_throttle=None)
    states = _run([100.0, 10.0, 1.0], cfg)
    assert _names(states) == ["ACTIVE"] * 3
    assert all(throttle_multiplier(s, cfg) == 1.0 for s in states)


@settings(max_examples=200, deadline=None)
@given(
    steps=st.lists(st.floats(-0.2, 0.2), min_size=1, max_size=80),
    halt=st.one_of(st.none(), st.just(0.3)),
    reset=st.one_of(st.none(), st.integers(1, 10)),
)
def test_state_agrees_with_drawdown_from_its_peak(
    steps: list[float], halt: float | None, reset: int | None
) -> None:
    cfg = RiskConfig(
        drawdown_throttle=0.15,
        recovery_drawdown=0.075,
        halt_drawdown=halt,
        reset_after_sessions=reset,
    )
    equity = 100.0 * np.cumprod(1.0 + np.asarray(steps))
    prev: ThrottleState | None = None
    for e in equity:
        state = throttle_step(prev, float(e), cfg)
        dd = 1.0 - e / state.peak
        assert state.peak >= e - 1e-9
        if dd < cfg.recovery_drawdown:
            assert state.state == "ACTIVE"
        if dd >= cfg.drawdown_throttle:
            assert state.state != "ACTIVE"
        if halt is not None and dd >= halt:
            assert state.state == "HALTED"
        if reset is not None and state.state != "ACTIVE":
            assert state.sessions_in_state <= reset
        prev = state
