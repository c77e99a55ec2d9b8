"""Live loop settings (``conf/live/``)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from py_finance.errors import ConfigError


def section_values(cls: type, mapping: Mapping[str, Any] | None, section: str) -> dict[str, Any]:
    """The keys of a config ``section`` for the dataclass ``cls`` (``_target_`` dropped).

    Raises
    ------
    ConfigError
        A key that ``cls`` has no field for, naming the section and the known keys.
    """
    values = {str(k): v for k, v in (mapping or {}).items() if k != "_target_"}
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"{section} has unknown keys {unknown}; known: {sorted(known)}")
    return values


BROKERS = ("paper", "alpaca_paper", "alpaca_live")


@dataclass(frozen=True, slots=True)
class AlpacaSettings:
    """How the Alpaca brokers reach Alpaca and how hard they try (``live.alpaca``).

    Parameters
    ----------
    base_url
        Trading API endpoint instead of Alpaca's (a staging endpoint, a proxy, a recorded
        fake). None: ``$APCA_API_BASE_URL`` when set, else Alpaca's paper or live endpoint.
    max_attempts
        Tries per request, and sends per order, on 429/5xx/no reply.
    retry_base_s, retry_max_s
        Exponential backoff between tries, ``retry_base_s * 2**(try - 1)`` capped at
        ``retry_max_s``; a longer ``Retry-After`` is waited for in full.
    breaker_failures
        Consecutive 429/5xx/no-reply answers after which the circuit breaker opens: nothing
        more is sent in this run, and what was not confirmed is resent by the next run.
    max_retry_after_s
        A ``Retry-After`` longer than this opens the breaker instead of being waited for.
    retry_budget_s
        All pauses between tries in one run (reads and sends together) add up to at most
        this; a try that needs more is not made and the breaker opens.
    """

    base_url: str | None = None
    max_attempts: int = 4
    retry_base_s: float = 0.5
    retry_max_s: float = 8.0
    breaker_failures: int = 5
    max_retry_after_s: float = 30.0
    retry_budget_s: float = 60.0

    def __post_init__(self) -> None:
        if self.base_url is not None and not isinstance(self.base_url, str):
            raise ConfigError(f"live.alpaca.base_url must be a URL, got {self.base_url!r}")
        for name in ("max_attempts", "breaker_failures"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"live.alpaca.{name} must be a whole number >= 1, got {value!r}")
        for name in ("retry_base_s", "retry_max_s", "max_retry_after_s", "retry_budget_s"):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not (math.isfinite(value) and value >= 0)
            ):
                raise ConfigError(f"live.alpaca.{name} must be a number >= 0, got {value!r}")

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any] | None) -> AlpacaSettings:
        """Build from ``live.alpaca``; missing keys keep their defaults.

        Raises
        ------
        ConfigError
            An unknown key or a bad value.
        """
        values = section_values(cls, mapping, "live.alpaca")
        if values.get("base_url") == "":
            values["base_url"] = None
        return cls(**values)


@dataclass(frozen=True, slots=True)
class LiveConfig:
    """The daily loop, its broker, alerts and readiness gates.

    Parameters
    ----------
    broker
        ``paper`` (local simulator with SQLite state), ``alpaca_paper`` or ``alpaca_live``.
    initial_cash
        Cash a new paper account starts with.
    commission_bps, slippage_bps
        Paper fills: price moved against the order by ``slippage_bps``; commission in bps of
        notional, paid from cash.
    paper_fill_at
        ``fill_model`` (an order decided after the close of t fills at the close, or the
        open, of the next session the loop runs, as ``backtest.fill`` says and the backtest
        trades) or ``close`` (fills when sent, at the decision session's close: optimistic,
        for tests and demonstrations).
    min_order_notional
        Orders smaller than this (account currency) are not sent.
    log_dir
        Where the paper broker's ``daily_log_YYYY-MM-DD.json`` files go; Alpaca brokers log
        to ``{log_dir}/{broker}/``.
    state_path
        SQLite file of the paper broker (its account and the order journal).
    state_dir
        Where an Alpaca broker's journal and equity marks go (``{state_dir}/{broker}.sqlite``).
    halt_file
        While this file exists the loop sends no orders (``run_live_loop.py --halt``).
    fill_timeout_s, poll_interval_s
        One time budget, in seconds, for the whole wait on Alpaca orders while the market is
        open (the sells' fills before the buys are sent, then every order's), and how often
        the loop asks. Orders sent while the market is closed are not waited for.
    request_timeout_s
        Timeout of every broker HTTP request.
    max_stale_sessions
        Sessions the store's last bar may lag the last closed session before the loop
        refuses to trade (0: the store must hold the last closed session).
    refresh_data
        Ingest from the configured source before trading (not on ``--as-of`` replays).
    policy_history_sessions
        Sessions of out-of-sample scores a history-dependent regime policy (``data_driven``)
        reads to measure the strategy's regime-conditional performance.
    confirm_live_env
        Environment variable that must be ``yes`` (or the ``--confirm-live`` flag given)
        before ``alpaca_live`` sends an order.
    lock_wait_s
        How long a run waits for the retrain job to end (the project's job lock) before
        refusing in one line.
    shadow
        Each day also trade the deployment's ``@challenger`` on a virtual book (nothing sent;
        :mod:`py_finance.live.shadow`).
    alerts
        Alert settings (``py_finance.live.alerts.AlertSettings`` fields); secrets come
        from the environment only.
    gates
        Readiness gates and the ramp-up schedule (``py_finance.live.readiness.LiveGates``).
    alpaca
        Endpoint, retries and circuit breaker of the Alpaca brokers (:class:`AlpacaSettings`
        fields).
    monitor
        Thresholds and windows of the live monitor
        (:class:`py_finance.live.monitor.MonitorSettings` fields).
    """

    broker: str = "paper"
    initial_cash: float = 100_000.0
    commission_bps: float = 0.0
    slippage_bps: float = 5.0
    paper_fill_at: str = "fill_model"
    min_order_notional: float = 1.0
    log_dir: str = "logs/live_trading"
    state_path: str = "data/live/paper_broker.sqlite"
    state_dir: str = "data/live"
    halt_file: str = "logs/live_trading/HALT"
    fill_timeout_s: float = 60.0
    poll_interval_s: float = 2.0
    request_timeout_s: float = 10.0
    max_stale_sessions: int = 0
    refresh_data: bool = True
    policy_history_sessions: int = 756
    confirm_live_env: str = "PY_FINANCE_CONFIRM_LIVE"
    shadow: bool = True
    lock_wait_s: float = 1800.0
    alerts: dict[str, Any] = field(default_factory=dict)
    gates: dict[str, Any] = field(default_factory=dict)
    alpaca: dict[str, Any] = field(default_factory=dict)
    monitor: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.alpaca_settings()  # a bad live.alpaca fails when the config is built
        from py_finance.live.monitor import MonitorSettings

        MonitorSettings.from_mapping(self.monitor)  # and a bad live.monitor
        if self.broker not in BROKERS:
            raise ConfigError(f"live.broker must be one of {BROKERS}, got {self.broker!r}")
        if self.initial_cash <= 0:
            raise ConfigError("live.initial_cash must be > 0")
        if self.paper_fill_at not in ("fill_model", "close"):
            raise ConfigError(
                "live.paper_fill_at must be 'fill_model' (the paper broker fills as "
                "backtest.fill says: next_close or next_open) or 'close', got "
                f"{self.paper_fill_at!r}"
            )
        if self.commission_bps < 0 or self.slippage_bps < 0:
            raise ConfigError("live.commission_bps and live.slippage_bps must be >= 0")
        if self.fill_timeout_s < 0 or self.poll_interval_s <= 0 or self.request_timeout_s <= 0:
            raise ConfigError(
                "live.fill_timeout_s must be >= 0, poll_interval_s and request_timeout_s > 0"
            )
        if self.max_stale_sessions < 0 or self.policy_history_sessions < 0:
            raise ConfigError("live.max_stale_sessions and policy_history_sessions must be >= 0")

    def alpaca_settings(self) -> AlpacaSettings:
        """The typed ``live.alpaca`` node."""
        return AlpacaSettings.from_mapping(self.alpaca)

    def log_dir_for(self, broker: str) -> str:
        """Daily-log directory of ``broker`` (the paper track is ``log_dir`` itself)."""
        return self.log_dir if broker == "paper" else f"{self.log_dir}/{broker}"
