"""A simulated paper track: the synthetic market, the paper broker and the monitor, day by day.

Each session does what the live loop does around the monitor: settle yesterday's orders at
today's close, mark, monitor the filled session against its replay, plan today's orders
from the scores (top-k equal weights, rebalanced every ``every`` sessions) and append the
day's log. Scores are the synthetic market's oracle (a known edge), optionally shuffled
across names from session ``shuffle_from`` on; features are two momentum figures of the
closes, optionally shifted from session ``shift_from`` on.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from py_finance.data.sources.synthetic import SyntheticSource
from py_finance.live.brokers.paper import PaperBroker
from py_finance.live.daily_log import append_run, to_jsonable
from py_finance.live.monitor import (
    MonitorSettings,
    build_reference,
    monitor_session,
    new_alerts,
    oos_ic_series,
    rank_ic,
)
from py_finance.live.orders import plan_orders


@dataclasses.dataclass
class Track:
    logs: list[dict[str, Any]]
    alerts: list[tuple[dt.date, str]]
    log_dir: Path


def market(n_active: int = 100, n_sessions: int = 900, seed: int = 3, edge: float = 0.08):
    src = SyntheticSource(n_active=n_active, n_sessions=n_sessions, edge=edge, seed=seed)
    return src.closes(), src.oracle_scores()


def features_of(closes: pd.DataFrame) -> pd.DataFrame:
    """``(session, symbol)`` rows of two scale-free features."""
    mom = closes / closes.shift(20) - 1.0
    rev = closes / closes.shift(5) - 1.0
    frame = pd.concat({"mom_20": mom.stack(), "ret_5": rev.stack()}, axis=1)
    frame.index.names = ["session", "symbol"]
    return frame


def simulate(
    tmp: Path,
    *,
    n_sessions: int = 60,
    slippage_bps: float = 0.0,
    commission_bps: float = 0.0,
    cost_bps: float = 0.0,
    every: int = 5,
    top_k: int = 8,
    horizon: int = 1,
    shuffle_from: int | None = None,
    shift_from: int | None = None,
    shift_feature: str = "ret_5",
    settings: MonitorSettings | None = None,
    train_sessions: int = 500,
    seed: int = 3,
    on_day: Callable[[dict[str, Any]], None] | None = None,
) -> Track:
    settings = settings or MonitorSettings()
    closes, oracle = market(n_sessions=train_sessions + n_sessions + 40, seed=seed)
    # Names listed through the whole live window (delistings are the broker's other tests).
    alive = closes.iloc[train_sessions - 25 :].notna().all()
    closes, oracle = closes.loc[:, alive], oracle.loc[:, alive]
    feats = features_of(closes)
    sessions = closes.index
    train = sessions[40:train_sessions]
    live = sessions[train_sessions : train_sessions + n_sessions]
    labels = (closes.shift(-1 - horizon) / closes.shift(-1) - 1.0).stack().rename("label")
    labels.index.names = ["session", "symbol"]
    oos = oracle.loc[train].stack().rename("score").to_frame()
    oos.index.names = ["session", "symbol"]
    ic = oos_ic_series(oos, labels.to_frame(), "label")
    ref_feats = feats[feats.index.get_level_values("session").isin(train)].dropna()
    reference = build_reference(ref_feats, oos["score"], ic.tolist(), bins=settings.bins)

    rng = np.random.default_rng(seed)
    log_dir = tmp / "logs"
    broker = PaperBroker(
        tmp / "paper.sqlite",
        initial_cash=100_000.0,
        commission_bps=commission_bps,
        slippage_bps=slippage_bps,
        fill_at="next_close",
    )
    logs: list[dict[str, Any]] = []
    alerts: list[tuple[dt.date, str]] = []
    previous: dict[str, Any] | None = None
    try:
        for n, ts in enumerate(live):
            session = ts.date()
            px = closes.loc[ts].dropna()
            prices = {str(k): float(v) for k, v in px.items()}
            settled = broker.settle(prices, session)
            equity = broker.mark_to_market(prices, session)
            account = broker.account()
            scores = oracle.loc[ts].dropna()
            if shuffle_from is not None and n >= shuffle_from:
                scores = pd.Series(rng.permutation(scores.to_numpy()), index=scores.index)
            today_feats = feats.xs(ts, level="session").dropna()
            if shift_from is not None and n >= shift_from:
                today_feats = today_feats.copy()
                today_feats[shift_feature] += 3 * ref_feats[shift_feature].std()
            day: dict[str, Any] = {
                "session": session,
                "status": "ok",
                "dry_run": False,
                "broker": "paper",
                "errors": [],
                "equity": equity,
                "cash": account.cash,
                "positions": account.positions,
                "scores": {str(k): float(v) for k, v in scores.items()},
            }
            # The label of the session h+1 before today matured at this close.
            ic_value, ic_session = None, None
            if n >= horizon + 1:
                d = live[n - horizon - 1]
                old = logs[n - horizon - 1]["scores"]
                realised = labels.xs(d, level="session")
                ic_value = rank_ic(pd.Series(old), realised)
                ic_session = d.date()
            if previous is not None:
                day["monitor"] = monitor_session(
                    previous=previous,
                    today=day,
                    fills=[to_jsonable(f) for f in settled],
                    decision_prices={
                        str(k): float(v) for k, v in closes.loc[live[n - 1]].dropna().items()
                    },
                    fill_prices=prices,
                    close_prices=prices,
                    cost_bps=cost_bps,
                    fill="next_close",
                    earlier=[e.get("monitor") or {} for e in logs],
                    reference=reference,
                    today_features=today_feats,
                    today_scores=scores,
                    realised_ic=ic_value,
                    ic_session=ic_session,
                    settings=settings,
                )
                for key in new_alerts(day["monitor"]["alerts_active"], previous):
                    alerts.append((session, key))
            due = n % every == 0
            top = scores.nlargest(top_k).index
            targets = {str(s): 0.98 / top_k for s in top} if due else {}
            intents = []
            if due:
                intents = plan_orders(
                    targets,
                    account.positions,
                    prices,
                    equity,
                    session=session,
                    run_id="sim",
                    min_notional=1.0,
                )
                for intent in intents:
                    broker.submit(intent, prices[intent.symbol])
            day.update(
                plan="new" if due else "none",
                target_weights=targets,
                orders=[i.to_dict() for i in intents],
            )
            if on_day is not None:
                on_day(day)
            append_run(log_dir, session, day)
            logs.append(to_jsonable(day))
            previous = logs[-1]
    finally:
        broker.close()
    return Track(logs, alerts, log_dir)
