"""Evaluation stages: backtest -> report -> promote.

The backtest covers the out-of-sample period of the walk-forward predictions. Three
curves: Baseline (top-k, no overlays), Regime-Aware (all configured overlays: caps,
regime exposure, drawdown throttle) and the benchmark's buy-and-hold. Each strategy
backtest is an MLflow run tagged with its research question and trial (the ledger the
promotion gate counts); the Regime-Aware run also logs the final model. Only the promote
stage registers it, as a version of its deployment ``py-finance-<universe>-h{h}`` carrying
the resolved config it was evaluated with; it becomes ``@challenger`` when it passes the gate
and ``@champion`` only by a deliberate promotion (:func:`promote`).

Metric conventions (metrics.json, MLflow and the results table use the same names): returns,
drawdowns, volatility and exposure are fractions of 1 (``cagr`` 0.071 is 7.1% a year,
``total_return`` 6.2 is +620%, ``max_drawdown`` -0.32 is -32%); ``sharpe`` and ``sortino``
are annualised ratios; ``turnover`` is annual one-way turnover in multiples of equity;
``psr`` and ``dsr`` are probabilities, ``dsr`` deflated for ``n_trials`` trials of the
research question; ``rank_ic``/``ic`` are out-of-sample correlations.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import pickle
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from py_finance import tracking
from py_finance.backtest.engine import BacktestResult, buy_and_hold, run_backtest
from py_finance.backtest.metrics import compute_metrics
from py_finance.config import flatten, resolved_config
from py_finance.data.store import membership_mask, tradable_mask
from py_finance.errors import DataError, PyFinanceError
from py_finance.io import read_parquet, write_json, write_parquet, write_text
from py_finance.pipeline.context import Context
from py_finance.pipeline.research import prices
from py_finance.risk.targets import NO_RISK, target_weights
from py_finance.tracking.promotion import candidate_returns

log = logging.getLogger(__name__)

VARIANTS = ("baseline", "regime_aware")
PREDICTIONS_ARTIFACT = "predictions.parquet"
LABELS = {
    "baseline": "Baseline",
    "regime_aware": "Regime-Aware",
    "benchmark": "SPY B&H*",
    "equal_weight": "EW universe",
}
REGIME_COLOURS = {
    "bull_low_vol": "#d9f0d3",
    "bull_high_vol": "#fee8c8",
    "bear_low_vol": "#deebf7",
    "bear_high_vol": "#fcbba1",
}
SURVIVORSHIP_CAVEAT = (
    "Survivorship bias: the bundled universe is 20 large caps that survived to 2022, chosen "
    "with hindsight; every strategy number here is inflated by that choice."
)


def _read(path: Path, what: str) -> pd.DataFrame:
    if not path.exists():
        raise DataError(f"{path} not found: run the {what} stage first (`dvc repro {what}`)")
    return read_parquet(path, stage=what)


def _plot(equity: pd.DataFrame, title: str) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 5))
    for col in equity.columns:
        ax.plot(equity.index, equity[col], label=LABELS.get(col, col), linewidth=1)
    ax.set_yscale("log")
    ax.set_title(title)
    ax.set_ylabel("growth of 1 (log scale)")
    ax.legend(loc="upper left")  # "best" tests every point: seconds on a 30-year curve
    ax.grid(alpha=0.3)
    # Fixed margins: tight_layout measures every tick label (a second per 30-year chart).
    fig.subplots_adjust(left=0.07, right=0.98, top=0.93, bottom=0.08)
    return fig


def _shade_regimes(ax: Any, regimes: pd.Series) -> None:
    """Colour the background of ``ax`` by regime (one span per run of equal regimes)."""
    import matplotlib.dates as mdates

    if regimes.empty:
        return
    values = regimes.astype(str)
    change = values.ne(values.shift()).to_numpy()
    starts = [*values.index[change], values.index[-1]]
    labels = list(values[change])
    # One collection per regime (not one patch per run of sessions: a 30-year chart has
    # thousands of runs, and each patch is laid out and drawn on its own).
    spans: dict[str, list[tuple[float, float]]] = {}
    for lo, hi, reg in zip(starts[:-1], starts[1:], labels, strict=True):
        if reg in REGIME_COLOURS:
            a, b = mdates.date2num(lo), mdates.date2num(hi)
            spans.setdefault(reg, []).append((a, b - a))
    for reg, ranges in spans.items():
        ax.broken_barh(
            ranges,
            (0, 1),
            transform=ax.get_xaxis_transform(),
            facecolors=REGIME_COLOURS[reg],
            alpha=0.5,
            linewidth=0,
        )


def _log_and_close(fig: Any, name: str) -> None:
    """Log a figure to the active run and free it (pyplot keeps every open figure)."""
    import matplotlib.pyplot as plt

    try:
        tracking.log_figure(fig, name)
    finally:
        plt.close(fig)


def backtest_figure(
    curve: pd.Series,
    benchmark: pd.Series,
    result: BacktestResult,
    regimes: pd.Series | None,
    title: str,
) -> Any:
    """Equity vs benchmark (log scale, regime-shaded), drawdown, exposure and throttle state."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    fig, axes = plt.subplots(
        3, 1, figsize=(11, 8), sharex=True, gridspec_kw={"height_ratios": [3, 1.2, 1.2]}
    )
    ax = axes[0]
    if regimes is not None:
        _shade_regimes(ax, regimes.reindex(curve.index).ffill().dropna())
    ax.plot(curve.index, curve, label=curve.name, linewidth=1)
    ax.plot(benchmark.index, benchmark, label=str(benchmark.name), linewidth=1, color="black")
    ax.set_yscale("log")
    ax.set_ylabel("growth of 1 (log)")
    handles, _ = ax.get_legend_handles_labels()
    if regimes is not None:
        handles += [Patch(color=c, alpha=0.5, label=r) for r, c in REGIME_COLOURS.items()]
    ax.legend(handles=handles, fontsize=7, ncol=3, loc="upper left")
    ax.set_title(title)
    dd = curve / curve.cummax() - 1.0
    axes[1].fill_between(dd.index, dd.to_numpy(), 0.0, color="tab:red", alpha=0.4)
    axes[1].set_ylabel("drawdown")
    axes[2].plot(result.exposure.index, result.exposure, linewidth=0.8, label="gross exposure")
    codes = result.states.map({"ACTIVE": 0.0, "REDUCING": 0.5, "HALTED": 1.0})
    axes[2].fill_between(
        codes.index,
        0.0,
        codes.to_numpy(dtype=float),
        step="post",
        color="tab:orange",
        alpha=0.3,
        label="throttle (REDUCING 0.5, HALTED 1)",
    )
    axes[2].set_ylabel("exposure / state")
    axes[2].legend(fontsize=7, loc="upper left")
    for a in axes:
        a.grid(alpha=0.3)
    fig.subplots_adjust(left=0.08, right=0.98, top=0.95, bottom=0.05, hspace=0.08)
    return fig


def backtest_report(
    name: str, metrics: dict[str, Any], period: dict[str, str], caveat: bool, notes: str = ""
) -> str:
    """Markdown report of one backtest run (logged as ``report.md``)."""
    rows = [f"| {k} | {v:.4g} |" for k, v in metrics.items() if isinstance(v, int | float)]
    return "\n".join(
        [
            f"# Backtest: {name}",
            "",
            f"Period {period['start']} to {period['end']}.",
            "",
            "| metric | value |",
            "|---|---|",
            *rows,
            "",
            SURVIVORSHIP_CAVEAT if caveat else "",
            "",
            notes,
            "",
        ]
    )


def equal_weight_targets(prices: pd.DataFrame, every: int) -> pd.DataFrame:
    """Equal weights over the names with a price, on rebalance rows (NaN rows hold)."""
    has = prices.notna() & (prices > 0)
    w = has.div(has.sum(axis=1).replace(0, 1), axis=0).astype("float64")
    w[np.arange(len(w)) % every != 0] = np.nan
    return w


def research_question(ctx: Context) -> str:
    """The research question a backtest of ``ctx`` answers: data snapshot, universe, horizon."""
    return tracking.research_question(ctx.store.fingerprint(), ctx.store.symbols(), ctx.horizon)


def _trial_params(ctx: Context, variant: str) -> dict[str, Any]:
    """The params a variant's run logs (and its trial identity is hashed from)."""
    params = flatten(ctx.settings.raw)
    if variant == "baseline":
        params = {k: v for k, v in params.items() if not k.startswith(("risk.", "regime_policy."))}
    return {**params, "variant": variant}


def held_every_name(weights: pd.DataFrame, scores: pd.DataFrame) -> bool:
    """True when every scored name is held on every rebalance: the model cannot matter."""
    rows = weights.notna().any(axis=1)
    if not rows.any():
        return False
    held = (weights[rows].fillna(0.0) > 0.0).sum(axis=1)
    scored = scores[rows].notna().sum(axis=1)
    return bool((held >= scored).all())


def backtest(ctx: Context, *, log_model: bool = True) -> dict[str, Any]:
    """Backtest Baseline and Regime-Aware on out-of-sample scores; log them to MLflow.

    Every variant is a run tagged with the research question and its trial key, whether it
    finished or failed; ``dsr`` in the metrics is the promotion gate's, deflated for the
    trials the ledger holds for the question after this backtest (``n_trials`` beside it).
    ``log_model`` logs the final model in the Regime-Aware run (for the promote stage to
    register); sweeps leave it out.
    """
    question = research_question(ctx)
    try:
        return _backtest(ctx, question, log_model=log_model)
    except Exception as exc:
        _record_failure(ctx, question, exc)
        raise


def _record_failure(ctx: Context, question: str, exc: BaseException) -> None:
    """Log one FAILED run per variant: a crashed configuration is still a trial."""
    try:
        s = ctx.settings
        tracking.setup(s.tracking, ctx.root)
        for variant in VARIANTS:
            params = _trial_params(ctx, variant)
            tags = {
                **tracking.trial_tags(question, params, variant),
                "error": f"{type(exc).__name__}: {exc}"[:5000],
            }
            tracking.record_failed_run(f"backtest-h{ctx.horizon}-{variant}", params, tags)
    except Exception:  # the original error matters more than the ledger entry
        log.exception("could not record the failed backtest in the trial ledger")


@dataclasses.dataclass(frozen=True, slots=True)
class Market:
    """What a strategy over the predictions' sessions trades on (read once from the store).

    ``prices`` from the first predicted session; ``returns`` into each close from the whole
    stored history (lookbacks before the start); ``members`` the point-in-time universe;
    ``tradable`` the members a decision at t may buy or hold (not those whose exit, known at
    t, comes by the fill: :func:`~py_finance.data.store.tradable_mask`); ``sectors`` of the
    day; ``regimes`` of the regimes stage.
    """

    prices: pd.DataFrame
    returns: pd.DataFrame
    members: pd.DataFrame
    tradable: pd.DataFrame
    delistings: pd.DataFrame
    sectors: pd.Series | pd.DataFrame
    regimes: pd.Series
    # The opens on the prices' grid where backtest.fill is next_open (None: fills at closes).
    opens: pd.DataFrame | None = None


def opens_on(ctx: Context, px: pd.DataFrame) -> pd.DataFrame | None:
    """Opens on ``px``'s grid (the adjusted-close basis) when ``backtest.fill`` is next_open.

    None when the fills are at the closes; all-NaN when the store has no opens (the bundled
    data), which the backtest refuses in one line.
    """
    if ctx.settings.backtest.fill != "next_open" or px.empty:
        return None
    from py_finance.features.registry import adjusted_panel

    data = ctx.settings.data
    symbols = list(data.symbols) if data.symbols else None
    first, last = px.index[0].date(), px.index[-1].date()
    opens = adjusted_panel(ctx.store, symbols, first, last, ctx.as_of).get("open")
    return (opens if opens is not None else pd.DataFrame()).reindex(
        index=px.index, columns=px.columns
    )


def market(ctx: Context, start: pd.Timestamp) -> Market:
    """The store's market from session ``start`` on, as the backtest stage trades it."""
    px = prices(ctx)
    rets = px.pct_change(fill_method=None)
    regimes = _read(ctx.path("features", "regimes.parquet"), ctx.dvc_stage("regimes"))["regime"]
    px = px.loc[start:]
    # Survivorship-free: only the members of the universe at t can be bought at t, and not
    # on their last member session (the exit is known at that close), a held name that
    # delists is paid out at its delisting return, sectors are those of the day.
    spells = ctx.store.membership(ctx.as_of)
    return Market(
        prices=px,
        returns=rets,
        members=membership_mask(spells, px.index, px.columns),
        tradable=tradable_mask(
            spells,
            px.index,
            px.columns,
            ctx.settings.backtest.execution_lag,
            ctx.settings.data.calendar,
        ),
        delistings=ctx.store.delistings(ctx.as_of),
        sectors=sectors_by_session(ctx.store.sector_history(ctx.as_of), px.index, px.columns),
        regimes=regimes,
        opens=opens_on(ctx, px),
    )


def scores_on(m: Market, preds: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """Scores (tradable members only) and their predictive std, on ``m``'s grid."""
    px = m.prices
    scores = preds["score"].unstack("symbol").reindex(index=px.index, columns=px.columns)
    # Predictive std of models that give one (MC dropout), for uncertainty-aware weighting.
    std = (
        preds["std"].unstack("symbol").reindex(index=px.index, columns=px.columns)
        if "std" in preds.columns
        else None
    )
    return scores.where(m.tradable), std


def variant_weights(
    m: Market, s: Any, scores: pd.DataFrame, std: pd.DataFrame | None, variant: str
) -> pd.DataFrame:
    """Target weights of a variant: ``baseline`` (top-k, no overlays) or ``regime_aware``."""
    if variant == "baseline":
        # The same construction (uncertainty weighting included), no overlays.
        return target_weights(
            scores, portfolio=s.portfolio, risk=NO_RISK, returns=m.returns, uncertainty=std
        )
    return target_weights(
        scores,
        portfolio=s.portfolio,
        risk=s.risk,
        sectors=m.sectors,
        regimes=m.regimes,
        policy=s.regime_policy,
        returns=m.returns,
        uncertainty=std,
        periods_per_year=s.backtest.periods_per_year,
    )


def variant_backtest(m: Market, s: Any, weights: pd.DataFrame, variant: str) -> BacktestResult:
    """The cash-account backtest of a variant's weights (the throttle for ``regime_aware``)."""
    risk = s.risk if variant == "regime_aware" else None
    return run_backtest(
        m.prices, weights, s.backtest, risk=risk, delistings=m.delistings, opens=m.opens
    )


def _backtest(ctx: Context, question: str, *, log_model: bool) -> dict[str, Any]:
    s = ctx.settings
    index = prices(ctx, table="benchmark").iloc[:, 0]
    preds = _read(ctx.model_dir() / "predictions.parquet", ctx.dvc_stage("train"))
    start = preds.index.get_level_values("session").min()
    m = market(ctx, start)
    px, members, delistings, regimes = m.prices, m.members, m.delistings, m.regimes
    scores, std = scores_on(m, preds)
    weights = {v: variant_weights(m, s, scores, std, v) for v in VARIANTS}
    model_matters = not held_every_name(weights["baseline"], scores)
    if not model_matters:
        log.warning(
            "every scored name is held on every rebalance (top_k %d): the model's scores "
            "cannot change the book, so these results do not depend on the model; lower "
            "portfolio.top_k or widen the universe",
            s.portfolio.top_k,
        )
    results: dict[str, BacktestResult] = {
        v: variant_backtest(m, s, weights[v], v) for v in VARIANTS
    }
    ew = run_backtest(
        px,
        equal_weight_targets(px.where(m.tradable), s.portfolio.rebalance_every),
        s.backtest,
        delistings=delistings,
        opens=m.opens,
    )
    bench = buy_and_hold(index.loc[start:], start)
    bench_rets = bench.pct_change().fillna(0.0)
    ppy = s.backtest.periods_per_year
    metrics: dict[str, Any] = {
        name: compute_metrics(
            res.returns,
            turnover=res.turnover,
            periods_per_year=ppy,
            exposure=res.exposure,
            benchmark=bench_rets.reindex(res.returns.index),
        )
        for name, res in results.items()
    }
    metrics["benchmark"] = compute_metrics(bench_rets, periods_per_year=ppy)
    metrics["equal_weight"] = compute_metrics(
        ew.returns, turnover=ew.turnover, periods_per_year=ppy, exposure=ew.exposure
    )
    for name, res in (*results.items(), ("equal_weight", ew)):
        metrics[name].update(delisting_metrics(res))
    metrics["universe"] = {
        "names": int(members.any(axis=0).sum()),
        "mean_members": float(members.sum(axis=1).mean()) if len(members) else 0.0,
        "delistings": int(
            ((delistings["date"] > px.index[0]) & (delistings["date"] <= px.index[-1])).sum()
        ),
    }
    skill = json.loads((ctx.model_dir() / "skill.json").read_text())
    store_meta = ctx.store.meta()
    metrics["period"] = {
        "start": px.index[0].date().isoformat(),
        "end": px.index[-1].date().isoformat(),
    }
    metrics["skill"] = {k: skill[k] for k in ("oos_ic", "oos_rank_ic", "oos_icir")}
    metrics["survivorship_biased"] = bool(store_meta.get("survivorship_biased", True))
    metrics["model_matters"] = model_matters
    metrics["question"] = question

    out = ctx.backtest_dir()
    equity = pd.DataFrame(
        {
            "baseline": results["baseline"].equity / s.backtest.initial_cash,
            "regime_aware": results["regime_aware"].equity / s.backtest.initial_cash,
            "benchmark": bench.reindex(px.index),
            "equal_weight": ew.equity / s.backtest.initial_cash,
        }
    )
    equity.index.name = "session"
    states = results["regime_aware"].states.value_counts().to_dict()
    metrics["regime_aware_states"] = {str(k): int(v) for k, v in states.items()}

    runs = _track(ctx, question, results, weights, metrics, equity, skill, regimes, log_model)
    _deflate(ctx, question, metrics, equity, runs)

    write_parquet(equity, out / "equity.parquet")
    held = results["regime_aware"].weights
    write_parquet(held.astype("float64"), out / "weights.parquet")
    fig = _plot(equity, f"Growth of 1, out of sample (h={ctx.horizon}, {s.model_name})")
    _save_png(fig, out / "plots" / "equity.png")
    write_json(
        {
            "name": ctx.deployment,
            "question": question,
            "trial_key": tracking.trial_tags(
                question, _trial_params(ctx, "regime_aware"), "regime_aware"
            )[tracking.TRIAL_TAG],
            "variant": "regime_aware",
        },
        out / "model_ref.json",
    )
    write_json(metrics, out / "metrics.json")
    write_json({"model": s.model_name, **summary(metrics)}, out / "summary.json")
    return metrics


def delisting_metrics(result: BacktestResult) -> dict[str, float]:
    """How many held names delisted and what it cost.

    ``delisting_cost`` adds up each delisting's loss (or gain) as a fraction of the equity
    at the close before it: -0.02 is two percent of the account lost to delistings.
    """
    d = result.delisted
    if d.empty:
        return {"delistings_held": 0.0, "delisting_cost": 0.0}
    before = result.equity.shift(1).reindex(pd.DatetimeIndex(d["date"])).to_numpy()
    return {
        "delistings_held": float(len(d)),
        "delisting_cost": float(np.nansum(d["cost"].to_numpy() / before)),
    }


def sectors_by_session(
    history: pd.DataFrame, sessions: pd.Index, symbols: pd.Index
) -> pd.Series | pd.DataFrame:
    """The sector of each name at each session from point-in-time labels.

    ``history`` is :meth:`Store.sector_history` (``from`` NaT: a label for all history).
    Returns a Series (one sector per symbol) when no label changes inside ``sessions``,
    else a ``session x symbol`` frame of labels.
    """
    cols = [str(c) for c in symbols]
    hist = history[history["symbol"].isin(cols)]
    dated = hist[hist["from"].notna()]
    first = pd.Timestamp(sessions[0]) if len(sessions) else pd.Timestamp.max
    if dated.empty or (dated.groupby("symbol")["from"].max() <= first).all():
        latest = hist.sort_values(["symbol", "from"], na_position="first")
        latest = latest[latest["from"].isna() | (latest["from"] <= first)]
        static = latest.drop_duplicates("symbol", keep="last").set_index("symbol")["sector"]
        return static.reindex(cols).fillna("Unknown").set_axis(symbols)
    labels = np.full((len(sessions), len(cols)), "Unknown", dtype=object)
    where = {c: j for j, c in enumerate(cols)}
    index = pd.DatetimeIndex(sessions)
    ordered = hist.sort_values(["symbol", "from"], na_position="first")
    for sym, start, sector in zip(
        ordered["symbol"].to_numpy(), ordered["from"], ordered["sector"].to_numpy(), strict=True
    ):
        j = where.get(str(sym))
        if j is not None:
            a = 0 if pd.isna(start) else int(index.searchsorted(pd.Timestamp(start)))
            labels[a:, j] = str(sector)
    return pd.DataFrame(labels, index=sessions, columns=symbols)


def summary(metrics: dict[str, Any]) -> dict[str, Any]:
    """The few figures DVC compares across experiments (``summary.json``).

    The Regime-Aware candidate's Sharpe, CAGR, max drawdown, DSR (with its trial count),
    annual turnover and the out-of-sample rank IC, plus the benchmark's Sharpe (the stage
    adds the model's name): ``dvc exp show`` stays readable in 120 columns.
    """
    cand = metrics["regime_aware"]

    def r(x: Any, digits: int = 4) -> float | None:
        x = float(x)
        return round(x, digits) if np.isfinite(x) else None

    return {
        "sharpe": r(cand["sharpe"], 3),
        "cagr": r(cand["cagr"]),
        "max_dd": r(cand["max_drawdown"]),
        "dsr": r(cand["dsr"], 3),
        "n_trials": int(cand["n_trials"]),
        "rank_ic": r(metrics["skill"]["oos_rank_ic"]),
        "turnover": r(cand["turnover"], 2),
        "bench_sharpe": r(metrics["benchmark"]["sharpe"], 3),
    }


def _save_png(fig: Any, path: Path) -> None:
    """Save a figure as a PNG with no run-dependent metadata (byte-identical reruns)."""
    import matplotlib.pyplot as plt

    from py_finance.io import atomic_path

    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=80, metadata={"Software": None})
    finally:
        plt.close(fig)


def _deflate(
    ctx: Context,
    question: str,
    metrics: dict[str, Any],
    equity: pd.DataFrame,
    runs: dict[str, str],
) -> None:
    """Replace each variant's ``dsr`` by the gate's, over the trials now in the ledger."""
    s = ctx.settings
    cfg = s.promotion if s.promotion is not None else tracking.PromotionConfig()
    record = tracking.count_trials(question)
    n_trials = int(cfg.n_trials) if cfg.n_trials is not None else record.n_trials
    for variant in VARIANTS:
        evidence = tracking.gate_evidence(
            candidate_returns(equity[variant]),
            metrics["benchmark"]["sharpe"],
            n_trials=n_trials,
            trial_sharpes=record.sharpes,
            sr_variance=cfg.sr_variance,
            periods_per_year=s.backtest.periods_per_year,
        )
        metrics[variant]["dsr"] = evidence.dsr
        metrics[variant]["psr"] = evidence.psr
        metrics[variant]["n_trials"] = float(n_trials)
        if variant in runs:
            tracking.log_metrics_to(
                runs[variant], {"dsr": evidence.dsr, "psr": evidence.psr, "n_trials": n_trials}
            )


def _track(
    ctx: Context,
    question: str,
    results: dict[str, BacktestResult],
    weights: dict[str, pd.DataFrame],
    metrics: dict[str, Any],
    equity: pd.DataFrame,
    skill: dict[str, Any],
    regimes: pd.Series | None = None,
    log_model: bool = True,
) -> dict[str, str]:
    """Log one run per variant; returns their ids. Registers nothing (see :func:`promote`)."""
    s = ctx.settings
    tracking.setup(s.tracking, ctx.root)
    tags = tracking.standard_tags(
        horizon=ctx.horizon,
        model=s.model_name,
        regime_policy=s.regime_policy.name,
        data_hash=ctx.store.fingerprint(),
        cwd=ctx.root,
    )
    tags["survivorship_biased"] = str(metrics["survivorship_biased"]).lower()
    tags["model_matters"] = str(metrics["model_matters"]).lower()
    # turnover, exposure and beta are undefined for an index: log what the index has
    bench = {
        f"benchmark_{k}": v
        for k, v in metrics["benchmark"].items()
        if isinstance(v, int | float) and np.isfinite(v)
    }
    runs: dict[str, str] = {}
    for variant in VARIANTS:
        params = _trial_params(ctx, variant)
        run_tags = {**tags, **tracking.trial_tags(question, params, variant)}
        with tracking.start_run(f"backtest-h{ctx.horizon}-{variant}", tags=run_tags) as run_id:
            runs[variant] = run_id
            tracking.log_params(params)
            # The store as a dataset input, versioned by its DVC hash when DVC tracks it.
            store_path = s.paths["store"]
            tracking.log_dataset(
                "store",
                digest=tracking.dvc_hash(ctx.root, store_path) or tags["data_hash"],
                source=str(ctx.path("store")),
            )
            # skill keys already carry their oos_ prefix
            tracking.log_metrics({**metrics[variant], **bench, **metrics["skill"]})
            folds = read_parquet(ctx.model_dir() / "folds.parquet", stage=ctx.dvc_stage("train"))
            tracking.log_metric_steps(
                {"fold_ic": folds["ic"].tolist(), "fold_rank_ic": folds["rank_ic"].tolist()},
                [int(f) for f in folds["fold"]],
            )
            tracking.log_frame(folds, "walk_forward_folds.parquet")
            tracking.log_frame(equity[[variant, "benchmark"]], "equity.parquet")
            tracking.log_frame(results[variant].weights.astype("float64"), "weights_held.parquet")
            tracking.log_frame(weights[variant], "target_weights.parquet")
            tracking.log_dict(metrics, "metrics.json")
            _log_and_close(
                _plot(
                    equity[[variant, "benchmark", "equal_weight"]],
                    f"{LABELS[variant]} vs benchmarks (h={ctx.horizon})",
                ),
                "equity.png",
            )
            curve = equity[variant].rename(LABELS[variant])
            _log_and_close(
                backtest_figure(
                    curve,
                    equity["benchmark"].rename(LABELS["benchmark"]),
                    results[variant],
                    regimes,
                    f"{LABELS[variant]} (h={ctx.horizon})",
                ),
                "backtest.png",
            )
            tracking.log_frame(
                pd.DataFrame(
                    {
                        "exposure": results[variant].exposure,
                        "turnover": results[variant].turnover,
                        "state": results[variant].states.astype(str),
                    }
                ),
                "overlay_states.parquet",
            )
            notes = benchmark_note(ctx).lstrip("*") + "."
            if not metrics["model_matters"]:
                notes += (
                    "\n\nEvery scored name was held on every rebalance: the model could not "
                    "change the book."
                )
            _log_report(
                backtest_report(
                    f"{LABELS[variant]} h={ctx.horizon}",
                    metrics[variant],
                    metrics["period"],
                    bool(metrics["survivorship_biased"]),
                    notes,
                )
            )
            if variant == "regime_aware" and log_model:
                with (ctx.model_dir() / "model.pkl").open("rb") as fh:
                    model = pickle.load(fh)
                # The last sessions with their (session, symbol) index: sequence models
                # score a row from the window of sessions that ends at it. Only those rows
                # are read (the feature file is the largest file of the pipeline).
                context = int(getattr(model, "context_sessions", 0))
                scored = read_parquet(
                    ctx.model_dir() / "predictions.parquet",
                    stage=ctx.dvc_stage("train"),
                    columns=["score"],
                )
                sessions = scored.index.get_level_values("session").unique().sort_values()
                cutoff = sessions[-min(context + 1, len(sessions))]
                example = read_parquet(
                    ctx.path("features", "features.parquet"),
                    stage=ctx.dvc_stage("features"),
                    filters=[("session", ">=", cutoff)],
                )
                logged = tracking.log_model(
                    model,
                    feature_names=list(skill["feature_names"]),
                    input_example=example,
                )
                tracking.set_run_tags(run_id, {tracking.MODEL_URI_TAG: logged.model_uri})
                # The walk-forward's out-of-sample scores: a later gate re-simulates this
                # model on its challenger's window from them (and the model for new sessions).
                tracking.log_frame(
                    read_parquet(
                        ctx.model_dir() / "predictions.parquet", stage=ctx.dvc_stage("train")
                    ),
                    PREDICTIONS_ARTIFACT,
                )
    return runs


def _log_report(text: str) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "report.md"
        path.write_text(text)
        tracking.log_artifact(path)


def results_table(metrics: dict[str, Any]) -> str:
    """Markdown table: CAGR, Sharpe, max drawdown and the gate's DSR of each curve.

    Row labels name the metric keys of metrics.json and MLflow (``cagr``, ``sharpe``,
    ``max_drawdown``, ``dsr``); the DSR row's label gives the trial count it was deflated for.
    """
    cols = [c for c in ("baseline", "regime_aware", "benchmark", "equal_weight") if c in metrics]
    rows = [
        ("CAGR (`cagr`)", "cagr", "{:.1%}"),
        ("Sharpe (`sharpe`)", "sharpe", "{:.2f}"),
        ("Max DD (`max_drawdown`)", "max_drawdown", "{:.1%}"),
    ]
    lines = [
        "| Metric | " + " | ".join(LABELS[c] for c in cols) + " |",
        "|---|" + "---|" * len(cols),
    ]
    for label, key, fmt in rows:
        lines.append(f"| {label} | " + " | ".join(fmt.format(metrics[c][key]) for c in cols) + " |")
    if all("n_trials" in metrics[c] for c in VARIANTS if c in metrics):
        # Both variants are deflated for the same count: said once, in the row's label.
        n = int(metrics[VARIANTS[-1]]["n_trials"])
        cells = [f"{metrics[c]['dsr']:.3f}" if "n_trials" in metrics[c] else "n/a" for c in cols]
        lines.append(f"| DSR (`dsr`, {n} trials) | " + " | ".join(cells) + " |")
    if metrics.get("universe", {}).get("delistings", 0) > 0:
        cells = []
        for c in cols:
            m = metrics[c]
            cells.append(
                f"{int(m['delistings_held'])} ({m['delisting_cost']:+.1%})"
                if "delistings_held" in m
                else "n/a"
            )
        lines.append(
            "| Delisted while held (`delistings_held`, cost) | " + " | ".join(cells) + " |"
        )
    return "\n".join(lines)


def benchmark_note(ctx: Context) -> str:
    """What the ``SPY B&H*`` column is for this data source."""
    if ctx.store.meta().get("source", "bundled") == "bundled":
        return "*SPY B&H is the S&P 500 price index (no dividends) standing in for SPY"
    symbol = ctx.settings.data.benchmark or ctx.store.symbols(table="benchmark")[0]
    return f"*SPY B&H is buy-and-hold of the source's benchmark, {symbol}"


def survivorship_note(metrics: dict[str, Any], source: str) -> str:
    """What the universe says about survivorship, for the results page."""
    if metrics.get("survivorship_biased", True):
        if source == "bundled":
            return (
                "**Survivorship bias:** the bundled universe is 20 large caps that survived to "
                "2022, chosen with hindsight; every strategy number here is inflated by that "
                "choice."
            )
        return (
            "**Survivorship bias:** these symbols were picked without a membership history "
            "(no universe file), so names that failed are missing; every strategy number here "
            "is inflated by that choice."
        )
    uni = metrics.get("universe", {})
    return (
        f"**Survivorship-free:** {uni.get('names', 0)} names were members at some session "
        f"({uni.get('mean_members', 0.0):.0f} on average); only members as of each session "
        f"could be bought, and the {uni.get('delistings', 0)} delistings in the period were "
        "paid out at their delisting returns (the last row of the table: how many hit each "
        "book and what they cost, as a sum of fractions of the equity before each)."
    )


def report(ctx: Context) -> str:
    """Write ``reports/results.md``: the results table with its caveats."""
    metrics = json.loads((ctx.backtest_dir() / "metrics.json").read_text())
    period = metrics["period"]
    skill = metrics["skill"]
    caveat = survivorship_note(metrics, ctx.store.meta().get("source", "bundled"))
    text = "\n".join(
        [
            f"# Results: out-of-sample {period['start']} to {period['end']} "
            f"(horizon {ctx.horizon} sessions, model {ctx.settings.model_name})",
            "",
            results_table(metrics),
            "",
            f"Annual one-way turnover: Baseline {metrics['baseline']['turnover']:.1f}, "
            f"Regime-Aware {metrics['regime_aware']['turnover']:.1f}. "
            f"Out-of-sample rank IC {skill['oos_rank_ic']:.4f} (ICIR {skill['oos_icir']:.3f}).",
            "",
            caveat,
            ""
            if metrics.get("model_matters", True)
            else "**Every scored name was held on every rebalance: the model could not change "
            "the book, so these results do not depend on it.**\n",
            benchmark_note(ctx) + "; costs: "
            f"{ctx.settings.backtest.cost_bps:g} bps of traded notional; decisions at the close "
            f"of t fill at the close of t+{ctx.settings.backtest.execution_lag}.",
            "",
            "Returns and drawdowns are fractions of 1 shown as percentages; the DSR is the "
            "promotion gate's, deflated for the trials of this research question (data "
            "snapshot, universe, horizon) in every MLflow experiment.",
            "",
            "Runs, metrics, equity curves and the registered model: `make ui`, then "
            "http://127.0.0.1:5000 (experiment "
            f"`{ctx.settings.tracking.experiment}`).",
            "",
        ]
    )
    write_text(text, ctx.path("reports", "results.md"))
    return text


def gate_inputs(ctx: Context) -> tuple[dict[str, Any], Any, Any]:
    """The candidate's run, the gate's evidence and its settings.

    Reads ``model_ref.json`` (the candidate's research question and trial key),
    ``metrics.json`` and ``equity.parquet`` of the backtest stage; finds the candidate's
    latest finished run in the tracking store and counts the trials of its research question
    (unless the promotion config fixes ``n_trials``).
    """
    s = ctx.settings
    cfg = s.promotion if s.promotion is not None else tracking.PromotionConfig()
    out = ctx.backtest_dir()
    for name in ("model_ref.json", "metrics.json", "equity.parquet"):
        if not (out / name).exists():
            raise DataError(f"{out / name} not found: run the backtest stage first")
    ref = json.loads((out / "model_ref.json").read_text())
    metrics = json.loads((out / "metrics.json").read_text())
    equity = read_parquet(out / "equity.parquet", stage=ctx.dvc_stage("backtest"))
    tracking.setup(s.tracking, ctx.root)
    run = tracking.find_trial_run(ref["question"], ref["trial_key"], ref["variant"])
    if run is None:
        raise DataError(
            f"no finished MLflow run with a logged model for the backtest in {out} "
            f"(trial {ref['trial_key']}) in {s.tracking.tracking_uri}: rerun the backtest "
            "stage (`.venv/bin/dvc repro -f backtest`)"
        )
    ref = {
        **ref,
        "run_id": run.info.run_id,
        "model_uri": run.data.tags[tracking.MODEL_URI_TAG],
    }
    record = tracking.count_trials(ref["question"])
    n_trials = int(cfg.n_trials) if cfg.n_trials is not None else record.n_trials
    evidence = tracking.gate_evidence(
        candidate_returns(equity[cfg.candidate]),
        metrics["benchmark"]["sharpe"],
        n_trials=n_trials,
        trial_sharpes=record.sharpes,
        sr_variance=cfg.sr_variance,
        periods_per_year=s.backtest.periods_per_year,
    )
    return ref, evidence, cfg


def deploy_blockers(ctx: Context) -> list[str]:
    """Why this pipeline run may only propose (``@challenger``), not deploy: [] when it may.

    A DVC experiment (``$DVC_EXP_NAME``, set by ``dvc exp run`` in the workspace, ``--temp``
    or the queue) and a git workspace with uncommitted changes to tracked files other than
    ``dvc.lock`` (params.yaml or code edited by hand) propose only.
    """
    blockers = []
    exp = os.environ.get("DVC_EXP_NAME")
    if exp:
        blockers.append(f"DVC experiment {exp!r}")

    def git(*args: str) -> subprocess.CompletedProcess[str] | None:
        try:
            return subprocess.run(
                ["git", *args], cwd=ctx.root, capture_output=True, text=True, timeout=30
            )
        except (OSError, subprocess.SubprocessError):
            return None

    # Only a checkout's own root: a pipeline rooted in a folder inside one (a null test's or
    # known-answer run's outputs) is not that checkout's workspace.
    top = git("rev-parse", "--show-toplevel")
    if top is None or top.returncode != 0 or Path(top.stdout.strip()) != ctx.root.resolve():
        return blockers
    done = git("status", "--porcelain", "--untracked-files=no")
    if done is not None and done.returncode == 0:
        changed = [line[3:] for line in done.stdout.splitlines() if line[3:] != "dvc.lock"]
        if changed:
            blockers.append("uncommitted changes to " + ", ".join(changed[:3]))
    return blockers


def _curve_returns(curve: pd.Series) -> pd.Series:
    """Per-session returns of a growth-of-1 curve (first session: its move from 1)."""
    return candidate_returns(curve).dropna()


def champion_returns(
    ctx: Context, name: str, version: str, sessions: pd.DatetimeIndex
) -> tuple[pd.Series, int]:
    """The champion's strategy returns over ``sessions`` (the candidate's window).

    From the champion's own logged equity where it covers the window; when the window runs
    past the champion's backtest (new data), the champion is re-simulated on the store of
    ``ctx`` with its recorded config: its walk-forward's out-of-sample scores, then its
    logged model's scores on the sessions after them (which it never trained on), through
    the same portfolio, overlays and engine. Returns the returns and how many sessions were
    re-scored; the returns are empty when the champion cannot be re-simulated.
    """
    run_id = tracking.version_run_id(name, version)
    if run_id is None:
        return pd.Series(dtype="float64"), 0
    run = tracking.get_run(run_id)
    variant = run.data.tags.get("variant", "regime_aware")
    equity = tracking.read_run_frame(run_id, "equity.parquet")
    own = _curve_returns(equity[variant])
    missing = sessions[sessions > own.index.max()] if len(own) else sessions
    if not len(missing):
        return own, 0
    recorded = tracking.deployment.recorded_config(tracking.get_version_tags(name, version))
    if recorded is None:
        return own, 0
    from omegaconf import OmegaConf

    from py_finance.config import build

    champ = build(OmegaConf.create(recorded))
    mine = tracking.deployment.flat(resolved_config(ctx.settings.raw))
    theirs = tracking.deployment.flat(recorded)
    same_inputs = all(
        mine.get(k) == theirs.get(k)
        for k in {*mine, *theirs}
        if k.startswith(("features.", "regimes.", "labels."))
    )
    if not same_inputs:
        log.warning(
            "champion v%s was evaluated on other features, regimes or labels: it is compared "
            "on the sessions of its own backtest only",
            version,
        )
        return own, 0
    try:
        oos = tracking.read_run_frame(run_id, PREDICTIONS_ARTIFACT)
    except PyFinanceError:
        log.warning("champion v%s logged no predictions: compared on its own sessions", version)
        return own, 0
    last = oos.index.get_level_values("session").max()
    model = tracking.load_model(name, version=version)
    # A sequence model scores a new session from the window of sessions ending at it: its
    # features start ``window - 1`` sessions before the first new one.
    done = oos.index.get_level_values("session").unique().sort_values()
    context = min(model.window - 1, len(done))
    feats = read_parquet(
        ctx.path("features", "features.parquet"),
        stage=ctx.dvc_stage("features"),
        filters=[("session", ">=", done[-context])] if context else [("session", ">", last)],
    )
    # The walk-forward's std goes with its scores (uncertainty weighting), the model's too.
    kept = [c for c in ("score", "std") if c in oos.columns]
    fresh = None
    if len(feats):
        scored = model.predict_frame(feats)
        fresh = scored[scored.index.get_level_values("session") > last]
        fresh = fresh[[c for c in kept if c in fresh.columns]]
    preds = pd.concat([oos[kept], fresh]) if fresh is not None else oos[kept]
    m = market(ctx, preds.index.get_level_values("session").min())
    scores, std = scores_on(m, preds)
    weights = variant_weights(m, champ, scores, std, variant)
    result = variant_backtest(m, champ, weights, variant)
    curve = result.equity / champ.backtest.initial_cash
    rescored = int((curve.index > last).sum())
    return _curve_returns(curve), rescored


def compare_with_champion(ctx: Context, name: str, candidate_curve: pd.Series, cfg: Any) -> Any:
    """The paired Sharpe test of the candidate against ``name@champion`` (None: no champion)."""
    version = tracking.get_alias_version(name, tracking.CHAMPION)
    if version is None:
        return None
    cand = _curve_returns(candidate_curve)
    try:
        champ, rescored = champion_returns(ctx, name, version, pd.DatetimeIndex(cand.index))
    except Exception as exc:  # no curve to compare with: the comparison fails, it says why
        log.warning("champion v%s cannot be compared: %s: %s", version, type(exc).__name__, exc)
        champ, rescored = pd.Series(dtype="float64"), 0
    test = tracking.sharpe_difference_test(
        cand, champ, periods_per_year=ctx.settings.backtest.periods_per_year
    )
    return dataclasses.replace(test, champion_version=version, rescored_sessions=rescored)


def version_gate_inputs(ctx: Context, version: str) -> tuple[dict[str, Any], Any, Any, pd.Series]:
    """The gate's inputs for an already registered version of ``ctx``'s deployment.

    Its run's logged equity and benchmark Sharpe, and the trials its research question
    holds now: the same figures the promote stage judged, read back from the store.
    """
    s = ctx.settings
    cfg = s.promotion if s.promotion is not None else tracking.PromotionConfig()
    tracking.setup(s.tracking, ctx.root)
    name = ctx.deployment
    try:
        run_id = tracking.version_run_id(name, version)
    except Exception as exc:  # mlflow's "not found" carries no public type of its own
        raise DataError(f"{name} has no version {version}: {exc}") from None
    if run_id is None:
        raise DataError(f"{name} v{version} has no run to judge it from")
    run = tracking.get_run(run_id)
    variant = run.data.tags.get("variant", cfg.candidate)
    question = run.data.tags.get(tracking.QUESTION_TAG, "")
    equity = tracking.read_run_frame(run_id, "equity.parquet")
    curve = equity[variant].dropna()
    bench = equity["benchmark"].reindex(curve.index).pct_change().fillna(0.0)
    std = float(bench.std(ddof=1))
    ppy = s.backtest.periods_per_year
    bench_sharpe = float(bench.mean()) / std * math.sqrt(ppy) if std else math.nan
    record = tracking.count_trials(question)
    n_trials = int(cfg.n_trials) if cfg.n_trials is not None else record.n_trials
    evidence = tracking.gate_evidence(
        candidate_returns(curve),
        bench_sharpe,
        n_trials=n_trials,
        trial_sharpes=record.sharpes,
        sr_variance=cfg.sr_variance,
        periods_per_year=ppy,
    )
    ref = {"name": name, "run_id": run_id, "question": question, "variant": variant}
    return ref, evidence, cfg, curve


def promote(
    ctx: Context,
    *,
    dry_run: bool = False,
    apply: bool = False,
    version: str | None = None,
) -> dict[str, Any]:
    """Register the candidate backtest's model and run the promotion gate on it.

    The promotion path is the only one that creates registry versions: the candidate's
    model (logged by its backtest run) becomes a version of its deployment
    (``py-finance-<universe>-h<h>``, once per run) carrying the resolved config and universe
    it was evaluated with. Before the decision, the current champion is re-checked against
    the trials its research question holds now (:func:`py_finance.tracking.recheck_champion`;
    only ``apply`` removes a champion that fails it);
    the candidate is then judged on its own figures and against the champion on the same
    sessions. A candidate that passes becomes ``@challenger``; it becomes ``@champion`` only
    with ``apply`` (``scripts/promote.py --apply``), or, with ``promotion.bootstrap``, as the
    first champion of its deployment from a clean workspace outside DVC experiments (a fresh
    clone's ``make run``).

    ``version`` judges an already registered version instead of the workspace's candidate.
    The stage (neither ``apply`` nor ``version``) writes ``promotion/h{h}.json`` (decision,
    reasons, figures); ``dry_run`` decides and explains without touching the registry or a
    file. A decision that moved ``@champion`` is appended to ``logs/promotions.jsonl``.
    """
    if version is None:
        ref, evidence, cfg = gate_inputs(ctx)
        equity = read_parquet(
            ctx.backtest_dir() / "equity.parquet", stage=ctx.dvc_stage("backtest")
        )
        curve = equity[cfg.candidate]
    else:
        ref, evidence, cfg, curve = version_gate_inputs(ctx, str(version))
    name = ref["name"]
    # A champion that fails over today's trial count is reported; only a deliberate
    # promotion (apply) removes it: an experiment never changes what trades.
    recheck = tracking.recheck_champion(
        name,
        cfg,
        periods_per_year=ctx.settings.backtest.periods_per_year,
        dry_run=dry_run or not apply,
    )
    if version is not None:
        version = str(version)
    elif dry_run:
        version = tracking.version_of_run(name, ref["run_id"]) or "(not registered)"
    else:
        registered = tracking.register_logged_model(name, ref["run_id"], ref["model_uri"])
        version = registered.version or ""
        tracking.set_version_tags(
            name,
            version,
            tracking.deployment.deployment_tags(
                resolved_config(ctx.settings.raw),
                ctx.settings.data.universe_id(),
                ctx.store.symbols(),
            ),
        )
    comparison = compare_with_champion(ctx, name, curve, cfg)
    if comparison is not None and comparison.champion_version == version:
        comparison = None  # the champion itself, judged again: nothing to compare with
    blockers = deploy_blockers(ctx)
    has_champion = tracking.get_alias_version(name, tracking.CHAMPION) is not None
    if apply:
        deploy, how = True, "applied"
    elif cfg.bootstrap and not has_champion and not blockers:
        deploy, how = True, "bootstrap"
    else:
        deploy, how = False, "proposed"
    decision = tracking.promote(
        name,
        version,
        evidence,
        config=cfg,
        comparison=comparison,
        deploy=deploy,
        dry_run=dry_run,
    )
    if dry_run:  # what @champion would be after the decision
        champion = str(version) if decision.promote else decision.previous_champion
        if apply and recheck is not None and not recheck.passed and champion == recheck.version:
            champion = None
    else:
        champion = tracking.get_alias_version(name, tracking.CHAMPION)
    if decision.decision in ("promoted", "challenger"):
        challenger: str | None = str(version)
    else:
        challenger = tracking.get_alias_version(name, tracking.CHALLENGER)
    out = {
        "model": name,
        "candidate_version": version,
        "promoted": decision.promote,
        "decision": decision.decision,
        "how": how if decision.promote else None,
        "proposes_only": [] if deploy else (blockers or ["the deployment has a champion"]),
        "reasons": list(decision.reasons),
        "previous_champion": decision.previous_champion,
        "champion": champion,
        "challenger": challenger,
        "evidence": evidence.as_dict(),
        "vs_champion": None if comparison is None else comparison.as_dict(),
        "champion_recheck": None if recheck is None else recheck.as_dict(),
        "dry_run": dry_run,
    }
    log.info("%s v%s: %s: %s", name, version, decision.decision, "; ".join(decision.reasons))
    if not decision.promote:
        log.warning(
            "@champion stays %s",
            f"v{champion}" if champion else "none: live trading has no model",
        )
    if not dry_run and not apply and ref.get("trial_key"):
        write_json(out, ctx.path("promotion", f"h{ctx.horizon}.json"))
    if not dry_run and (decision.promote or (apply and decision.decision != "champion")):
        audit_promotion(ctx, out)
    return out


def audit_promotion(ctx: Context, out: dict[str, Any]) -> None:
    """Append a deliberate or champion-moving decision to ``logs/promotions.jsonl``.

    The audit trail of who trades: outside the DVC outputs, so a deliberate promotion leaves
    ``dvc status`` clean, and never rewritten by an experiment or ``dvc checkout``.
    """
    import datetime as dt

    path = ctx.root / "logs" / "promotions.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    entry = {"at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), **out}
    with path.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(entry, default=str, sort_keys=True) + "\n")
