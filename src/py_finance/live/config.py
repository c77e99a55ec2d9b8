"""Live loop settings (``conf/live/``)."""

from __future__ import annotations

from dataclasses import dataclass

from py_finance.errors import ConfigError

BROKERS = ("paper", "alpaca_paper", "alpaca_live")


@dataclass(frozen=True, slots=True)
class LiveConfig:
    """The daily loop and its broker.

    Parameters
    ----------
    broker
        ``paper`` (local simulator with SQLite state); Alpaca brokers come later.
    initial_cash
        Cash a new paper account starts with.
    commission_bps, slippage_bps
        Paper fills: price moved against the order by ``slippage_bps``; commission in bps of
        notional, paid from cash.
    min_order_notional
        Orders smaller than this (account currency) are not sent.
    log_dir
        Where ``daily_log_YYYY-MM-DD.json`` files go.
    state_path
        SQLite file of the paper broker.
    """

    broker: str = "paper"
    initial_cash: float = 100_000.0
    commission_bps: float = 0.0
    slippage_bps: float = 5.0
    min_order_notional: float = 1.0
    log_dir: str = "logs/live_trading"
    state_path: str = "data/live/paper_broker.sqlite"

    def __post_init__(self) -> None:
        if self.broker not in BROKERS:
            raise ConfigError(f"live.broker must be one of {BROKERS}, got {self.broker!r}")
        if self.initial_cash <= 0:
            raise ConfigError("live.initial_cash must be > 0")
        if self.commission_bps < 0 or self.slippage_bps < 0:
            raise ConfigError("live.commission_bps and live.slippage_bps must be >= 0")
