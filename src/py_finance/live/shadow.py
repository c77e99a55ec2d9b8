"""Shadow trading: the deployment's ``@challenger`` on a virtual book beside the champion.

Each live day, after the champion's run, the loop scores the challenger on the same data
with the config it was evaluated with (its recorded one; the live settings are the local
ones), through the same portfolio and overlay code, the same drawdown throttle and the same
fill model (a paper book that fills at the next close with the live slippage and commission).
Nothing is sent to any broker. The book lives in
``<live.state_dir>/shadow/<deployment>-v<version>.sqlite``; its weights, would-be orders and
equity go into the day's log (``shadow``) and to MLflow. ``scripts/promote.py --from-shadow``
compares the shadow track with the champion's own over the same sessions.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from py_finance import tracking
from py_finance.live.orders import plan_orders
from py_finance.pipeline.context import Context

log = logging.getLogger(__name__)

# Groups a challenger takes from the local config, not from its recorded one: where things
# are and how the loop runs (the data and universe are the deployment's, hence the same).
LOCAL_GROUPS = ("live", "tracking", "paths", "data", "promotion")


def shadow_path(ctx: Context, name: str, version: str) -> Path:
    """The virtual book of ``name`` v``version``."""
    return ctx.root / ctx.settings.live.state_dir / "shadow" / f"{name}-v{version}.sqlite"


def challenger_context(ctx: Context, recorded: dict[str, Any]) -> Context:
    """``ctx`` with the challenger's recorded trading config (local live, paths, data)."""
    from omegaconf import OmegaConf

    from py_finance.config import build, resolved_config

    local = resolved_config(ctx.settings.raw)
    merged = {**recorded, **{k: local[k] for k in LOCAL_GROUPS if k in local}}
    return Context(build(OmegaConf.create(merged)), ctx.root)


def _state(path: Path) -> dict[str, Any]:
    side = path.with_suffix(".json")
    return json.loads(side.read_text()) if side.exists() else {}


def shadow_day(
    ctx: Context,
    history: pd.DataFrame,
    info: Any,
    sectors: pd.Series,
    *,
    dry_run: bool,
) -> dict[str, Any] | None:
    """Trade ``@challenger`` on its virtual book for the session of ``info``.

    Parameters
    ----------
    ctx
        The champion's (local) context.
    history
        Closes (sessions x symbols) known at the session's close, as the champion used them.
    info
        The session (:class:`~py_finance.live.session.SessionInfo`).
    sectors
        Sector per symbol as known now.
    dry_run
        Work on a throwaway copy of the book: nothing is kept.

    Returns
    -------
    dict or None
        The ``shadow`` block of the daily log (version, target weights, would-be orders,
        equity, cash, positions, regime, throttle multiplier, whether a rebalance was due);
        None when the deployment has no challenger other than its champion.
    """
    from py_finance.live.brokers.paper import PaperBroker
    from py_finance.tracking.deployment import recorded_config

    name = ctx.deployment
    challenger = tracking.get_alias_version(name, tracking.CHALLENGER)
    champion = tracking.get_alias_version(name, tracking.CHAMPION)
    if challenger is None or challenger == champion:
        return None
    recorded = recorded_config(tracking.get_version_tags(name, challenger))
    if recorded is None:
        return {"version": challenger, "error": "no recorded config: not shadowed"}
    model = tracking.load_model(name, version=challenger, alias=tracking.CHALLENGER)
    cctx = challenger_context(ctx, recorded)
    live = cctx.settings.live
    path = shadow_path(ctx, name, challenger)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="py-finance-shadow-") as tmp:
        book_path = path
        if dry_run:
            book_path = Path(tmp) / path.name
            if path.exists():
                shutil.copy2(path, book_path)
        book = PaperBroker.from_settings(book_path, live, cctx.settings.backtest.fill)
        try:
            return _trade_shadow(cctx, book, model, history, info, sectors, path, dry_run)
        finally:
            book.close()


def _trade_shadow(
    cctx: Context,
    book: Any,
    model: Any,
    history: pd.DataFrame,
    info: Any,
    sectors: pd.Series,
    path: Path,
    dry_run: bool,
) -> dict[str, Any]:
    """The champion's day, step for step, on the virtual book (nothing sent anywhere)."""
    # The loop's own steps (imported here: the loop imports this module).
    from py_finance.live.execution import session_opens
    from py_finance.live.loop import _equity, _targets, _throttle_state
    from py_finance.risk.overlays import throttle_multiplier

    session: dt.date = info.session
    s = cctx.settings
    prices = history.iloc[-1].dropna()
    price_map = {str(k): float(v) for k, v in prices.items()}
    marks = book.equity_history()
    # Yesterday's would-be orders fill at this close (or open: backtest.fill).
    book.settle(price_map, session, opens=session_opens(cctx, session, info.as_of))
    account = book.account()
    positions = account.positions
    equity = _equity(account.cash, positions, prices)
    throttle = _throttle_state(marks, session, equity, cctx)
    multiplier = throttle_multiplier(throttle, s.risk) if throttle else 1.0
    held = sorted(sym for sym, qty in positions.items() if qty > 0)
    scores, weights, _regimes, regime = _targets(
        cctx, model, history, session, info.as_of, held, sectors
    )
    weights = weights * multiplier
    targets = {str(k): float(v) for k, v in weights.items() if v > 0}
    state = _state(path)
    last = state.get("last_rebalance")
    since = None
    if last is not None:
        since = int((history.index > pd.Timestamp(last)).sum())
    rerun = last == session.isoformat()  # a second run of the session: planned already
    due = rerun or since is None or since >= s.portfolio.rebalance_every
    intents = []
    if due and not rerun:
        intents = plan_orders(
            targets,
            positions,
            price_map,
            equity,
            session=session,
            run_id=f"shadow-{model.name}-v{model.version}",
            min_notional=s.live.min_order_notional,
        )
        for intent in intents:
            book.submit(intent, price_map[intent.symbol])
    marked = book.mark_to_market(price_map, session)
    if not dry_run and due:
        path.with_suffix(".json").write_text(json.dumps({"last_rebalance": session.isoformat()}))
    final = book.account()
    return {
        "model_name": model.name,
        "version": model.version,
        "regime": regime,
        "throttle_multiplier": multiplier,
        # Its scores: the live monitor's realised IC and score drift of the challenger.
        "scores": {str(k): float(v) for k, v in scores.dropna().items()},
        "rebalance_due": due,
        "target_weights": {k: round(v, 10) for k, v in targets.items()},
        "orders": [i.to_dict() for i in intents],
        "equity": marked,
        "cash": final.cash,
        "positions": final.positions,
    }


def shadow_track(ctx: Context, broker: str = "paper") -> tuple[str | None, pd.DataFrame]:
    """The current challenger's shadow equity beside the champion's, by session.

    Read from the daily logs of ``broker``'s track (runs that traded: no dry runs, no
    failed days). Returns the challenger version and a frame with ``champion`` and
    ``shadow`` equity (sessions where the shadow book was that version only).
    """
    from py_finance.live.readiness import load_logs, track_dir

    name = ctx.deployment
    challenger = tracking.get_alias_version(name, tracking.CHALLENGER)
    rows = {}
    folder = track_dir(ctx.root / ctx.settings.live.log_dir, broker)
    for entry in load_logs(folder) if folder.is_dir() else []:
        shadow = entry.get("shadow") or {}
        if entry.get("dry_run") or entry.get("status") not in ("ok", "degraded"):
            continue
        if str(shadow.get("version")) != str(challenger) or "equity" not in shadow:
            continue
        if entry.get("model_name") != name:
            continue
        rows[pd.Timestamp(entry["session"])] = (float(entry["equity"]), float(shadow["equity"]))
    frame = pd.DataFrame.from_dict(rows, orient="index", columns=["champion", "shadow"])
    return challenger, frame.sort_index()


def promote_from_shadow(
    ctx: Context, *, apply: bool = False, broker: str = "paper"
) -> dict[str, Any]:
    """Judge ``@challenger`` on its shadow track against the champion's live track.

    The paired Sharpe test of :func:`~py_finance.tracking.sharpe_difference_test` on the
    two books' daily returns over the same sessions, judged by ``promotion.vs_champion``
    with at least ``promotion.min_shadow_sessions`` returns. With ``apply`` and a pass, the
    challenger becomes ``@champion`` (the decision is tagged on the version and appended to
    ``logs/promotions.jsonl``). Returns the decision and its reasons.
    """
    import dataclasses as dc

    from py_finance.tracking.promotion import PromotionConfig

    cfg = ctx.settings.promotion or PromotionConfig()
    name = ctx.deployment
    tracking.setup(ctx.settings.tracking, ctx.root)
    champion = tracking.get_alias_version(name, tracking.CHAMPION)
    challenger, track = shadow_track(ctx, broker)
    out: dict[str, Any] = {
        "model": name,
        "challenger": challenger,
        "previous_champion": champion,
        "shadow_sessions": len(track),
        "promoted": False,
        "reasons": [],
    }
    if challenger is None or challenger == champion:
        out["reasons"].append("no challenger other than the champion: nothing to promote")
        out["champion"] = champion
        return out
    returns = track.pct_change().dropna()
    test = tracking.sharpe_difference_test(
        returns["shadow"],
        returns["champion"],
        periods_per_year=ctx.settings.backtest.periods_per_year,
    )
    test = dc.replace(test, champion_version=str(champion or ""))
    judged = dc.replace(cfg, min_common_sessions=int(cfg.min_shadow_sessions))
    ok, line = tracking.judge_vs_champion(test, judged)
    out["reasons"].append(f"shadow track {line}")
    out["vs_champion"] = test.as_dict()
    promoted = ok and apply
    if promoted:
        tracking.set_version_tags(
            name,
            challenger,
            {"gate.decision": "promoted", "gate.from_shadow": "; ".join(out["reasons"])},
        )
        tracking.set_alias(name, tracking.CHAMPION, challenger)
    out["promoted"] = promoted
    out["passes"] = ok
    out["champion"] = tracking.get_alias_version(name, tracking.CHAMPION)
    if apply:
        from py_finance.pipeline.evaluation import audit_promotion

        audit_promotion(ctx, {**out, "candidate_version": challenger, "how": "from_shadow"})
    return out
