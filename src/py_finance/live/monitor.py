"""The live track measured against its backtest, and the deployed model watched (``monitor``).

Every run that trades appends a ``monitor`` block to its daily log. Its figures:

- **replay** of the session whose orders the broker filled since the last log: the backtest
  engine (:func:`py_finance.backtest.engine.run_backtest`) starts from the broker's book at
  the decision close (the last log's ``positions`` and ``cash``), trades that log's
  ``target_weights`` with the deployment's fill model and ``backtest.cost_bps``, and gives
  the P&L the backtest would have made with the same book; ``tracking_difference`` is the
  live return minus the replay's, ``cumulative_tracking_difference`` their running sum.
  ``targets_equal`` says the targets the engine traded are the logged ones, exactly.
- **shortfall** of each filled order in bps of the price, signed so that a cost is
  positive: against the modelled fill price (the close, or the open, of the fill session)
  and against the decision close; commission in bps of the filled notional beside it.
- **drift**: population stability index of each feature's cross-section over the last
  ``drift_window`` sessions against the champion's training window (the research feature
  table's last ``reference_sessions`` sessions), in the reference's decile bins; the
  ``top`` drifting features are named. The same for the scores against the walk-forward's
  out-of-sample scores. Each log keeps its session's bin counts, so the window is summed
  from the logs.
- **ic**: the realised rank IC of the scores of the session whose ``h``-session label
  matured at this close, and the rolling means over ``ic_windows`` sessions beside the
  walk-forward's out-of-sample IC and its band (``ic_band_z`` standard deviations of the
  out-of-sample rolling means of the same length).
- **checks** (tracking difference, shortfall above the cost model, feature drift, score
  drift, IC decay), each with its value, threshold and whether it is breached; a check
  alerts the session it is first breached only (``alerts_active`` carries the state from
  log to log), and the readiness gates read the latest checks.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from py_finance.errors import ConfigError
from py_finance.live.config import section_values

log = logging.getLogger(__name__)

FILL_MODELS = ("next_close", "next_open")
CHECKS = ("tracking_difference", "shortfall", "feature_drift", "score_drift", "ic_decay")
_EPS = 1e-4  # PSI smoothing of empty bins


@dataclass(frozen=True, slots=True)
class MonitorSettings:
    """Thresholds and windows of the live monitor (``live.monitor``).

    Parameters
    ----------
    max_tracking_difference
        Cumulative tracking difference (live return minus replay return, summed over
        sessions), as a fraction of equity, at most in absolute value.
    max_shortfall_excess_bps
        Mean cost of the fills (shortfall against the modelled price plus commission,
        notional-weighted over ``shortfall_window`` sessions) may exceed the backtest's
        ``cost_bps`` by this much.
    shortfall_window, min_shortfall_orders
        Sessions in that mean, and the filled orders it needs before it is judged.
    max_feature_psi, max_score_psi
        Population stability index of a feature's (the scores') cross-section over the last
        ``drift_window`` sessions against the reference, at most (0.25: a large shift).
    drift_window, reference_sessions, bins
        Sessions of live rows in the PSI, sessions of the training window it is compared
        with, and bins (quantiles of the reference).
    top_features
        Drifting features named in the log and the alert.
    ic_windows
        Rolling windows (sessions) of the realised IC; the longest is judged for decay.
    min_ic_sessions
        Realised ICs needed before decay is judged (the window is what there is up to
        the longest).
    ic_band_z
        The band is the out-of-sample mean IC +- this many standard deviations of the
        out-of-sample rolling means of the same window; decay is the rolling mean below it.
    """

    max_tracking_difference: float = 0.02
    max_shortfall_excess_bps: float = 5.0
    shortfall_window: int = 20
    min_shortfall_orders: int = 5
    max_feature_psi: float = 0.25
    max_score_psi: float = 0.25
    drift_window: int = 20
    reference_sessions: int = 504
    bins: int = 10
    top_features: int = 5
    ic_windows: tuple[int, ...] = (20, 60)
    min_ic_sessions: int = 20
    ic_band_z: float = 3.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "ic_windows", tuple(int(w) for w in self.ic_windows))
        for name in ("shortfall_window", "drift_window", "reference_sessions", "bins"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"live.monitor.{name} must be >= 1")
        if not self.ic_windows or min(self.ic_windows) < 2:
            raise ConfigError("live.monitor.ic_windows must be windows of >= 2 sessions")
        for name in ("max_tracking_difference", "max_feature_psi", "max_score_psi", "ic_band_z"):
            value = getattr(self, name)
            if not (math.isfinite(float(value)) and float(value) > 0):
                raise ConfigError(f"live.monitor.{name} must be a number > 0, got {value!r}")

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any] | None) -> MonitorSettings:
        """Build from ``live.monitor``; missing keys keep their defaults.

        Raises
        ------
        ConfigError
            An unknown key or a bad value.
        """
        values = section_values(cls, mapping, "live.monitor")
        if "ic_windows" in values:
            values["ic_windows"] = tuple(values["ic_windows"])
        return cls(**values)


# ---------------------------------------------------------------- replay
@dataclass(frozen=True, slots=True)
class Replay:
    """The backtest engine's session from the live book.

    Equity at the decision close (``start``) and after the fill session's trades (``end``),
    the book it ends with, and whether the engine traded the logged targets exactly.
    """

    start: float
    end: float
    weights: dict[str, float]
    targets_equal: bool


def replay_session(
    positions: Mapping[str, float],
    cash: float,
    decision_prices: Mapping[str, float],
    close_prices: Mapping[str, float],
    targets: Mapping[str, float] | None,
    *,
    cost_bps: float,
    fill: str = "next_close",
    open_prices: Mapping[str, float] | None = None,
) -> Replay:
    """Replay one session in the backtest engine from a live book.

    Parameters
    ----------
    positions, cash
        The broker's book at the decision close (shares, account currency).
    decision_prices
        Closes of the decision session (the book is valued there).
    close_prices
        Closes of the fill session: the book is valued there after the trades.
    targets
        Target weights decided at the decision close (held names absent: sold); None when
        the session sent no orders (the book is held).
    cost_bps
        The backtest's cost model, bps of traded notional.
    fill
        The fill model: ``next_close`` trades at ``close_prices``, ``next_open`` at
        ``open_prices`` (the engine's ``backtest.fill``), one session after the decision.
    open_prices
        Opens of the fill session (``next_open`` only).

    Notes
    -----
    The engine starts from cash only, so the book is bought first on a setup row at the
    decision prices with cash ``cash + (1 + c) x book``: it ends holding exactly the live
    shares and ``cash``. The decision row then trades ``targets`` on the fill row.
    """
    from py_finance.backtest.config import BacktestConfig
    from py_finance.backtest.engine import run_backtest

    if fill not in FILL_MODELS:
        raise ConfigError(f"fill model must be one of {FILL_MODELS}, got {fill!r}")
    at_open = fill == "next_open"
    if at_open and open_prices is None:
        raise ConfigError("a next_open replay needs the opens of the fill session")
    fill_prices = open_prices if at_open and open_prices is not None else close_prices
    held = {s: float(q) for s, q in positions.items() if abs(float(q)) > 0}
    names = sorted(set(held) | set(targets or {}))
    names = [s for s in names if s in decision_prices and s in close_prices and s in fill_prices]
    if not names:
        return Replay(float(cash), float(cash), {}, True)
    c = float(cost_bps) / 1e4
    p0 = np.array([float(decision_prices[s]) for s in names], dtype="float64")
    p1 = np.array([float(close_prices[s]) for s in names], dtype="float64")
    o1 = np.array([float(fill_prices[s]) for s in names], dtype="float64")
    shares = np.array([held.get(s, 0.0) for s in names], dtype="float64")
    book = float(np.sum(shares * p0))
    start_cash = float(cash) + (1.0 + c) * book
    day = pd.Timestamp("2000-01-03")
    index = pd.DatetimeIndex([day + pd.Timedelta(days=k) for k in range(3)])
    prices = pd.DataFrame([p0, p0, p1], index=index, columns=names)
    setup = shares * p0 / start_cash if start_cash > 0 else np.zeros(len(names))
    if targets is None:
        decided = np.full(len(names), np.nan)
    else:
        decided = np.array([float(targets.get(s, 0.0)) for s in names], dtype="float64")
    weights = pd.DataFrame(
        [setup, decided, np.full(len(names), np.nan)], index=index, columns=names
    )
    extra: dict[str, Any] = {}
    settings: dict[str, Any] = {}
    if at_open:  # the engine's own fill model (``backtest.fill``)
        settings["fill"] = fill
        extra["opens"] = pd.DataFrame([p0, p0, o1], index=index, columns=names)
    cfg = BacktestConfig(
        execution_lag=1, cost_bps=float(cost_bps), initial_cash=start_cash, **settings
    )
    result = run_backtest(prices, weights, cfg, **extra)
    traded = weights.iloc[1]
    equal = targets is None or all(
        float(traded[s]) == float(v) for s, v in targets.items() if s in traded.index
    )
    end_w = result.weights.iloc[-1]
    return Replay(
        float(result.equity.iloc[1]),
        float(result.equity.iloc[-1]),
        {str(k): float(v) for k, v in end_w.items() if v > 0},
        bool(equal),
    )


def order_shortfall(
    fills: Sequence[Mapping[str, Any]],
    modelled: Mapping[str, float],
    decision: Mapping[str, float],
) -> list[dict[str, Any]]:
    """Implementation shortfall of each filled order, bps of the price (a cost is > 0).

    ``modelled``: the price the fill model assumed per symbol (the fill session's close, or
    open); ``decision``: the decision session's close. Orders that filled nothing, or whose
    symbol has no price, are left out.
    """
    out = []
    for f in fills:
        qty = float(f.get("qty_filled") or 0.0)
        price = float(f.get("price") or 0.0)
        sym = str(f.get("symbol"))
        if qty <= 0 or price <= 0 or sym not in modelled or sym not in decision:
            continue
        sign = 1.0 if f.get("side") == "buy" else -1.0
        model, close = float(modelled[sym]), float(decision[sym])
        notional = qty * price
        out.append(
            {
                "client_order_id": f.get("client_order_id"),
                "symbol": sym,
                "side": f.get("side"),
                "qty": qty,
                "price": price,
                "modelled_price": model,
                "decision_price": close,
                "notional": notional,
                "bps_vs_model": sign * (price - model) / model * 1e4,
                "bps_vs_decision": sign * (price - close) / close * 1e4,
                "commission_bps": float(f.get("commission") or 0.0) / notional * 1e4,
                "cost": sign * (price - model) * qty + float(f.get("commission") or 0.0),
            }
        )
    return out


def _weighted(rows: Sequence[Mapping[str, Any]], key: str) -> float | None:
    total = sum(r["notional"] for r in rows)
    if total <= 0:
        return None
    return float(sum(r[key] * r["notional"] for r in rows) / total)


# ---------------------------------------------------------------- drift
def quantile_edges(values: np.ndarray, bins: int) -> list[float]:
    """Inner bin edges at the reference's quantiles (duplicates dropped)."""
    v = values[np.isfinite(values)]
    if v.size == 0:
        return []
    qs = np.quantile(v, np.linspace(0, 1, bins + 1)[1:-1])
    return sorted({float(q) for q in qs})


def bin_counts(values: np.ndarray, edges: Sequence[float]) -> list[int]:
    """Counts of the finite ``values`` in the bins that ``edges`` (inner edges) make."""
    v = np.asarray(values, dtype="float64")
    v = v[np.isfinite(v)]
    idx = np.searchsorted(np.asarray(edges, dtype="float64"), v, side="right")
    return [int(n) for n in np.bincount(idx, minlength=len(edges) + 1)]


def psi(reference: Sequence[float], counts: Sequence[float]) -> float | None:
    """Population stability index of ``counts`` against the ``reference`` proportions."""
    n = float(sum(counts))
    if n <= 0:
        return None
    ref = np.maximum(np.asarray(reference, dtype="float64"), _EPS)
    cur = np.maximum(np.asarray(counts, dtype="float64") / n, _EPS)
    return float(np.sum((cur - ref) * np.log(cur / ref)))


@dataclass(frozen=True, slots=True)
class Reference:
    """What the live track is compared with.

    The training window's feature bins, the out-of-sample scores' bins and the
    out-of-sample IC per session.
    """

    features: dict[str, dict[str, list[float]]]
    scores: dict[str, list[float]]
    oos_ic: list[float]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON."""
        return {"features": self.features, "scores": self.scores, "oos_ic": self.oos_ic}

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> Reference:
        """From :meth:`to_dict`."""
        return cls(dict(doc["features"]), dict(doc["scores"]), list(doc["oos_ic"]))


def _binned(values: np.ndarray, bins: int) -> dict[str, list[float]]:
    edges = quantile_edges(values, bins)
    counts = np.asarray(bin_counts(values, edges), dtype="float64")
    props = (counts / counts.sum()).tolist() if counts.sum() > 0 else []
    return {"edges": edges, "props": props}


def rank_ic(scores: pd.Series, returns: pd.Series) -> float | None:
    """Spearman rank correlation of ``scores`` and ``returns`` over the names both have."""
    both = pd.concat([scores, returns], axis=1, join="inner").dropna()
    if len(both) < 3:
        return None
    a = both.iloc[:, 0].rank().to_numpy()
    b = both.iloc[:, 1].rank().to_numpy()
    if a.std() == 0 or b.std() == 0:
        return None
    return float(np.corrcoef(a, b)[0, 1])


def build_reference(
    features: pd.DataFrame,
    scores: pd.Series | None,
    ic: Sequence[float],
    *,
    bins: int = 10,
) -> Reference:
    """Bins of each feature column (``(session, symbol)`` rows) and of the scores, and the IC."""
    feats = {str(c): _binned(features[c].to_numpy(dtype="float64"), bins) for c in features.columns}
    score = _binned(scores.to_numpy(dtype="float64"), bins) if scores is not None else {}
    return Reference(feats, score, [float(x) for x in ic if x is not None and math.isfinite(x)])


def oos_ic_series(predictions: pd.DataFrame, labels: pd.DataFrame, column: str) -> pd.Series:
    """Rank IC per session of the walk-forward's scores against their labels."""
    joined = predictions[["score"]].join(labels[[column]], how="inner").dropna()
    out = {}
    for session, rows in joined.groupby(level="session"):
        value = rank_ic(rows["score"], rows[column])
        if value is not None:
            out[session] = value
    return pd.Series(out, dtype="float64").sort_index()


def drift_block(
    reference: Reference,
    today_features: pd.DataFrame | None,
    today_scores: pd.Series | None,
    earlier: Sequence[Mapping[str, Any]],
    settings: MonitorSettings,
) -> dict[str, Any]:
    """Today's bin counts and the window's PSI per feature and of the scores.

    ``earlier``: the ``drift`` blocks of the earlier logs, newest last.
    """
    window = (
        [e for e in earlier if e][-(settings.drift_window - 1) :]
        if settings.drift_window > 1
        else []
    )
    counts: dict[str, list[int]] = {}
    if today_features is not None:
        for name, ref in reference.features.items():
            if name in today_features.columns:
                counts[name] = bin_counts(
                    today_features[name].to_numpy(dtype="float64"), ref["edges"]
                )
    score_counts = None
    if today_scores is not None and reference.scores:
        score_counts = bin_counts(today_scores.to_numpy(dtype="float64"), reference.scores["edges"])

    def summed(name: str, today: list[int] | None, key: str) -> list[int] | None:
        total = None if today is None else np.asarray(today, dtype="float64")
        for e in window:
            past = e.get(key, {}).get(name) if key == "counts" else e.get(key)
            if past is not None and (total is None or len(past) == len(total)):
                total = np.asarray(past, dtype="float64") if total is None else total + past
        return None if total is None else total.tolist()

    psis: dict[str, float] = {}
    for name, ref in reference.features.items():
        total = summed(name, counts.get(name), "counts")
        value = psi(ref["props"], total) if total is not None and ref["props"] else None
        if value is not None:
            psis[name] = value
    score_total = summed("", score_counts, "score_counts")
    score_psi = (
        psi(reference.scores["props"], score_total)
        if score_total is not None and reference.scores.get("props")
        else None
    )
    top = sorted(psis, key=lambda k: -psis[k])[: settings.top_features]
    return {
        "window": len(window) + 1,
        "psi": psis,
        "top": [[k, psis[k]] for k in top],
        "max_psi": max(psis.values()) if psis else None,
        "score_psi": score_psi,
        "counts": counts,
        "score_counts": score_counts,
    }


def ic_block(
    realised: Sequence[float | None], reference: Reference, settings: MonitorSettings
) -> dict[str, Any]:
    """Rolling realised IC (newest last in ``realised``) beside the out-of-sample band."""
    values = np.array([v for v in realised if v is not None and math.isfinite(v)], dtype="float64")
    oos = pd.Series(reference.oos_ic, dtype="float64")
    out: dict[str, Any] = {
        "oos_mean": float(oos.mean()) if len(oos) else None,
        "realised_sessions": int(values.size),
    }
    for window in settings.ic_windows:
        n = min(values.size, window)
        mean = float(values[-n:].mean()) if n else None
        band = None
        if len(oos) > window:
            spread = float(oos.rolling(window).mean().dropna().std())
            band = [
                float(oos.mean()) - settings.ic_band_z * spread,
                float(oos.mean()) + settings.ic_band_z * spread,
            ]
        out[f"rolling_{window}"] = mean
        out[f"band_{window}"] = band
    longest = max(settings.ic_windows)
    n = min(values.size, longest)
    decay = None
    if n >= settings.min_ic_sessions and len(oos) > n:
        spread = float(oos.rolling(n).mean().dropna().std())
        floor = float(oos.mean()) - settings.ic_band_z * spread
        mean = float(values[-n:].mean())
        decay = {"window": n, "mean": mean, "floor": floor, "breached": mean < floor}
    out["decay"] = decay
    return out


# ---------------------------------------------------------------- checks and alerts
def checks(
    monitor: Mapping[str, Any], settings: MonitorSettings, cost_bps: float
) -> dict[str, dict[str, Any]]:
    """Each check's value, threshold and whether it is breached (None: not judged yet)."""
    out: dict[str, dict[str, Any]] = {}
    replay = monitor.get("replay") or {}
    cum = replay.get("cumulative_tracking_difference")
    out["tracking_difference"] = {
        "value": cum,
        "threshold": settings.max_tracking_difference,
        "breached": None if cum is None else abs(cum) > settings.max_tracking_difference,
    }
    sf = monitor.get("shortfall") or {}
    cost = sf.get("window_cost_bps")
    judged = cost is not None and sf.get("window_orders", 0) >= settings.min_shortfall_orders
    out["shortfall"] = {
        "value": cost,
        "threshold": cost_bps + settings.max_shortfall_excess_bps,
        "breached": (
            float(cost) > cost_bps + settings.max_shortfall_excess_bps
            if judged and cost is not None
            else None
        ),
    }
    drift = monitor.get("drift") or {}
    full = drift.get("window", 0) >= settings.drift_window
    top = drift.get("top") or []
    over = [name for name, value in top if value > settings.max_feature_psi]
    out["feature_drift"] = {
        "value": drift.get("max_psi"),
        "threshold": settings.max_feature_psi,
        "breached": (bool(over)) if full and drift.get("max_psi") is not None else None,
        "features": over,
    }
    sp = drift.get("score_psi")
    out["score_drift"] = {
        "value": sp,
        "threshold": settings.max_score_psi,
        "breached": (sp > settings.max_score_psi) if full and sp is not None else None,
    }
    decay = (monitor.get("ic") or {}).get("decay")
    out["ic_decay"] = {
        "value": None if decay is None else decay["mean"],
        "threshold": None if decay is None else decay["floor"],
        "breached": None if decay is None else bool(decay["breached"]),
    }
    return out


def alert_keys(check: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The breached checks as alert keys (a drifting feature is its own key)."""
    keys = []
    for name, c in check.items():
        if not c.get("breached"):
            continue
        if name == "feature_drift":
            keys += [f"feature_drift:{f}" for f in c.get("features") or []]
        else:
            keys.append(name)
    return keys


def new_alerts(keys: Sequence[str], previous: Mapping[str, Any] | None) -> list[str]:
    """Keys breached now and not at the previous log (each breach alerts once)."""
    before = set(((previous or {}).get("monitor") or {}).get("alerts_active") or [])
    return [k for k in keys if k not in before]


def describe_alert(key: str, monitor: Mapping[str, Any]) -> tuple[str, str, str]:
    """``(kind, subject, body)`` of an alert key."""
    check = monitor.get("checks") or {}
    kind = key.split(":", 1)[0]
    c = check.get(kind) or {}
    value, threshold = c.get("value"), c.get("threshold")
    if kind == "feature_drift":
        feature = key.split(":", 1)[1]
        psis = (monitor.get("drift") or {}).get("psi") or {}
        subject = f"feature drift: {feature} (PSI {psis.get(feature, float('nan')):.3f})"
        body = (
            f"PSI of {feature} over the last {monitor['drift']['window']} sessions against the "
            f"training window is {psis.get(feature, float('nan')):.3f} > {threshold:g}; top: "
            + ", ".join(f"{n} {v:.3f}" for n, v in monitor["drift"].get("top") or [])
        )
        return kind, subject, body
    lines = {
        "tracking_difference": (
            f"cumulative tracking difference {value:+.4%} (limit +-{threshold:.2%})"
        ),
        "shortfall": f"fill cost {value:.2f} bps vs model (limit {threshold:.2f} bps)",
        "score_drift": f"score PSI {value:.3f} > {threshold:g}",
        "ic_decay": (
            f"realised rank IC {value:+.4f} below the backtest band's floor {threshold:+.4f}"
        ),
    }
    text = lines.get(kind, kind)
    return kind, text, text


# ---------------------------------------------------------------- from the logs
def monitor_session(
    *,
    previous: Mapping[str, Any] | None,
    today: Mapping[str, Any],
    fills: Sequence[Mapping[str, Any]],
    decision_prices: Mapping[str, float],
    fill_prices: Mapping[str, float],
    close_prices: Mapping[str, float],
    cost_bps: float,
    fill: str,
    earlier: Sequence[Mapping[str, Any]],
    reference: Reference | None,
    today_features: pd.DataFrame | None,
    today_scores: pd.Series | None,
    realised_ic: float | None,
    ic_session: dt.date | None,
    settings: MonitorSettings,
) -> dict[str, Any]:
    """The ``monitor`` block of ``today``'s log (see the module docstring).

    ``previous`` is the log of the decision session (its book, targets and equity);
    ``fills`` the broker's states of its orders known now; ``decision_prices`` its closes,
    ``fill_prices`` what the fill model trades at in today's session, ``close_prices``
    today's closes (the book is valued there, as the broker marks it). ``earlier``: the
    ``monitor`` blocks of earlier logs, oldest first.
    """
    block: dict[str, Any] = {"fill_model": fill, "cost_bps": float(cost_bps)}
    prev_monitor = [e for e in earlier if e]
    last_cum = next(
        (
            (e.get("replay") or {}).get("cumulative_tracking_difference")
            for e in reversed(prev_monitor)
            if (e.get("replay") or {}).get("cumulative_tracking_difference") is not None
        ),
        0.0,
    )
    if previous is not None and previous.get("positions") is not None:
        planned = previous.get("plan") in ("new", "resize", "resumed") and previous.get("orders")
        targets = previous.get("target_weights") if planned else None
        # The book trades at the fill model's prices, then is valued at today's closes.
        rep = replay_session(
            previous.get("positions") or {},
            float(previous.get("cash") or 0.0),
            decision_prices,
            close_prices,
            targets,
            cost_bps=cost_bps,
            fill=fill,
            open_prices=fill_prices if fill == "next_open" else None,
        )
        end = rep.end
        start_live = float(previous.get("equity") or 0.0)
        live_end = float(today.get("equity") or 0.0)
        live_pnl = live_end - start_live
        replay_pnl = end - rep.start
        td = (live_pnl - replay_pnl) / start_live if start_live > 0 else None
        block["replay"] = {
            "decision_session": previous.get("session"),
            "targets_equal": rep.targets_equal,
            "traded": targets is not None,
            "live_start": start_live,
            "replay_start": rep.start,
            "live_equity": live_end,
            "replay_equity": end,
            "live_pnl": live_pnl,
            "replay_pnl": replay_pnl,
            "tracking_difference": td,
            "cumulative_tracking_difference": None if td is None else float(last_cum or 0) + td,
        }
    rows = order_shortfall(fills, fill_prices, decision_prices)
    window_rows = (
        [
            r
            for e in prev_monitor[-(settings.shortfall_window - 1) :]
            for r in (e.get("shortfall") or {}).get("orders") or []
        ]
        if settings.shortfall_window > 1
        else []
    )
    window_rows = [*window_rows, *rows]
    block["shortfall"] = {
        "orders": rows,
        "bps_vs_model": _weighted(rows, "bps_vs_model"),
        "bps_vs_decision": _weighted(rows, "bps_vs_decision"),
        "commission_bps": _weighted(rows, "commission_bps"),
        "cost": float(sum(r["cost"] for r in rows)),
        "cumulative_cost": float(
            sum((e.get("shortfall") or {}).get("cost") or 0.0 for e in prev_monitor)
            + sum(r["cost"] for r in rows)
        ),
        "window_orders": len(window_rows),
        "window_cost_bps": (
            None
            if not window_rows
            else float(
                sum((r["bps_vs_model"] + r["commission_bps"]) * r["notional"] for r in window_rows)
                / sum(r["notional"] for r in window_rows)
            )
        ),
    }
    if reference is not None:
        block["drift"] = drift_block(
            reference,
            today_features,
            today_scores,
            [e.get("drift") or {} for e in prev_monitor],
            settings,
        )
        realised = [(e.get("ic") or {}).get("value") for e in prev_monitor]
        ic = ic_block([*realised, realised_ic], reference, settings)
        ic.update(value=realised_ic, session=ic_session)
        block["ic"] = ic
    block["checks"] = checks(block, settings, cost_bps)
    block["alerts_active"] = alert_keys(block["checks"])
    return block


def write_reference(path: Path, reference: Reference) -> None:
    """Cache a reference as JSON (temp file + rename)."""
    from py_finance.io import write_json

    write_json(reference.to_dict(), path)


def read_reference(path: Path) -> Reference | None:
    """A cached reference, or None."""
    if not path.is_file():
        return None
    try:
        return Reference.from_dict(json.loads(path.read_text()))
    except (ValueError, KeyError):
        return None


# ---------------------------------------------------------------- the loop's step
def reference_path(ctx: Any, version: str) -> Path:
    """Cached reference of the deployment's ``version``."""
    folder = ctx.root / ctx.settings.live.state_dir / "monitor"
    return folder / f"{ctx.deployment}-v{version}.reference.json"


def champion_reference(ctx: Any, version: str, settings: MonitorSettings) -> Reference | None:
    """The reference of the champion ``version``: built once from the research outputs.

    Features: the feature table's last ``reference_sessions`` sessions (the end of the
    training window); scores and IC: the walk-forward's out-of-sample predictions against
    their labels. None when the research outputs are not there.
    """
    from py_finance.io import read_parquet

    path = reference_path(ctx, version)
    cached = read_reference(path)
    if cached is not None:
        return cached
    feats_path = ctx.path("features", "features.parquet")
    preds_path = ctx.model_dir() / "predictions.parquet"
    labels_path = ctx.path("features", f"labels_h{ctx.horizon}.parquet")
    if not (feats_path.exists() and preds_path.exists() and labels_path.exists()):
        return None
    feats = read_parquet(feats_path, stage=ctx.dvc_stage("features"))
    days = feats.index.get_level_values("session").unique().sort_values()
    feats = feats[
        feats.index.get_level_values("session") >= days[-settings.reference_sessions :][0]
    ]
    preds = read_parquet(preds_path, stage=ctx.dvc_stage("train"))
    labels = read_parquet(labels_path, stage=ctx.dvc_stage("labels"))
    column = ctx.settings.labels.column
    ic = oos_ic_series(preds, labels, column)
    reference = build_reference(feats, preds["score"], ic.tolist(), bins=settings.bins)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_reference(path, reference)
    return reference


def _prices(frame: pd.DataFrame, at: pd.Timestamp) -> dict[str, float]:
    if at not in frame.index:
        return {}
    row = frame.loc[at]
    assert isinstance(row, pd.Series)
    return {str(k): float(v) for k, v in row.dropna().items() if float(v) > 0}


def _earlier(log_dir: Path, session: dt.date, n: int) -> list[dict[str, Any]]:
    """The ``monitor`` blocks of the last ``n`` traded logs before ``session``, oldest first."""
    from py_finance.live.daily_log import logged_sessions, read_daily_log

    out = []
    for day in sorted(logged_sessions(log_dir), reverse=True):
        if day >= session:
            continue
        try:
            entry = read_daily_log(log_dir, day)
        except Exception:  # a corrupt old log: the monitor reads what it can
            continue
        if entry.get("dry_run") or entry.get("status") not in ("ok", "degraded"):
            continue
        out.append(entry.get("monitor") or {})
        if len(out) >= n:
            break
    return out[::-1]


def monitor_day(
    ctx: Any,
    payload: Mapping[str, Any],
    previous: Mapping[str, Any] | None,
    history: pd.DataFrame,
    info: Any,
    log_dir: Path,
) -> dict[str, Any]:
    """The ``monitor`` block of the loop's day (read from the store and the logs).

    ``payload``: today's record (equity, scores, settled fills); ``previous``: the last
    traded log (the decision session of the orders filled since); ``history``: closes
    known now, up to today.
    """
    from py_finance.live.daily_log import read_daily_log, to_jsonable

    s = ctx.settings
    settings = MonitorSettings.from_mapping(getattr(s.live, "monitor", None))
    fill = str(getattr(s.backtest, "fill", "next_close"))
    session: dt.date = info.session
    today = pd.Timestamp(session)
    closes = _prices(history, today)
    decision = _prices(history, pd.Timestamp(previous["session"])) if previous else {}
    fill_prices = closes
    if fill == "next_open":
        opens = ctx.store.wide("open", list(history.columns), today, today, info.as_of)
        fill_prices = _prices(opens, today)
    fills = [
        f
        for f in to_jsonable([*(payload.get("settled") or []), *(payload.get("fills") or [])])
        if previous is not None
        # Orders of the decision session (their ids start pf-YYYYMMDD-).
        and str(f.get("client_order_id", "")).startswith(
            f"pf-{pd.Timestamp(previous['session']):%Y%m%d}-"
        )
    ]
    version = str(payload.get("model_version"))
    reference = champion_reference(ctx, version, settings)
    feats = None
    if reference is not None:
        from py_finance.pipeline.research import feature_frame

        lookback = s.features.lookback + 40
        start = history.index[-lookback] if lookback < len(history) else None
        frame = feature_frame(ctx, start, session, info.as_of)
        on_day = frame.index.get_level_values("session") == today
        feats = frame[on_day].droplevel("session") if on_day.any() else None
    # The label of the session h + 1 sessions back matured at this close.
    h = int(ctx.horizon)
    matured: dict[str, Any] = {}
    label = None
    if len(history.index) > h + 1:
        d = history.index[-(h + 2)]
        label = history.iloc[-1] / history.iloc[-(h + 1)] - 1.0
        try:
            matured = read_daily_log(log_dir, d.date())
        except Exception:  # no log of that session
            matured = {}
        matured["_session"] = d.date()

    def realised(scores: Mapping[str, Any] | None) -> tuple[float | None, dt.date | None]:
        if not scores or label is None:
            return None, None
        return rank_ic(pd.Series(scores, dtype="float64"), label), matured["_session"]

    earlier = _earlier(
        log_dir,
        session,
        max(settings.drift_window, settings.shortfall_window, max(settings.ic_windows)),
    )
    scores = pd.Series(payload.get("scores") or {}, dtype="float64")
    ic_value, ic_session = realised(matured.get("scores"))
    block = monitor_session(
        previous=previous,
        today=payload,
        fills=fills,
        decision_prices=decision,
        fill_prices=fill_prices,
        close_prices=closes,
        cost_bps=float(s.backtest.cost_bps),
        fill=fill,
        earlier=earlier,
        reference=reference,
        today_features=feats,
        today_scores=scores if len(scores) else None,
        realised_ic=ic_value,
        ic_session=ic_session,
        settings=settings,
    )
    shadow = payload.get("shadow") or {}
    if "equity" in shadow:
        # The challenger's book, replayed and watched alike (its checks are logged, not
        # alerted: they judge a model that does not trade).
        before = (previous or {}).get("shadow") or {}
        same = str(before.get("version")) == str(shadow.get("version"))
        prev_book = None
        if previous is not None and same and "positions" in before:
            sent = bool(before.get("rebalance_due") and before.get("orders"))
            prev_book = {
                **before,
                "session": previous["session"],
                "plan": "new" if sent else "none",
            }
        s_scores = pd.Series(shadow.get("scores") or {}, dtype="float64")
        s_ic, s_ic_session = realised((matured.get("shadow") or {}).get("scores"))
        block["shadow"] = monitor_session(
            previous=prev_book,
            today=shadow,
            fills=[],
            decision_prices=decision,
            fill_prices=fill_prices,
            close_prices=closes,
            cost_bps=float(s.backtest.cost_bps),
            fill=fill,
            earlier=[e.get("shadow") or {} for e in earlier],
            reference=champion_reference(ctx, str(shadow.get("version")), settings),
            today_features=feats,
            today_scores=s_scores if len(s_scores) else None,
            realised_ic=s_ic,
            ic_session=s_ic_session,
            settings=settings,
        )
        block["shadow"]["version"] = shadow.get("version")
    return block


def monitor_alerts(
    alerter: Any, payload: Mapping[str, Any], previous: Mapping[str, Any] | None
) -> list[str]:
    """Send each check breached today and not at the previous log, once; return their keys."""
    from py_finance.live.alerts import Alert

    block = payload.get("monitor") or {}
    keys = new_alerts(block.get("alerts_active") or [], previous)
    for key in keys:
        kind, subject, body = describe_alert(key, block)
        session = payload.get("session")
        alerter.send(Alert(kind, f"{session}: {subject}", body, "warning", session))
    return keys


def log_monitor_track(
    ctx: Any, broker_name: str, payload: Mapping[str, Any], log_dir: Path
) -> None:
    """The day's monitor figures in MLflow (``<experiment>-monitor``).

    One run per deployed version and broker, step = the session, with the live-vs-replay
    chart refreshed each day (it ends at ``payload``'s session, whose log is not written yet).
    """
    from py_finance import tracking
    from py_finance.live.daily_log import day_with_run

    block = payload.get("monitor") or {}
    replay = block.get("replay") or {}
    sf = block.get("shortfall") or {}
    drift = block.get("drift") or {}
    ic = block.get("ic") or {}
    experiment = f"{ctx.settings.tracking.experiment}-monitor"
    track = f"{broker_name}-{payload['model_name']}-v{payload['model_version']}"
    metrics = {
        "live_equity": replay.get("live_equity"),
        "replay_equity": replay.get("replay_equity"),
        "tracking_difference": replay.get("tracking_difference"),
        "cumulative_tracking_difference": replay.get("cumulative_tracking_difference"),
        "shortfall_bps_vs_model": sf.get("bps_vs_model"),
        "shortfall_bps_vs_decision": sf.get("bps_vs_decision"),
        "cumulative_shortfall": sf.get("cumulative_cost"),
        "max_feature_psi": drift.get("max_psi"),
        "score_psi": drift.get("score_psi"),
        "realised_ic": ic.get("value"),
        **{f"ic_rolling_{w}": ic.get(f"rolling_{w}") for w in (20, 60)},
    }
    step = int(pd.Timestamp(payload["session"]).strftime("%Y%m%d"))
    tags = {
        "model": str(payload["model_name"]),
        "version": str(payload["model_version"]),
        "broker": broker_name,
    }
    run_id = tracking.log_track(experiment, track, metrics, step, tags)
    from py_finance.live.report import track_frame, tracking_figure
    from py_finance.tracking.runs import log_track_figure

    session = pd.Timestamp(payload["session"]).date()
    frame = track_frame(log_dir, today=day_with_run(log_dir, session, payload))
    if len(frame):
        import matplotlib.pyplot as plt

        fig = tracking_figure(frame)
        try:
            log_track_figure(run_id, fig, "monitor/live_vs_replay.png")
        finally:
            plt.close(fig)


def log_report(ctx: Any, broker_name: str, last: Mapping[str, Any], files: Sequence[Path]) -> str:
    """Log the report's files to the monitor track of the version that traded ``last``."""
    from py_finance import tracking
    from py_finance.tracking.runs import log_track_file

    tracking.setup(ctx.settings.tracking, ctx.root)
    experiment = f"{ctx.settings.tracking.experiment}-monitor"
    track = f"{broker_name}-{last['model_name']}-v{last['model_version']}"
    tags = {
        "model": str(last["model_name"]),
        "version": str(last["model_version"]),
        "broker": broker_name,
    }
    step = int(pd.Timestamp(last["session"]).strftime("%Y%m%d"))
    run_id = tracking.log_track(experiment, track, {}, step, tags)
    for path in files:
        log_track_file(run_id, path, "report")
    return run_id
