"""Risk overlay settings (``conf/risk/``, ``conf/regime_policy/``)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from py_finance.errors import ConfigError

REGIMES = ("bull_low_vol", "bull_high_vol", "bear_low_vol", "bear_high_vol")
# Static overlays, in the order they may be configured (``risk.order``). The drawdown
# throttle is not listed: it depends on the equity path, runs inside the engine (or the live
# loop) after all of these, and only scales a row down, so it never breaks a cap.
OVERLAYS = ("position_cap", "sector_cap", "vol_target", "regime_exposure", "sector_tilt")


def _seed_groups() -> dict[str, list[str]]:
    return {
        "growth": ["Information Technology", "Communication Services", "Consumer Discretionary"],
        "defensive": ["Consumer Staples", "Health Care", "Utilities"],
        "cyclical": ["Financials", "Industrials", "Energy", "Materials", "Real Estate"],
    }


def _seed_tilts() -> dict[str, dict[str, float]]:
    return {
        "bull_low_vol": {"growth": 1.3, "defensive": 0.8, "cyclical": 1.0},  # Growth/Tech
        "bull_high_vol": {"growth": 1.0, "defensive": 1.0, "cyclical": 1.0},  # Balanced
        "bear_low_vol": {"growth": 0.8, "defensive": 1.3, "cyclical": 0.9},  # Defensive
        "bear_high_vol": {"growth": 0.5, "defensive": 1.5, "cyclical": 0.7},  # Max Defensive
    }


@dataclass(frozen=True, slots=True)
class SectorTiltConfig:
    """Regime sector tilts: GICS sectors map to groups, each regime scales each group.

    Parameters
    ----------
    groups
        Group name -> GICS sectors in it. Sectors in no group belong to ``other``.
    tilts
        Regime -> group -> multiplier (> 0). Missing groups (and ``other``) get 1.0; a
        regime not listed (e.g. ``unknown``) is not tilted.
    """

    groups: dict[str, list[str]] = field(default_factory=_seed_groups)
    tilts: dict[str, dict[str, float]] = field(default_factory=_seed_tilts)

    def __post_init__(self) -> None:
        seen: dict[str, str] = {}
        for group, sectors in self.groups.items():
            for sector in sectors:
                if sector in seen:
                    raise ConfigError(
                        f"risk.sector_tilts: sector {sector!r} is in groups {seen[sector]!r} "
                        f"and {group!r}; put it in one"
                    )
                seen[sector] = group
        for regime, per_group in self.tilts.items():
            if regime not in REGIMES:
                raise ConfigError(f"risk.sector_tilts.tilts: unknown regime {regime!r}")
            for group, value in per_group.items():
                if group not in self.groups and group != "other":
                    raise ConfigError(f"risk.sector_tilts.tilts.{regime}: unknown group {group!r}")
                if not float(value) > 0.0:
                    raise ConfigError(f"risk.sector_tilts.tilts.{regime}.{group} must be > 0")

    def multipliers(self, sectors: Sequence[str], regime: str) -> np.ndarray:
        """Tilt multiplier of each name (by its sector) in ``regime``."""
        group_of = {s: g for g, members in self.groups.items() for s in members}
        per_group = self.tilts.get(regime, {})
        return np.array(
            [float(per_group.get(group_of.get(str(s), "other"), 1.0)) for s in sectors],
            dtype=np.float64,
        )


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
    vol_target
        Annualised volatility the book is scaled to (e.g. 0.15), estimated ex ante from the
        held weights and the names' returns over ``vol_lookback`` sessions up to t;
        ``None`` switches it off.
    vol_lookback
        Sessions of returns behind the volatility estimate.
    max_leverage
        The gross limit: the largest total a row of target weights may have before the
        overlays (and in the engine). A row above it, like an infinite or negative weight,
        is a :class:`~py_finance.errors.DataError` naming the session and symbol. 1.0 (the
        default) is a fully invested book; more is leverage and only ever an explicit
        setting (the backtest's cash account still never borrows: buys beyond the cash are
        filled in order until it runs out). Also the largest scale vol targeting may apply;
        no scale ever lifts a row above a total of 1 or a name/sector above its cap.
    sector_tilts
        Regime sector tilts (:class:`SectorTiltConfig`), or ``None``.
    order
        Order of the static overlays (names from ``OVERLAYS``); each runs only when its
        setting is on (``regime_exposure`` needs a regime policy).
    """

    max_position: float | None = 0.20
    max_sector: float | None = 0.40
    drawdown_throttle: float | None = 0.15
    throttle_exposure: float = 0.5
    halt_drawdown: float | None = None
    recovery_drawdown: float = 0.075
    reset_after_sessions: int | None = 63
    vol_target: float | None = None
    vol_lookback: int = 63
    max_leverage: float = 1.0
    sector_tilts: SectorTiltConfig | None = None
    order: tuple[str, ...] = OVERLAYS

    def __post_init__(self) -> None:
        if isinstance(self.sector_tilts, dict):
            object.__setattr__(self, "sector_tilts", SectorTiltConfig(**self.sector_tilts))
        order = tuple(str(x) for x in self.order)
        object.__setattr__(self, "order", order)
        unknown = [x for x in order if x not in OVERLAYS]
        if unknown or len(set(order)) != len(order):
            raise ConfigError(
                f"risk.order must list distinct overlays from {OVERLAYS}, got {list(order)}"
            )
        if self.vol_target is not None and not self.vol_target > 0.0:
            raise ConfigError(f"risk.vol_target must be > 0 or null, got {self.vol_target}")
        if self.vol_lookback < 2:
            raise ConfigError(f"risk.vol_lookback must be >= 2, got {self.vol_lookback}")
        if not self.max_leverage >= 1.0:
            raise ConfigError(f"risk.max_leverage must be >= 1, got {self.max_leverage}")
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

    @property
    def needs_history(self) -> bool:
        """False: the multipliers are fixed."""
        return False

    def row_multipliers(
        self, regimes: Sequence[str], strategy_returns: np.ndarray | None = None
    ) -> np.ndarray:
        """Multiplier of each row from its regime (``strategy_returns`` is not used)."""
        cache: dict[str, float] = {}
        return np.array(
            [cache.setdefault(r, self.multiplier(r)) for r in map(str, regimes)],
            dtype=np.float64,
        )


@dataclass(frozen=True, slots=True)
class DataDrivenRegimePolicy:
    """Regime multipliers estimated from the strategy's own past regime-conditional Sharpe.

    For the decision at the close of session t, each regime's multiplier comes from the
    strategy returns realised strictly before t, each attributed to the regime known when
    its position was taken: ``raw = clip(SR_regime / target_sharpe, 0, 1)`` (annualised
    Sharpe), shrunk toward 1 with weight ``n / (n + prior_sessions)``, and 1 until
    ``min_sessions`` returns of that regime exist. Always in [0, 1].

    Parameters
    ----------
    name
        Policy name (logged as the ``regime_policy`` tag).
    target_sharpe
        Regime Sharpe at or above which a regime gets full exposure.
    prior_sessions
        Strength of the shrinkage toward 1, in sessions of evidence.
    min_sessions
        Returns needed in a regime before it is scaled at all.
    unknown_exposure
        Multiplier of rows whose regime is unknown.
    periods_per_year
        Annualisation of the Sharpe ratio.
    """

    name: str = "data_driven"
    target_sharpe: float = 0.5
    prior_sessions: int = 252
    min_sessions: int = 63
    unknown_exposure: float = 1.0
    periods_per_year: int = 252

    def __post_init__(self) -> None:
        if not self.target_sharpe > 0.0:
            raise ConfigError("regime_policy.target_sharpe must be > 0")
        if self.prior_sessions < 0 or self.min_sessions < 2:
            raise ConfigError("regime_policy.prior_sessions >= 0 and min_sessions >= 2 required")
        if not 0.0 <= self.unknown_exposure <= 1.0:
            raise ConfigError("regime_policy.unknown_exposure must be in [0, 1]")

    @property
    def needs_history(self) -> bool:
        """True: the multipliers need the strategy's past returns."""
        return True

    def multiplier(self, regime: str) -> float:
        """Not defined without history: use :meth:`row_multipliers`."""
        raise ConfigError(
            "the data_driven regime policy needs the strategy's return history; "
            "use row_multipliers (backtest) or choose regime_policy=fixed"
        )

    def row_multipliers(
        self, regimes: Sequence[str], strategy_returns: np.ndarray | None = None
    ) -> np.ndarray:
        """Multiplier of each row, from ``strategy_returns`` strictly before that row.

        Parameters
        ----------
        regimes
            Regime known at the close of each row's session.
        strategy_returns
            ``strategy_returns[t]``: the strategy's return from the close of t-1 to the close
            of t (NaN if none), so it belongs to ``regimes[t - 1]``.
        """
        if strategy_returns is None:
            raise ConfigError("the data_driven regime policy needs strategy returns")
        regs = [str(r) for r in regimes]
        r = np.asarray(strategy_returns, dtype=np.float64)
        n = len(regs)
        if r.shape != (n,):
            raise ValueError(f"strategy_returns must have one value per row ({n})")
        out = np.empty(n, dtype=np.float64)
        count = dict.fromkeys(REGIMES, 0)
        total = dict.fromkeys(REGIMES, 0.0)
        total_sq = dict.fromkeys(REGIMES, 0.0)
        ann = math.sqrt(self.periods_per_year)
        for t in range(n):
            # Returns realised strictly before session t: r[s] for s <= t - 1, each in the
            # regime of s - 1. Add r[t - 1] now (known before t).
            s = t - 1
            if s >= 1 and regs[s - 1] in count and not math.isnan(r[s]):
                g = regs[s - 1]
                count[g] += 1
                total[g] += r[s]
                total_sq[g] += r[s] * r[s]
            g = regs[t]
            if g not in count:
                out[t] = self.unknown_exposure
                continue
            k = count[g]
            if k < self.min_sessions:
                out[t] = 1.0
                continue
            mean = total[g] / k
            var = max(total_sq[g] / k - mean * mean, 0.0) * k / (k - 1)
            sr = mean / math.sqrt(var) * ann if var > 0.0 else (math.inf if mean > 0 else 0.0)
            raw = min(max(sr / self.target_sharpe, 0.0), 1.0)
            weight = k / (k + self.prior_sessions)
            out[t] = min(max(1.0 + weight * (raw - 1.0), 0.0), 1.0)
        return out

    def as_dict(self) -> dict[str, Any]:
        """Settings as a plain dict (for logs)."""
        return {
            "name": self.name,
            "target_sharpe": self.target_sharpe,
            "prior_sessions": self.prior_sessions,
            "min_sessions": self.min_sessions,
        }


RegimePolicy = RegimePolicyConfig | DataDrivenRegimePolicy
