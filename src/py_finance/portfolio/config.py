"""Portfolio construction settings (``conf/portfolio/``)."""

from __future__ import annotations

from dataclasses import dataclass

from py_finance.errors import ConfigError

WEIGHTINGS = ("equal", "score", "inverse_vol", "uncertainty")


@dataclass(frozen=True, slots=True)
class PortfolioConfig:
    """Top-k long-only portfolio: the ``top_k`` best scores each session, cash is the rest.

    Parameters
    ----------
    top_k
        Number of names held. Each gets ``1 / top_k`` under equal weighting, so a session
        with fewer eligible names than ``top_k`` leaves the remainder in cash.
    weighting
        ``equal``; ``score`` (proportional to the score's rank among the selected);
        ``inverse_vol`` (proportional to 1 / trailing volatility of the name's returns over
        ``vol_lookback`` sessions); ``uncertainty`` (proportional to 1 / the standard
        deviation of the model's prediction, e.g. from MC dropout). The non-equal weightings
        spread ``min(1, n_selected / top_k)`` over the selected names.
    rebalance_every
        Sessions between rebalances (the shipped configs use the label horizon, so a
        position is held for the period its forecast is about). Between rebalances no
        orders are sent and positions drift with prices. ``1`` rebalances every session.
    n_drop
        TopkDropout (as Qlib's): at each rebalance at most ``n_drop`` held names are
        replaced, those ranking worst among the held names and the best ``n_drop +
        top_k - held`` candidates; ``None`` re-selects the top k freely.
    hold_buffer
        A held name stays selected while its rank is within ``top_k + hold_buffer``
        (ignored when ``n_drop`` is set); 0 switches the buffer off.
    vol_lookback
        Sessions of returns behind the ``inverse_vol`` weighting.
    """

    top_k: int = 10
    weighting: str = "equal"
    rebalance_every: int = 1
    n_drop: int | None = None
    hold_buffer: int = 0
    vol_lookback: int = 20

    def __post_init__(self) -> None:
        if self.top_k < 1:
            raise ConfigError(f"portfolio.top_k must be >= 1, got {self.top_k}")
        if self.rebalance_every < 1:
            raise ConfigError(f"portfolio.rebalance_every must be >= 1, got {self.rebalance_every}")
        if self.weighting not in WEIGHTINGS:
            raise ConfigError(
                f"portfolio.weighting must be one of {WEIGHTINGS}, got {self.weighting!r}"
            )
        if self.n_drop is not None and not 0 <= self.n_drop <= self.top_k:
            raise ConfigError(
                f"portfolio.n_drop must be null or in [0, top_k={self.top_k}], got {self.n_drop}"
            )
        if self.hold_buffer < 0:
            raise ConfigError(f"portfolio.hold_buffer must be >= 0, got {self.hold_buffer}")
        if self.vol_lookback < 2:
            raise ConfigError(f"portfolio.vol_lookback must be >= 2, got {self.vol_lookback}")

    @property
    def path_dependent(self) -> bool:
        """True when the selection depends on the previous rebalance's selection."""
        return self.n_drop is not None or self.hold_buffer > 0
