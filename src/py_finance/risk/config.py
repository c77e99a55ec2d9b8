"""Risk overlay settings (``conf/risk/``, ``conf/regime_policy/``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from py_finance.errors import ConfigError

REGIMES = ("bull_low_vol", "bull_high_vol", "bear_low_vol", "bear_high_vol")


def _check_fraction(name: str, value: float | None) -> None:
    if value is not None and not 0.0 < value <= 1.0:
        raise ConfigError(f"risk.{name} must be in (0, 1] or null, got {value}")


@dataclass(frozen=True, slots=True)
class RiskConfig:
    """Caps and the drawdown throttle. ``None`` switches an overlay off.

    Parameters
    ----------
    max_position
        Largest weight of one name (fraction of equity); the excess is redistributed to
        names below the cap, and what cannot be placed stays in cash.
    max_sector
        Largest total weight of one GICS sector.
    drawdown_throttle
        Drawdown from the equity high-water mark (fraction) at which exposure is cut to
        ``throttle_exposure`` (state REDUCING).
    throttle_exposure
        Exposure multiplier while REDUCING.
    halt_drawdown
        Drawdown at which exposure goes to zero (state HALTED); ``None`` never halts.
    recovery_drawdown
        The throttle returns to ACTIVE once the drawdown is back below this level.
    reset_after_sessions
        After this many sessions REDUCING or HALTED the high-water mark is reset to the
        current equity (so a throttled book can recover); ``None`` never resets.
    """

    max_position: float | None = 0.20
    max_sector: float | None = 0.40
    drawdown_throttle: float | None = 0.15
    throttle_exposure: float = 0.5
    halt_drawdown: float | None = None
    recovery_drawdown: float = 0.075
    reset_after_sessions: int | None = 63

    def __post_init__(self) -> None:
        for name in ("max_position", "max_sector", "drawdown_throttle", "halt_drawdown"):
            _check_fraction(name, getattr(self, name))
        if not 0.0 <= self.throttle_exposure <= 1.0:
            raise ConfigError(
                f"risk.throttle_exposure must be in [0, 1], got {self.throttle_exposure}"
            )
        if self.drawdown_throttle is not None and not (
            0.0 <= self.recovery_drawdown < self.drawdown_throttle
        ):
            raise ConfigError(
                "risk.recovery_drawdown must be >= 0 and below risk.drawdown_throttle "
                f"({self.recovery_drawdown} vs {self.drawdown_throttle})"
            )
        if (
            self.halt_drawdown is not None
            and self.drawdown_throttle is not None
            and self.halt_drawdown <= self.drawdown_throttle
        ):
            raise ConfigError("risk.halt_drawdown must exceed risk.drawdown_throttle")


@dataclass(frozen=True, slots=True)
class RegimePolicyConfig:
    """Exposure multiplier per market regime (``unknown`` before the first regime fit)."""

    name: str = "fixed"
    exposure: dict[str, float] = field(
        default_factory=lambda: {
            "bull_low_vol": 1.0,
            "bull_high_vol": 0.4,
            "bear_low_vol": 0.7,
            "bear_high_vol": 0.25,
        }
    )
    unknown_exposure: float = 1.0

    def __post_init__(self) -> None:
        exposure = dict(self.exposure)
        missing = [r for r in REGIMES if r not in exposure]
        unknown = [r for r in exposure if r not in REGIMES]
        if missing or unknown:
            raise ConfigError(
                f"regime_policy.exposure needs exactly {REGIMES}; missing {missing}, "
                f"unknown {unknown}"
            )
        for regime, value in [*exposure.items(), ("unknown", self.unknown_exposure)]:
            if not 0.0 <= float(value) <= 1.0:
                raise ConfigError(f"regime_policy exposure for {regime} must be in [0, 1]")
        object.__setattr__(self, "exposure", {k: float(v) for k, v in exposure.items()})

    def multiplier(self, regime: str) -> float:
        """Exposure multiplier for ``regime`` (``unknown_exposure`` for anything else)."""
        return self.exposure.get(regime, self.unknown_exposure)
