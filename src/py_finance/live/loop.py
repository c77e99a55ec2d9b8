"""The daily live loop: champion model -> target weights -> orders -> broker -> daily log.

Run after the close of a session. Everything that shapes the weights is the backtest's own
code (``py_finance.risk.targets.target_weights`` and the drawdown throttle), so what trades
is what was backtested. Knowledge time is explicit: ``as_of`` (default: now, UTC) bounds
every read of the store.

Steps, in order (each named in the daily log's ``timings``):

1. session: the latest session closed at ``as_of`` from the exchange calendar (early closes,
   holidays and daylight-saving changes included); a halted loop (``--halt``) stops here;
   ``--skip-if-logged`` stops here when the session has a good log.
2. data: refresh from the configured source (live runs), then check freshness: a store that
   lags the last closed session means no trading, an error log and a ``stale_data`` alert.
3. model: ``models:/py-finance-<universe>-h{h}@champion`` (its version goes into the log),
   refused when its recorded trading settings or universe differ from the local ones.
4. broker: open it; ``alpaca_live`` only after the readiness gates pass on the paper track
   and the account is confirmed, and only with the ramp-up share of the capital.
5. reconcile: journal and last log against the broker (see :mod:`py_finance.live.reconcile`).
6. targets: features, predictions, regimes, portfolio and overlays, drawdown throttle (on
   the equity marks and today's equity, so it acts the session it trips).
7. orders: one net order per symbol, sells first; the plan is journaled before anything is
   sent, and a session whose plan is journaled is never planned again. Between rebalances
   nothing is traded unless the throttle's multiplier changed: then the holdings are
   resized by new / old multiplier (HALTED sells everything).
8. submit and wait for fills within one budget (:mod:`py_finance.live.execution`), mark
   equity, append the run to the day's log, send alerts. Orders the broker did not confirm
   make the run ``degraded``: the next run of the session resends those it never got.

``run_live_day`` runs steps 1-4 and ``_trade`` the rest, one function per step (reconcile,
settle, size the book, rebalance, plan, send and wait, mark, record, monitor, log); the
day's state goes from step to step in a small dataclass (``_Day``).
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import os
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from py_finance import tracking
from py_finance.errors import DataError, PyFinanceError
from py_finance.features.regimes import detect_regimes
from py_finance.live.alerts import (
    Alert,
    Alerter,
    AlertSettings,
    Redactor,
    alerter_from_env,
    install_redaction,
    secrets_from_env,
)
from py_finance.live.brokers.base import Account, Broker, Fill, MarketClock
from py_finance.live.brokers.paper import Delisting
from py_finance.live.champion import ChampionMismatch, check_champion
from py_finance.live.daily_log import (
    SCHEMA_VERSION,
    append_run,
    daily_log_path,
    day_with_run,
    logged_sessions,
    read_daily_log,
)
from py_finance.live.execution import Execution, execute, session_opens
from py_finance.live.faults import checkpoint
from py_finance.live.journal import record_intents, session_intents
from py_finance.live.orders import OrderIntent, plan_orders, resized_weights
from py_finance.live.readiness import (
    LiveGates,
    ReadinessReport,
    evaluate_readiness,
    load_logs,
    load_track,
    ramp_fraction,
)
from py_finance.live.reconcile import Reconciliation, reconcile
from py_finance.live.redaction import redact_exception
from py_finance.live.scoring import score_session
from py_finance.live.session import SessionInfo, resolve_session
from py_finance.pipeline.context import Context
from py_finance.risk.overlays import ThrottleState, throttle_multiplier, throttle_step
from py_finance.risk.targets import target_weights

log = logging.getLogger(__name__)

BrokerFactory = Callable[[str, Context], Broker]


class LiveRefusal(PyFinanceError):
    """The loop refused to trade (live gates, confirmation, halt); nothing was sent."""


@dataclass(frozen=True, slots=True)
class LiveDayResult:
    """What one run of the loop did.

    ``status``: ``ok``, ``degraded`` (orders the broker did not confirm: rerun the session),
    ``skipped`` (already logged), ``closed`` (market closed today and the last session
    already logged), ``halted``, ``stale`` (no trading on stale data) or ``error``.
    """

    session: dt.date
    skipped: bool
    log_path: Any
    payload: dict[str, Any]
    status: str = "ok"


class _Timer:
    def __init__(self) -> None:
        self.timings: dict[str, float] = {}

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = round(self.timings.get(name, 0.0) + time.perf_counter() - start, 4)


def _throttle_state(
    marks: pd.Series, session: dt.date, equity: float, ctx: Context
) -> ThrottleState | None:
    """The throttle after the close of ``session``: earlier marks, then today's equity.

    Today's equity (before today's orders, which fill later) is the equity the backtest
    steps the throttle with at this close, so a drawdown acts the session it happens.
    """
    state: ThrottleState | None = None
    earlier = marks[marks.index < pd.Timestamp(session)].to_numpy(dtype="float64")
    values = [float(v) for v in earlier]
    if math.isfinite(equity) and equity >= 0:
        values.append(float(equity))
    else:
        log.warning("equity %s is not a number: the throttle reads the marks only", equity)
    for value in values:
        state = throttle_step(state, value, ctx.settings.risk)
    return state


def _good_log(entry: Mapping[str, Any]) -> bool:
    """A non dry-run log whose latest run traded (or held) and the broker confirmed all."""
    return not entry.get("dry_run") and entry.get("status", "ok") == "ok"


def _traded_log(entry: Mapping[str, Any]) -> bool:
    """A non dry-run log of a session that planned and sent (some orders may be unconfirmed)."""
    return not entry.get("dry_run") and entry.get("status", "ok") in ("ok", "degraded")


def last_rebalance(log_dir: Any, before: dt.date) -> dt.date | None:
    """Latest session before ``before`` whose (non dry-run) log rebalanced the book."""
    for session in sorted(logged_sessions(log_dir), reverse=True):
        if session >= before:
            continue
        entry = read_daily_log(log_dir, session)
        if _traded_log(entry) and entry.get("rebalance", {}).get("due"):
            return session
    return None


def last_log(log_dir: Any, before: dt.date) -> dict[str, Any] | None:
    """Latest log of a session before ``before`` that traded (non dry-run, no failure)."""
    for session in sorted(logged_sessions(log_dir), reverse=True):
        if session < before:
            entry = read_daily_log(log_dir, session)
            if _traded_log(entry):
                return entry
    return None


def halt_path(ctx: Context) -> Path:
    """The file whose presence stops all trading (``run_live_loop.py --halt``)."""
    return ctx.root / ctx.settings.live.halt_file


def journal_path(ctx: Context, broker: str) -> Path:
    """SQLite file of the order journal of ``broker``."""
    live = ctx.settings.live
    if broker == "paper":
        return ctx.root / live.state_path
    return ctx.root / live.state_dir / f"{broker}.sqlite"


def open_broker(name: str, ctx: Context) -> Broker:
    """Open the broker ``name`` (``paper``, ``alpaca_paper``, ``alpaca_live``) from config."""
    live = ctx.settings.live
    if name == "paper":
        from py_finance.live.brokers.paper import PaperBroker

        return PaperBroker.from_settings(
            ctx.root / live.state_path, live, ctx.settings.backtest.fill
        )
    if name in ("alpaca_paper", "alpaca_live"):
        from py_finance.live.brokers.alpaca import AlpacaBroker

        alpaca = live.alpaca_settings()
        return AlpacaBroker.from_env(
            paper=name == "alpaca_paper",
            state_path=journal_path(ctx, name),
            base_url=alpaca.base_url,
            request_timeout_s=live.request_timeout_s,
            # A submit does not wait: the loop spends one budget (live.fill_timeout_s) on
            # the sells' fills before the buys and on every order's after them.
            fill_timeout_s=0.0,
            poll_interval_s=live.poll_interval_s,
            max_attempts=alpaca.max_attempts,
            retry_base_s=alpaca.retry_base_s,
            retry_max_s=alpaca.retry_max_s,
            breaker_failures=alpaca.breaker_failures,
            max_retry_after_s=alpaca.max_retry_after_s,
            retry_budget_s=alpaca.retry_budget_s,
            fill=ctx.settings.backtest.fill,  # market-on-open / market-on-close orders
        )
    raise PyFinanceError(f"unknown broker {name!r}; use paper, alpaca_paper or alpaca_live")


def live_gates(ctx: Context) -> LiveGates:
    """The readiness gates of ``conf/live`` (defaults where the config has none)."""
    gates = ctx.settings.live.gates
    return LiveGates.from_mapping(dict(gates)) if gates else LiveGates()


def _alerter(ctx: Context, enabled: bool, env: Mapping[str, str]) -> Alerter:
    cfg = dict(ctx.settings.live.alerts or {})
    cfg["enabled"] = bool(enabled or cfg.get("enabled", False))
    return alerter_from_env(env, AlertSettings(**cfg))


def _live_permission(
    ctx: Context, env: Mapping[str, str], confirm_live: bool, track: str = "all"
) -> tuple[float, dict[str, Any]]:
    """Refuse ``alpaca_live`` unless the gates pass and the account is confirmed.

    The gates read the paper ``track`` (:data:`~py_finance.live.readiness.TRACKS`: the paper
    broker's logs and the Alpaca paper broker's, or one of them). Returns the ramp-up
    fraction of capital live trading may use and the evidence.
    """
    live = ctx.settings.live
    gates = live_gates(ctx)
    try:
        logs = load_track(ctx.root / live.log_dir, track, missing_ok=True)
    except PyFinanceError as exc:  # an unknown track, a corrupt log
        raise LiveRefusal(f"--broker alpaca_live refused: {exc}") from None
    report = evaluate_readiness(logs.logs, gates, brokers=logs.brokers)
    if not report.passed:
        failed = [g.name for g in report.gates if not g.passed]
        raise LiveRefusal(
            f"--broker alpaca_live refused: readiness gates fail on the paper track "
            f"({', '.join(failed)}; read {logs.describe()}); see "
            f"`python scripts/check_live_readiness.py --track {track} --verbose`"
        )
    if not (confirm_live or env.get(live.confirm_live_env, "").strip().lower() == "yes"):
        raise LiveRefusal(
            "--broker alpaca_live trades real money: confirm the live account with "
            f"--confirm-live or {live.confirm_live_env}=yes"
        )
    live_dir = ctx.root / live.log_dir_for("alpaca_live")
    ramp = ramp_fraction(_logs(live_dir), gates)
    ramp_doc = {
        "fraction": ramp.fraction,
        "step": ramp.step,
        "clean_days": ramp.clean_days,
        "next_step_at": ramp.next_step_at,
    }
    return float(ramp.fraction), {"readiness": report.to_dict(), "ramp": ramp_doc}


def _logs(log_dir: Path) -> list[dict[str, Any]]:
    return load_logs(log_dir) if log_dir.is_dir() else []


def _stale_sessions(ctx: Context, last_bar: dt.date, session: dt.date) -> int:
    from py_finance.data.calendar import sessions

    if last_bar >= session:
        return 0
    return len(sessions(last_bar, session, ctx.settings.data.calendar)) - 1


def _targets(
    ctx: Context,
    model: Any,
    history: pd.DataFrame,
    session: dt.date,
    as_of: pd.Timestamp,
    held: list[str],
    sectors: pd.Series,
) -> tuple[pd.Series, pd.Series, pd.Series, str]:
    """Scores, target weights (before throttle and ramp), regimes and today's regime."""
    s = ctx.settings
    today = pd.Timestamp(session)
    # The model's inputs read from the store as of ``as_of`` (a sequence model's window of
    # sessions), its scores and their MC-dropout std (:mod:`py_finance.live.scoring`).
    scored = score_session(ctx, model, history, session, as_of)
    scores = scored.scores

    # Only the universe's members as known now can be bought, and not a name whose exit is
    # known by now to come by the fill (as in the backtest).
    from py_finance.data.store import membership_mask, tradable_mask

    spells = ctx.store.membership(as_of)
    members = membership_mask(spells, scores.index, scores.columns)
    if members.to_numpy().any():
        lag = s.backtest.execution_lag
        scores = scores.where(
            tradable_mask(spells, scores.index, scores.columns, lag, s.data.calendar)
        )
    index = ctx.store.wide("adj_close", None, None, None, as_of, table="benchmark").iloc[:, 0]
    regimes = detect_regimes(index.loc[:today], s.regimes)["regime"]
    weights = target_weights(
        scores,
        portfolio=s.portfolio,
        risk=s.risk,
        sectors=sectors,
        regimes=regimes,
        policy=s.regime_policy,
        returns=history.pct_change(fill_method=None),
        uncertainty=scored.std,
        previous=held,
        periods_per_year=s.backtest.periods_per_year,
    ).iloc[-1]
    today_scores = scores.loc[today]
    assert isinstance(today_scores, pd.Series)
    return today_scores, weights, regimes, str(regimes.iloc[-1])


def _refresh(ctx: Context) -> dict[str, Any]:
    from py_finance.pipeline import research

    try:
        report = research.ingest(ctx)
        return {"refreshed": True, "summary": str(report.get("summary", ""))[:500]}
    except PyFinanceError as exc:
        log.warning("data refresh failed: %s", exc)
        return {"refreshed": False, "error": str(exc)}


@dataclass(slots=True)
class _Day:
    """One run of the loop, handed from step to step: who trades what session, and its log.

    ``payload`` is the daily log being built: each step adds its part.
    """

    ctx: Context
    broker_name: str
    info: SessionInfo
    as_of: pd.Timestamp
    dry_run: bool
    log_dir: Path
    payload: dict[str, Any]
    previous: dict[str, Any] | None
    timer: _Timer
    alerter: Alerter
    redact: Redactor

    @property
    def session(self) -> dt.date:
        return self.info.session

    def fail(self, status: str, message: str, kind: str, detail: str = "") -> LiveDayResult:
        """Log the run as failed with ``status`` (not in a dry run) and alert ``kind``."""
        payload, session = self.payload, self.session
        payload["status"] = status
        payload["errors"].append(message)
        payload["generated_at"] = pd.Timestamp.now(tz="UTC")
        payload["timings"] = self.timer.timings
        written = None
        if not self.dry_run:
            written = append_run(self.log_dir, session, payload, redact=self.redact)
        body = f"{message}\n{detail}" if detail else message
        self.alerter.send(Alert(kind, f"{session}: {status}", body, "critical", session))
        return LiveDayResult(session, False, written, payload, status)


@dataclass(slots=True)
class _Book:
    """The start-of-day book at the session's closes and the model's weights for it."""

    account: Account
    prices: pd.Series
    price_map: dict[str, float]
    marks: pd.Series
    equity: float
    throttle: ThrottleState | None
    multiplier: float
    sectors: pd.Series
    scores: pd.Series
    weights: pd.Series
    regime: str

    @property
    def positions(self) -> dict[str, float]:
        return self.account.positions


@dataclass(slots=True)
class _Plan:
    """What the session trades toward, and the orders (``kind``: new, resize, resumed, none)."""

    targets: dict[str, float]
    rebalance: dict[str, Any]
    due: bool
    resize: bool
    kind: str = "none"
    intents: list[OrderIntent] = field(default_factory=list)


def run_live_day(
    ctx: Context,
    *,
    dry_run: bool,
    as_of: pd.Timestamp | None = None,
    skip_if_logged: bool = False,
    broker: str | None = None,
    enable_alerts: bool = False,
    confirm_live: bool = False,
    env: Mapping[str, str] | None = None,
    broker_factory: BrokerFactory | None = None,
    alerter: Alerter | None = None,
    readiness_track: str = "all",
    override: bool = False,
) -> LiveDayResult:
    """Trade (or, with ``dry_run``, plan) the latest session closed at ``as_of``.

    Parameters
    ----------
    ctx
        Composed settings and project root.
    dry_run
        Plan and log, send nothing, change no state.
    as_of
        Knowledge time (tz-aware); None: now. A past time replays that session.
    skip_if_logged
        Do nothing when the session already has a good (non dry-run) log.
    broker
        ``paper``, ``alpaca_paper`` or ``alpaca_live`` (default: ``live.broker``).
    enable_alerts
        Send alerts (email/Slack from the environment) on errors, regime changes, daily
        summaries, readiness changes, reconciliation differences and stale data.
    confirm_live
        Confirms the live account for ``alpaca_live`` (or ``live.confirm_live_env=yes``).
    env
        Environment to read secrets from (default ``os.environ``).
    broker_factory
        Opens the broker (tests inject brokers at loopback fakes).
    alerter
        Sends the alerts (default: channels from ``env`` when alerts are enabled).
    readiness_track
        The paper track whose gates ``alpaca_live`` needs: ``all`` (the paper and the
        Alpaca paper broker's logs), ``paper`` or ``alpaca_paper``.
    override
        Trade the local config's trading settings where they differ from those the champion
        was evaluated with (recorded in the daily log's ``config_overrides``); without it
        such a difference is a refusal (:func:`~py_finance.live.champion.check_champion`).

    Raises
    ------
    ModelNotFoundError
        When no ``@champion`` exists for the configured horizon.
    PyFinanceError
        For a refused live start, an empty store, stale data or a broker failure (after
        an error log and alert).
    """
    live = ctx.settings.live
    env = os.environ if env is None else env
    broker_name = broker or live.broker
    if broker_name not in ("paper", "alpaca_paper", "alpaca_live"):
        raise PyFinanceError(
            f"unknown broker {broker_name!r}; use paper, alpaca_paper or alpaca_live"
        )
    redact, alerter = _protect_secrets(ctx, env, alerter, enable_alerts)
    timer = _Timer()
    replay = as_of is not None
    as_of = as_of if as_of is not None else pd.Timestamp.now(tz="UTC")
    if as_of.tzinfo is None:
        raise PyFinanceError("--as-of needs a time zone (e.g. 2022-12-28T22:00Z)")
    with timer.step("session"):
        info = resolve_session(as_of, ctx.settings.data.calendar)
    log_dir = ctx.root / live.log_dir_for(broker_name)
    stop = _stop_before_trading(ctx, info, log_dir, dry_run, skip_if_logged, replay, alerter)
    if stop is not None:
        return stop
    payload = _new_payload(ctx, info, as_of, dry_run, broker_name)
    previous = last_log(log_dir, info.session)
    day = _Day(
        ctx, broker_name, info, as_of, dry_run, log_dir, payload, previous, timer, alerter, redact
    )
    try:
        history = _load_data(day, refresh=live.refresh_data and not replay and not dry_run)
        model = _load_model(day, history, override=override)
        fraction = _capital_fraction(day, env, confirm_live, readiness_track)
        with timer.step("broker"):
            account_broker = (broker_factory or open_broker)(broker_name, ctx)
        try:
            return _trade(day, account_broker, model, history, fraction)
        finally:
            close = getattr(account_broker, "close", None)
            if close is not None:
                close()
    except LiveRefusal as exc:
        why = f"{day.session}: live trading refused"
        alerter.send(Alert("error", why, str(exc), "critical", day.session))
        raise
    except Exception as exc:  # a data, broker or library failure: log it, alert, re-raise
        _log_failure(day, exc)
        raise


def _protect_secrets(
    ctx: Context, env: Mapping[str, str], alerter: Alerter | None, enable_alerts: bool
) -> tuple[Redactor, Alerter]:
    """Mask the environment's secrets in log records and alerts; the redactor and alerter.

    The daily log and the exceptions the loop raises are masked with the returned redactor.
    """
    secrets = secrets_from_env(env)
    install_redaction(secrets)
    redact = Redactor(secrets)
    return redact, alerter if alerter is not None else _alerter(ctx, enable_alerts, env)


def _stop_before_trading(
    ctx: Context,
    info: SessionInfo,
    log_dir: Path,
    dry_run: bool,
    skip_if_logged: bool,
    replay: bool,
    alerter: Alerter,
) -> LiveDayResult | None:
    """The result of a halted loop or of a session already logged; None: go on."""
    session = info.session
    path = daily_log_path(log_dir, session)
    logged = path.exists() and _good_log(read_daily_log(log_dir, session))
    halt = halt_path(ctx)
    if halt.exists() and not dry_run:
        reason = halt.read_text().strip() or "no reason given"
        log.warning("trading is halted (%s): %s; nothing sent", halt, reason)
        alerter.send(
            Alert("halted", f"trading halted, {session} not traded", reason, "warning", session)
        )
        return LiveDayResult(session, True, None, {}, "halted")
    if logged and (skip_if_logged or info.closed_today):
        why = "market closed today; " if info.closed_today else ""
        log.info("%s%s already traded and logged at %s: skipping", why, session, path)
        return LiveDayResult(session, True, path, {}, "closed" if info.closed_today else "skipped")
    if info.market_open and not replay:
        log.warning("the market is open: acting on the last closed %s", info.describe())
    return None


def _new_payload(
    ctx: Context, info: SessionInfo, as_of: pd.Timestamp, dry_run: bool, broker_name: str
) -> dict[str, Any]:
    """The daily log's head: what runs, when, and the calendar it reads."""
    return {
        "schema_version": SCHEMA_VERSION,
        "session": info.session,
        "status": "ok",
        "generated_at": None,
        "as_of": as_of,
        "dry_run": dry_run,
        "broker": broker_name,
        "horizon": ctx.horizon,
        "calendar": {
            "session_close": info.close,
            "early_close": info.early_close,
            "market_closed_today": info.closed_today,
            "market_open_at_run": info.market_open,
        },
        "errors": [],
    }


def _load_data(day: _Day, *, refresh: bool) -> pd.DataFrame:
    """The closes known at ``as_of`` up to the session (refreshed first with ``refresh``).

    A store that lags the session by more than ``live.max_stale_sessions`` is a failed run
    (logged ``stale``, alerted ``stale_data``) and a :class:`DataError`.
    """
    s = day.ctx.settings
    payload, session = day.payload, day.session
    with day.timer.step("data"):
        if refresh:
            payload["refresh"] = _refresh(day.ctx)
        store = day.ctx.store
        symbols = list(s.data.symbols) if s.data.symbols else None
        history = store.wide("adj_close", symbols, None, None, day.as_of)
    if history.empty:
        raise DataError(f"the store has no bars known at {day.as_of}: run ingest first")
    last_bar = history.index[-1].date()
    lag = _stale_sessions(day.ctx, last_bar, session)
    payload["data"] = {
        "source": store.meta().get("source"),
        "survivorship_biased": store.meta().get("survivorship_biased"),
        "last_session": last_bar,
        "sessions_behind": lag,
    }
    if lag > s.live.max_stale_sessions:
        msg = (
            f"stale data: the store's last session is {last_bar}, {lag} session(s) behind "
            f"{session}; no trading (refresh the data, or replay with --as-of)"
        )
        log.error(msg)
        day.fail("stale", msg, "stale_data")
        raise DataError(msg)
    return history.loc[: pd.Timestamp(session)]


def _load_model(day: _Day, history: pd.DataFrame, *, override: bool) -> Any:
    """The ``@champion``, refused when it was evaluated with other settings or universe."""
    ctx = day.ctx
    with day.timer.step("model"):
        tracking.setup(ctx.settings.tracking, ctx.root)
        model = tracking.load_model(ctx.deployment, tracking.CHAMPION)
        try:
            overrides = check_champion(ctx, model, list(history.columns), override=override)
        except ChampionMismatch as exc:
            raise LiveRefusal(str(exc)) from None
    day.payload.update(
        model_name=model.name, model_version=model.version, model_run_id=model.run_id
    )
    if overrides:
        day.payload["config_overrides"] = overrides
    return model


def _capital_fraction(
    day: _Day, env: Mapping[str, str], confirm_live: bool, readiness_track: str
) -> float:
    """The share of the capital traded: the ramp-up's for ``alpaca_live``, else all of it."""
    fraction = 1.0
    if day.broker_name == "alpaca_live" and not day.dry_run:
        fraction, evidence = _live_permission(day.ctx, env, confirm_live, readiness_track)
        day.payload["live_permission"] = evidence
    day.payload["capital_fraction"] = fraction
    return fraction


def _log_failure(day: _Day, exc: Exception) -> None:
    """Log and alert a failed run (unless logged already, as stale data is), secrets masked.

    A run that sent orders the broker did not confirm, then failed a read: the day's log,
    the alert and the error line all name the unconfirmed orders.
    """
    redact_exception(exc, day.redact)  # a broker may echo a key in the message
    if day.payload["status"] not in ("ok", "degraded"):
        return
    errors = day.payload["errors"]
    degraded = next((e for e in reversed(errors) if e.startswith("degraded:")), "")
    day.fail("error", f"{type(exc).__name__}: {exc}", "error", degraded)
    if degraded and isinstance(exc, PyFinanceError):
        exc.args = (f"{exc}; before that, {degraded}",)


def _trade(
    day: _Day, broker: Broker, model: Any, history: pd.DataFrame, fraction: float
) -> LiveDayResult:
    """Trade the session at the open ``broker``, one step after the other.

    Each step's time is in the log's ``timings``; the ``checkpoint`` names are where the
    crash tests stop the loop.
    """
    journal = journal_path(day.ctx, day.broker_name)
    checkpoint("broker_opened")
    clock, marks = _open_account(day, broker)
    _reconcile_journal(day, broker, journal)
    prices = history.iloc[-1].dropna()
    price_map = {str(k): float(v) for k, v in prices.items()}
    _settle(day, broker, history, price_map)
    book = _size_book(day, broker, model, history, marks, prices, price_map, fraction)
    plan = _rebalance(day, book, history)
    _plan(day, broker, model, journal, book, plan)
    execution = _send(day, broker, plan, price_map, journal, clock)
    equity, final, peak = _mark(day, broker, book)
    _record_day(day, book, plan, execution, equity, final, peak)
    readiness = _monitor_day(day, history, book.sectors)
    return _log_day(day, plan, readiness)


def _open_account(day: _Day, broker: Broker) -> tuple[MarketClock | None, pd.Series]:
    """The broker's clock (into the log) and equity marks; a marked later session refuses."""
    clock = broker.clock()
    if clock is not None:
        day.payload["calendar"]["broker_clock"] = {
            "timestamp": clock.timestamp,
            "is_open": clock.is_open,
            "next_open": clock.next_open,
            "next_close": clock.next_close,
        }
    marks = broker.equity_history()
    if not day.dry_run and len(marks) and marks.index[-1].date() > day.session:
        # A refusal, not a failed run: that session's log (which readiness counts) is
        # left as it is.
        raise LiveRefusal(
            f"the {day.broker_name} account was already marked at {marks.index[-1].date()}, "
            f"after {day.session}: a past session can only be replayed with --dry-run"
        )
    return clock, marks


def _reconcile_journal(day: _Day, broker: Broker, journal: Path) -> None:
    """Journal and last log against the broker (not in a dry run); a difference alerts."""
    rec = Reconciliation()
    if not day.dry_run:
        with day.timer.step("reconcile"):
            rec = reconcile(broker, journal, day.session, day.previous)
        checkpoint("reconciled")
        if not rec.clean:
            day.alerter.send(
                Alert(
                    "reconciliation",
                    f"{day.session}: broker and journal disagree",
                    "\n".join(rec.messages()),
                    "warning",
                    day.session,
                )
            )
    day.payload["reconciliation"] = rec.to_dict()


def _settle(
    day: _Day, broker: Broker, history: pd.DataFrame, price_map: Mapping[str, float]
) -> None:
    """Earlier orders filled since (the paper broker fills them now) and delistings paid."""
    session, as_of = day.session, day.info.as_of
    settle = getattr(broker, "settle", None)
    if settle is not None and not day.dry_run:
        with day.timer.step("settle"):
            # The paper broker fills earlier orders at this close (or open: backtest.fill).
            settle(price_map, session, opens=session_opens(day.ctx, session, as_of))
        checkpoint("settled")
    day.payload["settled"] = _settled(broker, day.previous)
    apply_delistings = getattr(broker, "apply_delistings", None)
    if apply_delistings is not None and not day.dry_run:
        # A held name that stopped trading is paid out at its delisting return (the
        # backtest's rule), never carried at its last close.
        held = broker.positions()
        events = delisting_events(day.ctx.store.delistings(as_of), history, held, session)
        day.payload["delisted"] = apply_delistings(events, session) if events else []


def _size_book(
    day: _Day,
    broker: Broker,
    model: Any,
    history: pd.DataFrame,
    marks: pd.Series,
    prices: pd.Series,
    price_map: dict[str, float],
    fraction: float,
) -> _Book:
    """The book now, and the model's weights for it after the throttle and the ramp-up."""
    ctx, session, as_of = day.ctx, day.session, day.info.as_of
    with day.timer.step("targets"):
        account = broker.account()
        positions = account.positions
        _refuse_strays(positions, history, day.broker_name)
        equity_now = (
            _equity(account.cash, positions, prices)
            if day.broker_name == "paper"
            else account.equity
        )
        throttle = _throttle_state(marks, session, equity_now, ctx)
        multiplier = throttle_multiplier(throttle, ctx.settings.risk) if throttle else 1.0
        sectors = ctx.store.sectors(as_of)
        held = sorted(sym for sym, qty in positions.items() if qty > 0)
        scores, weights, _regimes, regime = _targets(
            ctx, model, history, session, as_of, held, sectors
        )
        weights = weights * multiplier * fraction
    return _Book(
        account=account,
        prices=prices,
        price_map=price_map,
        marks=marks,
        equity=equity_now,
        throttle=throttle,
        multiplier=multiplier,
        sectors=sectors,
        scores=scores,
        weights=weights,
        regime=regime,
    )


def _rebalance(day: _Day, book: _Book, history: pd.DataFrame) -> _Plan:
    """Whether the session rebalances, or resizes the book the throttle moved, and to what.

    Between rebalances the book is held as it stands, unless the drawdown throttle's
    multiplier moved since the book was sized: then, as the backtest does on the session
    the throttle trips, the holdings are resized by new / old (an empty book, after
    HALTED, waits for the next rebalance: there is nothing to scale).
    """
    every = day.ctx.settings.portfolio.rebalance_every
    last = last_rebalance(day.log_dir, day.session)
    since = None if last is None else int((history.index > pd.Timestamp(last)).sum())
    due = since is None or since >= every
    targets = {str(k): float(v) for k, v in book.weights.items() if v > 0}
    book_multiplier = _book_multiplier(day.previous)
    multiplier = book.multiplier
    resize = (
        not due
        and day.previous is not None
        and book_multiplier > 0
        and not math.isclose(multiplier, book_multiplier, rel_tol=1e-9, abs_tol=1e-12)
        and book.equity > 0
    )
    doc: dict[str, Any] = {"due": due, "every": every, "last": last, "sessions_since_last": since}
    if resize:
        ratio = multiplier / book_multiplier
        targets = resized_weights(book.positions, book.price_map, book.equity, ratio)
        doc["throttle_resize"] = {
            "from_multiplier": book_multiplier,
            "to_multiplier": multiplier,
            "ratio": ratio,
        }
        log.warning(
            "drawdown throttle %s: multiplier %g -> %g between rebalances; holdings resized x%.4g",
            book.throttle.state if book.throttle else "ACTIVE",
            book_multiplier,
            multiplier,
            ratio,
        )
    return _Plan(targets, doc, due, resize)


def _plan(day: _Day, broker: Broker, model: Any, journal: Path, book: _Book, plan: _Plan) -> None:
    """The session's orders into ``plan``: one net order per symbol, sells first.

    The plan is journaled before anything is sent, and a session whose plan is journaled
    is never planned again: its plan is resumed.
    """
    session, dry_run = day.session, day.dry_run
    with day.timer.step("orders"):
        planned = session_intents(journal, session) if not dry_run and journal.exists() else []
        if planned:
            log.info("the plan of %s is journaled (%d orders): resuming it", session, len(planned))
            plan.intents, plan.kind = planned, "resumed"
        elif plan.due or plan.resize:
            needed = sorted(set(plan.targets) | set(book.positions))
            plan.intents = plan_orders(
                plan.targets,
                book.positions,
                book.price_map,
                book.equity,
                session=session,
                run_id=f"{model.name}-v{model.version}-{day.broker_name}",
                min_notional=day.ctx.settings.live.min_order_notional,
                fractionable=broker.fractionable(needed),
            )
            plan.kind = "new" if plan.due else "resize"
            if not dry_run:
                record_intents(journal, plan.intents)
                checkpoint("intents_recorded")


def _send(
    day: _Day,
    broker: Broker,
    plan: _Plan,
    price_map: Mapping[str, float],
    journal: Path,
    clock: MarketClock | None,
) -> Execution:
    """Send the plan and wait for its fills within one budget (not in a dry run).

    Rejected orders are errors of the day (counted by the readiness gates), not a failed
    session: the broker's state is known. Orders the broker did not confirm make the run
    ``degraded``.
    """
    payload, intents = day.payload, plan.intents
    execution = Execution([], None, 0.0)
    with day.timer.step("submit"):
        if not day.dry_run and intents:
            # Orders sent while the market is closed wait for the next open: do not wait.
            budget = day.ctx.settings.live.fill_timeout_s
            budget = budget if clock is None or clock.is_open else 0.0
            execution = execute(broker, intents, price_map, journal, wait_budget_s=budget)
            # Known now, whatever fails later: a failed read still logs what was sent.
            payload.update(orders=[i.to_dict() for i in intents], fills=execution.fills)
    day.timer.timings["fills"] = execution.waited_s
    errors: list[str] = payload["errors"]
    errors.extend(f"order {f.client_order_id} rejected: {f.reason}" for f in execution.rejected)
    unconfirmed = execution.unconfirmed
    if unconfirmed:
        payload["status"] = "degraded"
        why = execution.stopped or unconfirmed[0].reason
        errors.append(
            f"degraded: {len(unconfirmed)} of {len(intents)} order(s) not confirmed by the "
            f"broker ({why}); run the loop again for {day.session} before the next session's "
            "close to send those the broker never received (later they are abandoned and the "
            "next plan starts from the broker's positions): "
            + ", ".join(f.client_order_id for f in unconfirmed)
        )
    return execution


def _mark(day: _Day, broker: Broker, book: _Book) -> tuple[float, Account, float]:
    """The equity at the session's closes, the account after the orders, the equity peak."""
    with day.timer.step("mark"):
        if day.dry_run:
            account = book.account
            equity = (
                _equity(account.cash, book.positions, book.prices)
                if day.broker_name == "paper"
                else account.equity
            )
        else:
            equity = broker.mark_to_market(book.price_map, day.session)
            checkpoint("marked")
    final = broker.account()
    marks_after = broker.equity_history() if not day.dry_run else book.marks
    peak = float(marks_after.max()) if len(marks_after) else equity
    return equity, final, peak


def _record_day(
    day: _Day,
    book: _Book,
    plan: _Plan,
    execution: Execution,
    equity: float,
    final: Account,
    peak: float,
) -> None:
    """The day's figures into the log: regime, risk, scores, weights, orders, fills, book."""
    s = day.ctx.settings
    weights, sectors, regime = book.weights, book.sectors, book.regime
    sector_weights = weights.groupby(sectors.reindex(weights.index).fillna("Unknown")).sum()
    regime_exposure = None if s.regime_policy.needs_history else s.regime_policy.multiplier(regime)
    valid = book.scores.dropna()
    actual = {
        sym: qty * book.price_map[sym] / equity
        for sym, qty in final.positions.items()
        if sym in book.price_map and equity > 0
    }
    day.payload.update(
        regime=regime,
        previous_regime=None if day.previous is None else day.previous.get("regime"),
        regime_exposure=regime_exposure,
        regime_policy=s.regime_policy.name,
        risk_state=book.throttle.state if book.throttle else "ACTIVE",
        throttle_multiplier=book.multiplier,
        predictions={
            "count": int(valid.size),
            "mean": float(valid.mean()) if valid.size else None,
            "std": float(valid.std()) if valid.size > 1 else None,
            "top": {str(k): float(v) for k, v in valid.nlargest(5).items()},
        },
        scores={str(k): float(v) for k, v in valid.items()},
        target_weights={k: round(v, 10) for k, v in plan.targets.items()},
        actual_weights={k: round(v, 10) for k, v in actual.items()},
        sector_weights={str(k): float(v) for k, v in sector_weights.items() if v > 0},
        gross_exposure=float(weights.sum()),
        rebalance=plan.rebalance,
        plan=plan.kind,
        orders=[i.to_dict() for i in plan.intents],
        fills=execution.fills,
        equity=equity,
        peak_equity=peak,
        drawdown=0.0 if peak <= 0 else equity / peak - 1.0,
        cash=final.cash,
        positions=final.positions,
        generated_at=pd.Timestamp.now(tz="UTC"),
        timings=day.timer.timings,
    )


def _monitor_day(day: _Day, history: pd.DataFrame, sectors: pd.Series) -> ReadinessReport | None:
    """The shadow challenger's day, the monitor block, the MLflow tracks, paper readiness.

    The paper track's gates include today (every run of it), so a change is alerted the
    day it happens.
    """
    ctx, payload, session = day.ctx, day.payload, day.session
    if ctx.settings.live.shadow:
        payload["shadow"] = _shadow(ctx, history, day.info, sectors, day.dry_run)
    if not day.dry_run:
        payload["monitor"] = _monitor(ctx, payload, day.previous, history, day.info, day.log_dir)
        _log_tracks(ctx, day.broker_name, payload)
    if day.broker_name != "paper" or day.dry_run:
        return None
    track = [e for e in _logs(day.log_dir) if str(e.get("session")) != session.isoformat()]
    today = day_with_run(day.log_dir, session, payload)
    readiness = evaluate_readiness([*track, today], live_gates(ctx))
    payload["readiness_passed"] = readiness.passed
    return readiness


def _log_day(day: _Day, plan: _Plan, readiness: ReadinessReport | None) -> LiveDayResult:
    """Append the run to the day's log, send the day's alerts, say what was done."""
    payload, session = day.payload, day.session
    written = append_run(day.log_dir, session, payload, redact=day.redact)
    checkpoint("logged")
    _after_day_alerts(day.alerter, payload, day.previous, day.broker_name, day.dry_run, readiness)
    if payload.get("monitor"):
        from py_finance.live.monitor import monitor_alerts

        monitor_alerts(day.alerter, payload, day.previous)
    log.info(
        "%s %s: regime %s, %d orders%s, log %s",
        "planned" if day.dry_run else "traded",
        session,
        payload["regime"],
        len(plan.intents),
        " (dry run: nothing sent)" if day.dry_run else "",
        written,
    )
    if plan.kind == "none":
        doc = plan.rebalance
        log.info(
            "holding: %s of %s sessions since the last rebalance (%s)",
            doc["sessions_since_last"],
            doc["every"],
            doc["last"],
        )
    if payload["status"] == "degraded":
        log.error("%s is degraded: %s", session, payload["errors"][-1])
    return LiveDayResult(session, False, written, payload, payload["status"])


def _refuse_strays(positions: Mapping[str, float], history: pd.DataFrame, broker: str) -> None:
    """Refuse to plan around holdings outside the universe, naming them.

    The loop can neither price nor trade a name it has no bars for, and sizing the rest
    of the book against an equity that includes it would be wrong, so nothing is sent.
    """
    strays = {sym: qty for sym, qty in positions.items() if sym not in history.columns}
    if strays:
        held = ", ".join(f"{sym} ({qty:.6g} sh)" for sym, qty in sorted(strays.items()))
        raise PyFinanceError(
            f"the {broker} account holds {held}, outside the universe the loop trades "
            f"(data.symbols and the store's bars): nothing was planned or sent; close "
            f"{'that position' if len(strays) == 1 else 'those positions'} at the broker, or "
            "add the symbol to the universe and ingest its bars"
        )


def _book_multiplier(previous: Mapping[str, Any] | None) -> float:
    """The throttle multiplier the book was last sized with (1.0 when no log says)."""
    value = (previous or {}).get("throttle_multiplier")
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return 1.0
    return float(value)


def delisting_events(
    delistings: pd.DataFrame,
    history: pd.DataFrame,
    held: Mapping[str, float],
    session: dt.date,
) -> list[Delisting]:
    """The delistings up to ``session`` of held names, with each name's last close.

    ``history`` is the ``session x symbol`` adjusted closes known now; the last close is the
    name's last price before its delisting session.
    """
    events = []
    for sym, day, ret in zip(
        delistings["symbol"].astype(str),
        pd.to_datetime(delistings["date"]),
        delistings["delisting_return"].astype(float),
        strict=True,
    ):
        if sym not in held or day.date() > session or sym not in history.columns:
            continue
        before = history.loc[history.index < day, sym].dropna()
        before = before[before > 0]
        if before.empty:
            continue
        events.append(Delisting(sym, day.date(), float(ret), float(before.iloc[-1])))
    return events


def _settled(broker: Broker, previous: Mapping[str, Any] | None) -> list[Fill]:
    """Orders the last log left open, as the broker reports them now (filled since?)."""
    out = []
    for fill in (previous or {}).get("fills") or []:
        if not fill.get("open"):
            continue
        state = broker.get_order(str(fill["client_order_id"]))
        if state is not None and (state.qty_filled != fill.get("qty_filled") or state.final):
            out.append(state)
    return out


def _monitor(
    ctx: Context,
    payload: Mapping[str, Any],
    previous: Mapping[str, Any] | None,
    history: pd.DataFrame,
    info: SessionInfo,
    log_dir: Path,
) -> dict[str, Any] | None:
    """The day's replay, shortfall, drift and IC (:mod:`py_finance.live.monitor`).

    And its MLflow track; a failure there is logged, never the day's.
    """
    from py_finance.live.monitor import log_monitor_track, monitor_day

    try:
        block = monitor_day(ctx, payload, previous, history, info, log_dir)
    except Exception as exc:  # the day is traded whatever the monitor does
        log.warning("live monitor failed: %s: %s", type(exc).__name__, exc)
        return {"error": f"{type(exc).__name__}: {exc}"[:500]}
    try:
        log_monitor_track(ctx, str(payload["broker"]), {**payload, "monitor": block}, log_dir)
    except Exception as exc:
        log.warning("could not log the monitor to MLflow: %s: %s", type(exc).__name__, exc)
    return block


def _shadow(
    ctx: Context, history: pd.DataFrame, info: SessionInfo, sectors: pd.Series, dry_run: bool
) -> dict[str, Any] | None:
    """The challenger's shadow day; a failure there is logged, never the champion's."""
    from py_finance.live.shadow import shadow_day

    try:
        return shadow_day(ctx, history, info, sectors, dry_run=dry_run)
    except Exception as exc:  # the champion's day stands whatever the shadow does
        log.warning("shadow trading of the challenger failed: %s: %s", type(exc).__name__, exc)
        return {"error": f"{type(exc).__name__}: {exc}"[:500]}


def _log_tracks(ctx: Context, broker_name: str, payload: Mapping[str, Any]) -> None:
    """The champion's and the shadow's equity of the day in MLflow (``<experiment>-live``).

    One run per deployed version and broker, step = the session (``YYYYMMDD``); the shadow
    challenger's run beside it. A tracking failure is logged, never the day's.
    """
    experiment = f"{ctx.settings.tracking.experiment}-live"
    step = int(pd.Timestamp(payload["session"]).strftime("%Y%m%d"))
    books = [("", payload)]
    shadow = payload.get("shadow")
    if shadow and "equity" in shadow:
        books.append(("shadow-", {**shadow, "model_version": shadow["version"]}))
    try:
        for prefix, book in books:
            version = book["model_version"]
            tracking.log_track(
                experiment,
                f"{prefix}{broker_name}-{payload['model_name']}-v{version}",
                {"equity": book.get("equity"), "cash": book.get("cash")},
                step,
                {
                    "model": str(payload["model_name"]),
                    "version": str(version),
                    "broker": broker_name,
                },
            )
    except Exception as exc:  # the day is logged and traded whatever MLflow says
        log.warning("could not log the live track to MLflow: %s: %s", type(exc).__name__, exc)


def _equity(cash: float, positions: Mapping[str, float], prices: pd.Series) -> float:
    return float(cash + sum(q * float(prices.get(sym, np.nan)) for sym, q in positions.items()))


def _after_day_alerts(
    alerter: Alerter,
    payload: Mapping[str, Any],
    previous: Mapping[str, Any] | None,
    broker_name: str,
    dry_run: bool,
    readiness: Any,
) -> None:
    session = payload["session"]
    if previous is not None and previous.get("regime") not in (None, payload["regime"]):
        alerter.send(
            Alert(
                "regime_change",
                f"{session}: regime {previous['regime']} -> {payload['regime']}",
                f"exposure multiplier {payload['regime_exposure']}",
                "warning",
                session,
            )
        )
    for error in payload["errors"]:
        alerter.send(Alert("error", f"{session}: {error}", error, "critical", session))
    weights = ", ".join(f"{k} {v:.1%}" for k, v in sorted(payload["target_weights"].items()))
    alerter.send(
        Alert(
            "daily_summary",
            f"{session} {'dry run' if dry_run else broker_name}: equity {payload['equity']:,.2f}",
            (
                f"model {payload.get('model_name')} v{payload.get('model_version')}, "
                f"regime {payload['regime']}, risk {payload['risk_state']}, "
                f"drawdown {payload['drawdown']:.1%}, {len(payload['orders'])} orders\n"
                f"weights: {weights}"
            ),
            "info",
            session,
        )
    )
    before = (previous or {}).get("readiness_passed")
    if readiness is not None and before is not None and bool(before) != readiness.passed:
        alerter.send(
            Alert(
                "readiness_change",
                f"{session}: readiness gates {'pass' if readiness.passed else 'fail'}",
                "\n".join(f"{g.name}: {g.detail}" for g in readiness.gates),
                "warning",
                session,
            )
        )
