"""Risk overlays and their settings."""

from py_finance.risk.config import REGIMES, RegimePolicyConfig, RiskConfig
from py_finance.risk.overlays import (
    ACTIVE,
    HALTED,
    REDUCING,
    THROTTLE_STATES,
    ThrottleState,
    apply_overlays,
    apply_regime_exposure,
    apply_static_overlays,
    cap_positions,
    cap_sectors,
    drawdown_from_peak,
    throttle_multiplier,
    throttle_step,
)

__all__ = [
    "ACTIVE",
    "HALTED",
    "REDUCING",
    "REGIMES",
    "THROTTLE_STATES",
    "RegimePolicyConfig",
    "RiskConfig",
    "ThrottleState",
    "apply_overlays",
    "apply_regime_exposure",
    "apply_static_overlays",
    "cap_positions",
    "cap_sectors",
    "drawdown_from_peak",
    "throttle_multiplier",
    "throttle_step",
]
