"""The drawdown throttle's state machine as one plain function of scalars.

Written in the subset of Python that numba compiles, so the same source runs in the live
loop (plain Python, through :func:`py_finance.risk.overlays.throttle_step`) and inside the
backtest's compiled session loop (``py_finance.backtest._kernel``). Nothing here imports
numba.
"""

from __future__ import annotations

import math

# Integer codes of the states (index into ``THROTTLE_STATES``).
ACTIVE_CODE = 0
REDUCING_CODE = 1
HALTED_CODE = 2


def throttle_update(
    has_prev: bool,
    peak: float,
    state: int,
    sessions: int,
    equity: float,
    drawdown_throttle: float,
    halt_drawdown: float,
    recovery_drawdown: float,
    reset_after_sessions: int,
) -> tuple[float, int, int]:
    """Advance the throttle by one session (see :func:`~py_finance.risk.throttle_step`).

    Parameters
    ----------
    has_prev
        False on the first session (the peak starts at ``equity``).
    peak, state, sessions
        Previous high-water mark, state code and sessions spent in that state.
    equity
        Equity at this session's close (>= 0).
    drawdown_throttle, halt_drawdown
        Thresholds as fractions; NaN switches them off.
    recovery_drawdown
        Drawdown below which a throttled book is ACTIVE again.
    reset_after_sessions
        Sessions throttled before the high-water mark is reset; < 0 never resets.

    Returns
    -------
    tuple[float, int, int]
        New ``(peak, state, sessions)``.
    """
    if not has_prev:
        peak = equity
        prev_state = ACTIVE_CODE
        prev_n = 0
    else:
        peak = max(peak, equity)
        prev_state = state
        prev_n = sessions
    new_state = ACTIVE_CODE
    if not math.isnan(drawdown_throttle):
        if (
            prev_state != ACTIVE_CODE
            and reset_after_sessions >= 0
            and prev_n >= reset_after_sessions
        ):
            peak = equity
        if peak <= 0.0:
            dd = 0.0 if equity >= peak else 1.0
        else:
            dd = max(0.0, 1.0 - equity / peak)
        if not math.isnan(halt_drawdown) and dd >= halt_drawdown:
            new_state = HALTED_CODE
        elif dd >= drawdown_throttle:
            new_state = HALTED_CODE if prev_state == HALTED_CODE else REDUCING_CODE
        elif prev_state != ACTIVE_CODE and dd >= recovery_drawdown:
            new_state = prev_state
        else:
            new_state = ACTIVE_CODE
    n = prev_n + 1 if (has_prev and new_state == prev_state) else 1
    return peak, new_state, n
