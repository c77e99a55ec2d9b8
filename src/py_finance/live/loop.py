"""The daily live loop: champion model -> target weights -> orders -> broker -> daily log.

Run after the close of a session. Everything that shapes the weights is the backtest's own
code (``py_finance.risk.targets.target_weights`` and the drawdown throttle), so what trades
is what was backtested. Knowledge time is explicit: ``as_of`` (default: now, UTC) bounds
every read of the store.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from py_finance import tracking
from py_finance.errors import DataError, PyFinanceError
from py_finance.features.regimes import detect_regimes
from py_finance.live.brokers.paper import PaperBroker
from py_finance.live.daily_log import (
    daily_log_path,
    logged_sessions,
    read_daily_log,
    write_daily_log,
)
from py_finance.live.journal import mark_submitted, record_intents
from py_finance.live.orders import plan_orders
from py_finance.pipeline.context import Context
from py_finance.pipeline.research import feature_frame
from py_finance.risk.overlays import ThrottleState, throttle_multiplier, throttle_step
from py_finance.risk.targets import target_weights

log = logging.getLogger(__name__)

# Sessions of history loaded for features (the longest window plus slack for gaps).
_HISTORY_SLACK = 40


@dataclass(frozen=True, slots=True)
class LiveDayResult:
    """What one run of the loop did."""

    session: dt.date
    skipped: bool
    log_path: Any
    payload: dict[str, Any]


def _throttle_state(equity: pd.Series, ctx: Context) -> ThrottleState | None:
    state: ThrottleState | None = None
    for value in equity.to_numpy(dtype="float64"):
        state = throttle_step(state, float(value), ctx.settings.risk)
    return state


def last_rebalance(log_dir: Any, before: dt.date) -> dt.date | None:
    """Latest session before ``before`` whose (non dry-run) log rebalanced the book."""
    for session in sorted(logged_sessions(log_dir), reverse=True):
        if session >= before:
            continue
        entry = read_daily_log(log_dir, session)
        if not entry.get("dry_run") and entry.get("rebalance", {}).get("due"):
            return session
    return None


def run_live_day(
    ctx: Context,
    *,
    dry_run: bool,
    as_of: pd.Timestamp | None = None,
    skip_if_logged: bool = False,
    broker: str | None = None,
) -> LiveDayResult:
    """Trade (or, with ``dry_run``, plan) the latest session known at ``as_of``.

    Raises
    ------
    ModelNotFoundError
        When no ``@champion`` exists for the configured horizon.
    PyFinanceError
        For an unavailable broker, an empty store or stale inputs.
    """
    s = ctx.settings
    live = s.live
    broker_name = broker or live.broker
    if broker_name != "paper":
        raise PyFinanceError(f"broker {broker_name!r} is not available yet: use --broker paper")
    as_of = as_of if as_of is not None else pd.Timestamp.now(tz="UTC")
    if as_of.tzinfo is None:
        raise PyFinanceError("--as-of needs a time zone (e.g. 2022-12-28T22:00Z)")
    store = ctx.store
    symbols = list(s.data.symbols) if s.data.symbols else None
    history = store.wide("adj_close", symbols, None, None, as_of)
    if history.empty:
        raise DataError(f"the store has no bars known at {as_of}: run ingest first")
    session = history.index[-1].date()
    log_dir = ctx.root / live.log_dir
    path = daily_log_path(log_dir, session)
    if skip_if_logged and path.exists() and not read_daily_log(log_dir, session).get("dry_run"):
        log.info("session %s already traded and logged at %s: skipping", session, path)
        return LiveDayResult(session, True, path, {})

    tracking.setup(s.tracking, ctx.root)
    model = tracking.load_model(s.tracking.model_name(ctx.horizon), tracking.CHAMPION)

    # Enough history for the features and for sequence models' windows; feature sets with
    # expanding state (regime features) read all of it.
    lookback = s.features.lookback + _HISTORY_SLACK
    start = history.index[-lookback] if lookback < len(history) else None
    feats = feature_frame(ctx, start, session, as_of)
    is_today = feats.index.get_level_values("session") == pd.Timestamp(session)
    if not is_today.any():
        raise DataError(f"no complete feature rows for {session}: not enough history")
    # Score the recent history too: a sequence model reads the windows ending today.
    scores = model.predict(feats)[is_today].unstack("symbol").reindex(columns=history.columns)

    index = store.wide("adj_close", None, None, None, as_of, table="benchmark").iloc[:, 0]
    regimes = detect_regimes(index.loc[: pd.Timestamp(session)], s.regimes)["regime"]
    regime = str(regimes.iloc[-1])
    sectors = store.sectors(as_of)
    if s.regime_policy.needs_history:
        raise PyFinanceError(
            f"regime policy {s.regime_policy.name!r} is not available in the live loop yet "
            "(it needs the strategy's return history); trade with regime_policy=fixed"
        )
    every = s.portfolio.rebalance_every
    last = last_rebalance(log_dir, session)
    since = None if last is None else int((history.index > pd.Timestamp(last)).sum())
    due = since is None or since >= every

    state_path = ctx.root / live.state_path
    prices = history.iloc[-1].dropna()
    run_id = f"{model.name}-v{model.version}-{broker_name}"
    with PaperBroker(
        state_path,
        initial_cash=live.initial_cash,
        commission_bps=live.commission_bps,
        slippage_bps=live.slippage_bps,
    ) as paper:
        marks = paper.equity_history()
        if not dry_run and len(marks) and marks.index[-1].date() > session:
            raise PyFinanceError(
                f"the paper account was already marked at {marks.index[-1].date()}, after "
                f"{session}: a past session can only be replayed with --dry-run"
            )
        throttle = _throttle_state(marks, ctx)
        multiplier = throttle_multiplier(throttle, s.risk) if throttle else 1.0
        account = paper.account()
        positions = paper.positions()
        # The backtest's own construction and static overlays, on today's row; the returns
        # history feeds inverse-vol weighting and vol targeting exactly as in the backtest,
        # and the names held now feed the hold buffer / n-drop as the backtest's holdings do.
        weights = target_weights(
            scores,
            portfolio=s.portfolio,
            risk=s.risk,
            sectors=sectors,
            regimes=regimes,
            policy=s.regime_policy,
            returns=history.pct_change(fill_method=None),
            previous=sorted(sym for sym, qty in positions.items() if qty > 0),
            periods_per_year=s.backtest.periods_per_year,
        ).iloc[0]
        weights = weights * multiplier
        equity = account.cash + sum(
            q * float(prices.get(sym, np.nan)) for sym, q in positions.items()
        )
        targets = {str(k): float(v) for k, v in weights.items() if v > 0}
        intents = (
            plan_orders(
                targets,
                positions,
                {str(k): float(v) for k, v in prices.items()},
                equity,
                session=session,
                run_id=run_id,
                min_notional=live.min_order_notional,
            )
            if due
            else []
        )
        fills: list[Any] = []
        if not dry_run:
            record_intents(state_path, intents)
            for intent in intents:
                fill = paper.submit(intent, float(prices[intent.symbol]))
                mark_submitted(state_path, intent.client_order_id)
                fills.append(fill)
            equity = paper.mark_to_market({str(k): float(v) for k, v in prices.items()}, session)
        final = paper.account()

    sector_weights = weights.groupby(sectors.reindex(weights.index).fillna("Unknown")).sum()
    payload: dict[str, Any] = {
        "session": session,
        "generated_at": pd.Timestamp.now(tz="UTC"),
        "as_of": as_of,
        "dry_run": dry_run,
        "broker": broker_name,
        "model_name": model.name,
        "model_version": model.version,
        "model_run_id": model.run_id,
        "horizon": ctx.horizon,
        "regime": regime,
        "regime_exposure": s.regime_policy.multiplier(regime),
        "risk_state": throttle.state if throttle else "ACTIVE",
        "throttle_multiplier": multiplier,
        "scores": {str(k): float(v) for k, v in scores.iloc[0].dropna().items()},
        "target_weights": {k: round(v, 10) for k, v in targets.items()},
        "sector_weights": {str(k): float(v) for k, v in sector_weights.items() if v > 0},
        "gross_exposure": float(weights.sum()),
        "rebalance": {"due": due, "every": every, "last": last, "sessions_since_last": since},
        "orders": [i.to_dict() for i in intents],
        "fills": fills,
        "equity": equity,
        "cash": final.cash,
        "positions": final.positions,
        "data": {
            "source": store.meta().get("source"),
            "survivorship_biased": store.meta().get("survivorship_biased"),
            "last_session": session,
        },
    }
    written = write_daily_log(log_dir, session, payload)
    if not due:
        log.info("holding: %s of %s sessions since the last rebalance (%s)", since, every, last)
    log.info(
        "%s %s: regime %s, %d orders%s, log %s",
        "planned" if dry_run else "traded",
        session,
        regime,
        len(intents),
        " (dry run: nothing sent)" if dry_run else "",
        written,
    )
    return LiveDayResult(session, False, written, payload)
