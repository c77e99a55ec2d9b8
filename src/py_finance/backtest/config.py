"""Backtest settings (``conf/backtest/``)."""

from __future__ import annotations

from dataclasses import dataclass

from py_finance.errors import ConfigError

# When an order decided after the close of t fills: at the close or at the open of t + lag.
FILLS = ("next_close", "next_open")


@dataclass(frozen=True, slots=True)
class BacktestConfig:
    """Execution and cost model of the backtest.

    Parameters
    ----------
    execution_lag
        Sessions between the decision (close of t) and the fill (session t + lag). >= 1.
    fill
        The fill model, one for the backtest, the paper broker and the broker's order type:
        ``next_close`` (the close of t + lag; Alpaca market-on-close, ``cls``) or
        ``next_open`` (the open of t + lag; Alpaca market-on-open, ``opg``), which needs
        open prices in the store.
    cost_bps
        Commission plus slippage, in basis points of traded notional, paid from cash.
    initial_cash
        Starting cash (account currency).
    periods_per_year
        Sessions per year used to annualise metrics.
    """

    execution_lag: int = 1
    fill: str = "next_close"
    cost_bps: float = 10.0
    initial_cash: float = 1_000_000.0
    periods_per_year: int = 252

    def __post_init__(self) -> None:
        if self.execution_lag < 1:
            raise ConfigError(
                "backtest.execution_lag must be >= 1 for close-only data "
                f"(a decision at the close cannot fill at that close), got {self.execution_lag}"
            )
        if self.fill not in FILLS:
            raise ConfigError(f"backtest.fill must be one of {', '.join(FILLS)}, got {self.fill!r}")
        if self.cost_bps < 0:
            raise ConfigError(f"backtest.cost_bps must be >= 0, got {self.cost_bps}")
        if self.initial_cash <= 0:
            raise ConfigError(f"backtest.initial_cash must be > 0, got {self.initial_cash}")
