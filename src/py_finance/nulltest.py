"""Null test of the promotion gate: a sweep on data with no edge must promote nothing.

``python -m py_finance.nulltest`` (or ``scripts/null_test.py``) builds synthetic prices shaped
like the bundled data (its sessions, symbols, listing dates and each name's volatility), runs
the full research pipeline on them for every model and a sweep of strategy variants (each
backtest a trial recorded in its own MLflow experiment), takes the trial with the best raw
Sharpe and runs the promotion gate on it, deflating for the trials recorded.

``--kind null``: zero-drift random walks; nothing is predictable, so the gate must promote
nothing. ``--kind planted``: the same shape, but each name's drift is a slowly moving
hidden process that momentum features can see; the gate must promote it. The report shows
the best raw Sharpe next to its Deflated Sharpe Ratio.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import hashlib
import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from py_finance.data.sources.base import SourceInfo
from py_finance.data.sources.bundled import BENCHMARK_SYMBOL, BundledSource, _wide
from py_finance.errors import ConfigError, cli_errors

log = logging.getLogger(__name__)

KINDS = ("null", "planted")
MODELS = ("lightgbm", "xgboost", "lstm", "tcn", "transformer")
SEQUENCE_MODELS = ("lstm", "tcn", "transformer")


@dataclass(frozen=True, slots=True)
class NullTestSize:
    """How big a null test is.

    Attributes
    ----------
    symbols
        Number of bundled names whose shape is copied (the first ones alphabetically).
    start, end
        Sessions copied from the bundled calendar.
    models
        Models trained (each on every horizon).
    horizons
        Label horizons.
    variants
        Portfolio/risk variants backtested per trained model: ``(top_k, regime_policy)``.
    overrides
        Extra Hydra overrides (cheap model settings, walk-forward length, gate settings).
    """

    symbols: int
    start: str
    end: str
    models: tuple[str, ...]
    horizons: tuple[int, ...]
    variants: tuple[tuple[int, str], ...]
    overrides: tuple[str, ...]

    @property
    def n_trials(self) -> int:
        """Backtests of the candidate variant in the sweep."""
        return len(self.models) * len(self.horizons) * len(self.variants)


_CHEAP_SEQUENCE = (
    "max_epochs=1",
    "mc_samples=2",
    "hidden=8",
    "conv_channels=4",
    "levels=1",
    "batch_size=2048",
    "lookback=10",
    "accelerator=cpu",
)

SIZES = {
    # CI: 2 models x 2 horizons x 6 variants = 24 trials on 10 names over 9 years. The
    # sequence models are left out by default to keep it cheap; `--models tcn` (or lstm,
    # transformer) runs them through the same sweep.
    "ci": NullTestSize(
        symbols=10,
        start="1994-01-03",
        end="2002-12-31",
        models=("lightgbm", "xgboost"),
        horizons=(1, 5),
        variants=(
            (3, "fixed"),
            (3, "none"),
            (3, "data_driven"),
            (5, "fixed"),
            (5, "none"),
            (5, "data_driven"),
        ),
        overrides=(
            "walk_forward.min_train_sessions=504",
            "regimes.min_train_sessions=252",
            "promotion.min_oos_sessions=1000",
        ),
    ),
    # Full: the bundled shape, 2 models x 3 horizons x 4 variants = 24 trials.
    "full": NullTestSize(
        symbols=20,
        start="1990-01-02",
        end="2022-12-28",
        models=("lightgbm", "xgboost"),
        horizons=(1, 5, 20),
        variants=((5, "fixed"), (10, "fixed"), (10, "none"), (10, "data_driven")),
        overrides=(),
    ),
}

_BOOSTER_CHEAP = {"ci": ("n_estimators=30",), "full": ()}


def synthetic_prices(
    kind: str, symbols: int, start: str, end: str, *, seed: int = 0
) -> tuple[pd.DataFrame, pd.Series]:
    """Synthetic closes shaped like the bundled data, and an equal-weight index.

    Parameters
    ----------
    kind
        ``null``: zero-drift random walks (the mean simple return of every name is 0).
        ``planted``: each name's daily drift follows a hidden AR(1) process (half-life 250
        sessions, cross-sectional spread 0.5% a day: a deliberately strong edge) that
        trailing returns reveal.
    symbols
        How many bundled names to copy (first ones alphabetically).
    start, end
        Range of the bundled sessions to copy.
    seed
        Random seed.

    Returns
    -------
    tuple[pandas.DataFrame, pandas.Series]
        ``session x symbol`` closes (NaN before a name's first bundled price, as in the
        bundled data; each name's volatility that of its bundled log returns) and the index
        (equal-weight average of the names' returns), starting at the bundled values.
    """
    if kind not in KINDS:
        raise ConfigError(f"--kind must be one of {KINDS}, got {kind!r}")
    real = _wide("sp500_dataset.csv.gz").loc[start:end]
    real = real[sorted(real.columns)[:symbols]]
    index_real = _wide("sp500_index.csv.gz").loc[start:end].iloc[:, 0]
    rng = np.random.default_rng(seed)
    n, k = real.shape
    logret = pd.DataFrame(np.log(real.to_numpy()), index=real.index, columns=real.columns).diff()
    sigma = logret.std().fillna(logret.stack().std()).to_numpy()
    eps = rng.standard_normal((n, k))
    drift = np.zeros((n, k))
    if kind == "planted":
        phi = 0.5 ** (1.0 / 250.0)
        spread = 0.005
        shocks = rng.standard_normal((n, k)) * spread * math.sqrt(1.0 - phi**2)
        drift[0] = rng.standard_normal(k) * spread
        for t in range(1, n):
            drift[t] = phi * drift[t - 1] + shocks[t]
        drift -= drift.mean(axis=1, keepdims=True)  # no market drift: the edge is relative
    x = drift + sigma * eps - 0.5 * sigma**2
    x[0] = 0.0
    listed = real.notna().to_numpy()
    first = real.bfill().iloc[0].to_numpy()
    levels = first * np.exp(np.cumsum(x, axis=0))
    prices = pd.DataFrame(np.where(listed, levels, np.nan), index=real.index, columns=real.columns)
    simple = prices.pct_change(fill_method=None)
    ew = simple.mean(axis=1).fillna(0.0)
    index = float(index_real.iloc[0]) * (1.0 + ew).cumprod()
    return prices, index.rename(BENCHMARK_SYMBOL)


class SyntheticSource(BundledSource):
    """A bar source serving :func:`synthetic_prices` in the bundled source's shape."""

    def __init__(self, prices: pd.DataFrame, index: pd.Series, kind: str) -> None:
        self.prices = prices
        self.index = index
        self.info = SourceInfo(
            name=f"synthetic-{kind}",
            survivorship_biased=False,
            adjusted_only=True,
            notes=(f"synthetic {kind} prices shaped like the bundled data (null test)",),
        )

    def symbols(self) -> list[str]:
        """The copied bundled names."""
        return [str(c) for c in self.prices.columns]

    def coverage(self) -> tuple[dt.date, dt.date]:
        """First and last synthetic session."""
        return self.prices.index[0].date(), self.prices.index[-1].date()

    def bars(self, symbols: list[str], start: dt.date, end: dt.date) -> pd.DataFrame:
        """Synthetic closes of ``symbols`` in ``[start, end]``."""
        from py_finance.data.sources.bundled import _to_long

        wanted = self.check_symbols(symbols)
        self._check_range(start, end)
        return _to_long(self.prices.loc[str(start) : str(end), wanted])

    def benchmark(self, start: dt.date, end: dt.date) -> pd.DataFrame:
        """The synthetic index as symbol ``SP500``."""
        from py_finance.data.sources.bundled import _to_long

        self._check_range(start, end)
        return _to_long(self.index.loc[str(start) : str(end)].to_frame(BENCHMARK_SYMBOL))


@dataclass(frozen=True, slots=True)
class NullTestResult:
    """Outcome of one null test.

    Attributes
    ----------
    kind, size
        What was run.
    promoted
        Whether the gate promoted the best trial.
    best
        The best trial: its overrides, raw Sharpe, DSR, PSR and the gate's reasons.
    trials
        Every trial's overrides and raw Sharpe (candidate variant).
    n_trials_recorded
        Distinct strategy configurations recorded for the research questions of the sweep
        (one per horizon), summed: what the DSR deflated for, since the best trial was
        picked across them (baseline backtests count too).
    report
        The Markdown report.
    """

    kind: str
    size: str
    promoted: bool
    best: dict[str, Any]
    trials: list[dict[str, Any]]
    n_trials_recorded: int
    report: str


def _ingest(ctx: Any, source: SyntheticSource) -> None:
    from py_finance.data.ingest import ingest_bars

    store = ctx.store
    symbols = source.symbols()
    first, last = source.coverage()
    ingest_bars(store, source, symbols, first, last, batch_size=len(symbols) + 1, progress=False)
    known = store.bars(symbols[:1], None, None, pd.Timestamp.max.tz_localize("UTC"))
    store.write_sectors(source.sectors(symbols), available_at=known["available_at"].min())
    store.write_meta({"source": source.info.name, "survivorship_biased": False, "symbols": symbols})


def _close_figures() -> None:
    """The backtest logs matplotlib figures without closing them; a sweep would pile them up."""
    import matplotlib.pyplot as plt

    plt.close("all")


def _clear(root: Path) -> None:
    """Remove a previous null test's outputs under ``root`` (only the paths it writes)."""
    import shutil

    for name in ("data", "trials", "mlruns", "reports"):
        if (root / name).is_dir():
            shutil.rmtree(root / name)
    (root / "mlflow.db").unlink(missing_ok=True)


def _model_overrides(model: str, size: str) -> list[str]:
    if model in SEQUENCE_MODELS:
        return [f"model.{o}" for o in _CHEAP_SEQUENCE] if size == "ci" else []
    return [f"model.{o}" for o in _BOOSTER_CHEAP[size]]


def run_null_test(
    kind: str = "null",
    size: str = "ci",
    *,
    root: Path,
    seed: int = 0,
    models: Sequence[str] | None = None,
) -> NullTestResult:
    """Run the null (or planted-signal) test under ``root``; see the module docstring.

    Parameters
    ----------
    kind
        ``null`` or ``planted``.
    size
        ``ci`` (24 trials on a 10-name, 9-year slice, cheap models) or ``full`` (the
        bundled shape, 24 trials).
    root
        Working directory: store, features, models, backtests, ``mlflow.db`` and the report.
    seed
        Seed of the synthetic prices.
    models
        Models to train (the size's by default: LightGBM and XGBoost).

    Returns
    -------
    NullTestResult
        The decision on the best trial, with its figures and the report.
    """
    from py_finance import tracking
    from py_finance.config import build, compose
    from py_finance.pipeline import evaluation, research
    from py_finance.pipeline.context import Context

    if size not in SIZES:
        raise ConfigError(f"--size must be one of {tuple(SIZES)}, got {size!r}")
    spec = SIZES[size]
    if models is not None:
        unknown = [m for m in models if m not in MODELS]
        if unknown:
            raise ConfigError(f"--models: unknown {unknown}; choose from {MODELS}")
        spec = dataclasses.replace(spec, models=tuple(models))
    root = Path(root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    _clear(root)
    prices, index = synthetic_prices(kind, spec.symbols, spec.start, spec.end, seed=seed)
    source = SyntheticSource(prices, index, kind)
    experiment = f"null-test-{kind}"
    shared = [
        f"data.symbols=[{','.join(source.symbols())}]",
        f"data.start={prices.index[0].date().isoformat()}",
        f"data.end={prices.index[-1].date().isoformat()}",
        f"paths.store={root / 'data/store'}",
        f"paths.features={root / 'data/features'}",
        f"tracking.tracking_uri=sqlite:///{root / 'mlflow.db'}",
        f"tracking.artifact_location={root / 'mlruns'}",
        f"tracking.experiment={experiment}",
        f"seed={seed}",
        *spec.overrides,
    ]
    base = Context(build(compose(shared)), root)
    _ingest(base, source)
    research.features(base)
    research.regimes(base)

    trials: list[dict[str, Any]] = []
    contexts: dict[int, Context] = {}
    for horizon in spec.horizons:
        labelled = False
        for model in spec.models:
            train_overrides = [f"labels=h{horizon}", f"model={model}"]
            train_overrides += _model_overrides(model, size)
            key = hashlib.sha256(" ".join(train_overrides).encode()).hexdigest()[:10]
            models_dir = root / "data/models" / f"{model}-{key}"
            trained = False
            for top_k, policy in spec.variants:
                overrides = [
                    *train_overrides,
                    f"portfolio.top_k={top_k}",
                    f"regime_policy={policy}",
                ]
                name = "-".join(o.replace("=", "_") for o in overrides if "model." not in o)
                ctx = Context(
                    build(compose([*shared, *overrides, f"paths.models={models_dir}"])),
                    root / "trials" / name,
                )
                if not labelled:
                    research.labels(ctx)
                    labelled = True
                if not trained:
                    research.train(ctx, progress=False)
                    trained = True
                metrics = evaluation.backtest(ctx)
                _close_figures()
                cand = ctx.settings.promotion.candidate
                trials.append(
                    {
                        "trial": len(trials),
                        "overrides": overrides,
                        "sharpe": float(metrics[cand]["sharpe"]),
                        "benchmark_sharpe": float(metrics["benchmark"]["sharpe"]),
                    }
                )
                contexts[len(trials) - 1] = ctx
                log.info(
                    "trial %d %s: sharpe %.3f", len(trials) - 1, overrides, trials[-1]["sharpe"]
                )

    finite = [t for t in trials if math.isfinite(t["sharpe"])]
    best = max(finite, key=lambda t: t["sharpe"]) if finite else trials[0]
    # The best trial was picked across horizons, i.e. across research questions: deflate for
    # every configuration tried on any of them, not only on the best's own question.
    tracking.setup(base.settings.tracking, root)
    questions = {evaluation.research_question(c) for c in contexts.values()}
    n_all = sum(tracking.count_trials(q).n_trials for q in questions)
    chosen = contexts[best["trial"]]
    promotion = dataclasses.replace(chosen.settings.promotion, n_trials=n_all)
    chosen = dataclasses.replace(
        chosen, settings=dataclasses.replace(chosen.settings, promotion=promotion)
    )
    out = evaluation.promote(chosen)
    evidence = out["evidence"]
    best = {**best, **{k: evidence[k] for k in ("dsr", "psr", "n_trials", "expected_max_sharpe")}}
    best["reasons"] = out["reasons"]
    tracking.setup(base.settings.tracking, root)
    champions = {
        h: tracking.get_alias_version(
            base.settings.tracking.model_name(base.settings.data.universe_id(), h),
            tracking.CHAMPION,
        )
        for h in spec.horizons
    }
    promoted = any(v is not None for v in champions.values())
    report = _report(kind, size, spec, trials, best, promoted, int(evidence["n_trials"]), seed)
    (root / "reports").mkdir(exist_ok=True)
    (root / "reports" / f"null_test_{kind}.md").write_text(report)
    (root / "reports" / f"null_test_{kind}.json").write_text(
        json.dumps({"promoted": promoted, "best": best, "trials": trials}, indent=2, default=str)
    )
    return NullTestResult(
        kind=kind,
        size=size,
        promoted=promoted,
        best=best,
        trials=trials,
        n_trials_recorded=int(evidence["n_trials"]),
        report=report,
    )


def _report(
    kind: str,
    size: str,
    spec: NullTestSize,
    trials: list[dict[str, Any]],
    best: dict[str, Any],
    promoted: bool,
    n_recorded: int,
    seed: int,
) -> str:
    sharpes = np.array([t["sharpe"] for t in trials], dtype="float64")
    what = (
        "zero-drift random walks (no edge exists)"
        if kind == "null"
        else "a planted signal (each name's drift is a slow hidden process)"
    )
    lines = [
        f"# Null test: {kind} ({size} size, seed {seed})",
        "",
        f"Synthetic prices shaped like the bundled data: {spec.symbols} names, "
        f"{spec.start}..{spec.end}, {what}.",
        f"Sweep: models {', '.join(spec.models)} x horizons "
        f"{', '.join(str(h) for h in spec.horizons)} x {len(spec.variants)} portfolio/regime "
        f"variants = {len(trials)} candidate backtests; the experiment recorded {n_recorded} "
        "distinct strategy configurations (baselines included), which the DSR deflates for.",
        "",
        "| best trial | raw Sharpe | benchmark Sharpe | PSR | DSR | expected best skill-less "
        "Sharpe | promoted |",
        "|---|---|---|---|---|---|---|",
        f"| {' '.join(best['overrides'])} | {best['sharpe']:.3f} | "
        f"{best['benchmark_sharpe']:.3f} | {best['psr']:.4f} | {best['dsr']:.4f} | "
        f"{best['expected_max_sharpe']:.3f} | {'yes' if promoted else 'no'} |",
        "",
        f"Raw Sharpe across the {len(trials)} trials: median {np.nanmedian(sharpes):.3f}, "
        f"min {np.nanmin(sharpes):.3f}, max {np.nanmax(sharpes):.3f}.",
        "",
        "Gate checks on the best trial:",
        "",
        *[f"- {r}" for r in best["reasons"]],
        "",
    ]
    return "\n".join(lines)


@cli_errors
def main(argv: list[str] | None = None) -> None:
    """``python -m py_finance.nulltest [--kind null|planted] [--size ci|full] [--root DIR]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--kind", default="null", choices=KINDS)
    parser.add_argument("--size", default="ci", choices=tuple(SIZES))
    parser.add_argument("--root", default="outputs/null_test", help="working directory")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--models", nargs="*", default=None, help=f"subset of {MODELS}")
    args = parser.parse_args(argv)
    from py_finance.pipeline.cli import setup_logging

    setup_logging(logging.WARNING)
    logging.getLogger(__name__).setLevel(logging.INFO)
    root = Path(args.root) / args.kind
    result = run_null_test(args.kind, args.size, root=root, seed=args.seed, models=args.models)
    print(result.report)
    print(f"report: {root / 'reports' / f'null_test_{args.kind}.md'}")


if __name__ == "__main__":
    main()
