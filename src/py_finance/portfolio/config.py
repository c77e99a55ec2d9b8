"""Portfolio construction settings (``conf/portfolio/``)."""

from __future__ import annotations

from dataclasses import dataclass

from py_finance.errors import ConfigError

WEIGHTINGS = ("equal", "score")


@dataclass(frozen=True, slots=True)
class PortfolioConfig:
    """Top-k long-only portfolio: the ``top_k`` best scores each session, cash is the rest.

    Parameters
    ----------
    top_k
        Number of names held. Each gets ``1 / top_k`` under equal weighting, so a session
        with fewer eligible names than ``top_k`` leaves the remainder in cash.
    weighting
        ``equal`` or ``score`` (proportional to the score's rank among the selected).
    rebalance_every
        Sessions between rebalances (the shipped configs use the label horizon, so a
        position is held for the period its forecast is about). Between rebalances no
        orders are sent and positions drift with prices. ``1`` rebalances every session.
    """

    top_k: int = 10
    weighting: str = "equal"
    rebalance_every: int = 1

    def __post_init__(self) -> None:
        if self.top_k < 1:
            raise ConfigError(f"portfolio.top_k must be >= 1, got {self.top_k}")
        if self.rebalance_every < 1:
            raise ConfigError(f"portfolio.rebalance_every must be >= 1, got {self.rebalance_every}")
        if self.weighting not in WEIGHTINGS:
            raise ConfigError(
                f"portfolio.weighting must be one of {WEIGHTINGS}, got {self.weighting!r}"
            )
