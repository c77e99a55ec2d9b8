"""Known-answer test: on a synthetic market with a planted edge, the pipeline must find it.

``python -m py_finance.knownanswer`` generates the survivorship-free synthetic market
(:mod:`py_finance.data.sources.synthetic`: listings, delistings, index membership, a factor
structure and an edge of strength ``--edge`` and shape ``--shape``: trailing momentum,
short-term reversal, sector-relative momentum, an interaction of two returns, or momentum in
one market regime only), runs the whole research pipeline on it
(ingest, features, labels, regimes, purged walk-forward LightGBM, portfolio, backtest,
MLflow, promotion gate) and compares the model's out-of-sample rank IC with the oracle's: the
rank IC of the rule that generated the returns, on the same out-of-sample sessions and the
same members. The oracle's IC is the best any model can reach on those sessions (up to
noise), so ``recovery = model IC / oracle IC`` says how much of the edge the pipeline found.

With ``--edge 0`` there is nothing to find: the oracle's IC is about zero and the gate must
promote nothing (the null test, :mod:`py_finance.nulltest`, checks the same on a sweep).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from py_finance.errors import ConfigError, cli_errors

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class KnownAnswerResult:
    """What the known-answer run found.

    Attributes
    ----------
    edge, n_active, n_sessions, seed, shape
        The synthetic market.
    oracle_rank_ic, model_rank_ic
        Mean daily rank IC (Spearman) on the out-of-sample rows, members only.
    recovery
        ``model_rank_ic / oracle_rank_ic`` (NaN when the oracle's IC is not positive).
    promoted
        Whether the promotion gate promoted the candidate.
    dsr, n_trials, sharpe, benchmark_sharpe
        The gate's evidence for the candidate.
    delistings_held, delisting_cost
        Delistings that hit the candidate's book and what they cost (sum of fractions).
    seconds
        Wall time of the whole run.
    """

    edge: float
    n_active: int
    n_sessions: int
    seed: int
    oracle_rank_ic: float
    model_rank_ic: float
    recovery: float
    promoted: bool
    dsr: float
    n_trials: int
    sharpe: float
    benchmark_sharpe: float
    delistings_held: int
    delisting_cost: float
    seconds: float
    shape: str = "momentum"

    def summary(self) -> str:
        """A few lines for the terminal."""
        return (
            f"synthetic market: {self.n_active} active names x {self.n_sessions} sessions, "
            f"{self.shape} edge {self.edge:g}, seed {self.seed}\n"
            f"oracle rank IC {self.oracle_rank_ic:.4f}, model rank IC {self.model_rank_ic:.4f}"
            f" -> recovery {self.recovery:.0%}\n"
            f"gate: {'promoted' if self.promoted else 'not promoted'} (DSR {self.dsr:.3f} over "
            f"{self.n_trials} trials, Sharpe {self.sharpe:.2f} vs benchmark "
            f"{self.benchmark_sharpe:.2f}); {self.delistings_held} delistings held, cost "
            f"{self.delisting_cost:+.1%}; {self.seconds:.0f} s"
        )


def market_overrides(
    n_active: int,
    n_sessions: int,
    edge: float,
    seed: int,
    start: str = "1995-01-03",
    shape: str = "momentum",
) -> list[str]:
    """Hydra overrides that point the pipeline at the synthetic market of these options."""
    from py_finance.data.sources.synthetic import SyntheticSource

    source = SyntheticSource(
        n_active=n_active, n_sessions=n_sessions, start=start, edge=edge, seed=seed, shape=shape
    )
    first, last = source.coverage()
    return [
        "data=synthetic",
        "data.symbols=null",  # every name ever listed, whatever a config layered on top says
        f"data.options.n_active={n_active}",
        f"data.options.n_sessions={n_sessions}",
        f"data.options.start={first.isoformat()}",
        f"data.options.edge={edge}",
        f"data.options.seed={seed}",
        f"data.options.shape={shape}",
        f"data.start={first.isoformat()}",
        f"data.end={last.isoformat()}",
    ]


def rank_ic(scores: pd.Series, labels: pd.Series) -> float:
    """Mean daily Spearman correlation of ``scores`` and ``labels`` on their common rows.

    A session whose scores are all equal (the ``regime`` oracle outside its regime: no name
    is expected to beat another) counts as a correlation of 0, so an oracle and a model are
    averaged over the same sessions.
    """
    from py_finance.models.walk_forward import information_coefficients

    both = pd.concat({"s": scores, "l": labels}, axis=1, join="inner").dropna()
    _, ric = information_coefficients(both["s"], both["l"])
    if not len(ric):
        return float("nan")
    grouped = both.groupby(level="session")
    flat = (grouped["s"].nunique() <= 1) & (grouped["l"].nunique() > 1) & (grouped.size() >= 3)
    ric = ric.where(~flat.reindex(ric.index, fill_value=False), 0.0)
    return float(ric.mean())


# Edge strength per shape for the known-answer suite: the short-lived edges (a 5-session
# return in the rule) change faster than the 5-session label they are judged on, so they are
# planted stronger to give their oracle a rank IC of the same order as momentum's (~0.1).
SUITE_EDGES = {
    "momentum": 0.05,
    "reversal": 0.15,
    "sector": 0.05,
    "interaction": 0.15,
    "regime": 0.05,
}


@dataclass(frozen=True, slots=True)
class Recovery:
    """One model family on one synthetic market: its rank IC and the oracle's, same rows."""

    shape: str
    n_active: int
    edge: float
    model: str
    oracle_rank_ic: float
    model_rank_ic: float
    recovery: float
    train_seconds: float
    n_trees: tuple[int, ...] = ()


def recoveries(
    shape: str,
    *,
    n_active: int = 100,
    n_sessions: int = 2520,
    edge: float | None = None,
    seed: int = 0,
    models: Sequence[str] = ("lightgbm",),
    overrides: Sequence[str] = (),
) -> list[Recovery]:
    """Out-of-sample rank IC of each model family against the oracle's, on the same rows.

    The research stages of :func:`run_known_answer` without the store, the backtest and
    MLflow: the features and labels are built by the same functions from the source's
    closes, index membership and delistings (what ingest stores), once for every model;
    each model is the config's (``model=<name>`` and ``overrides``), walk-forward as
    configured. ``edge`` defaults to the shape's :data:`SUITE_EDGES`.
    """
    from py_finance.config import build, compose
    from py_finance.data.sources.synthetic import SyntheticSource
    from py_finance.features.labels import forward_returns, target_column
    from py_finance.features.technical import build_features
    from py_finance.models.walk_forward import walk_forward

    edge = SUITE_EDGES[shape] if edge is None else float(edge)
    source = SyntheticSource(
        n_active=n_active, n_sessions=n_sessions, edge=edge, seed=seed, shape=shape
    )
    settings = build(
        compose([*market_overrides(n_active, n_sessions, edge, seed, shape=shape), *overrides])
    )
    if settings.features.groups:
        raise ConfigError(
            f"knownanswer.recoveries builds close-only feature sets (features=basic); "
            f"features={settings.features.name} reads every bar field: use run_known_answer"
        )
    closes = source.closes()
    closes.columns.name = "symbol"
    features = build_features(closes, settings.features)
    labels = forward_returns(
        closes,
        settings.labels,
        settings.backtest.execution_lag,
        delistings=source.delistings(),
        members=source.membership(),
    )
    column = settings.labels.column
    oracle = pd.Series(source.oracle_scores().stack(future_stack=True))
    oracle.index.names = ["session", "symbol"]
    out = []
    for name in models:
        s = build(
            compose(
                [
                    *market_overrides(n_active, n_sessions, edge, seed, shape=shape),
                    f"model={name}",
                    *overrides,
                ]
            )
        )
        began = time.perf_counter()
        result = walk_forward(
            features,
            labels,
            target_column(s.labels),
            s.model_factory,
            s.walk_forward,
            eval_column=column,
            progress=False,
        )
        seconds = time.perf_counter() - began
        preds = result.predictions
        rows = preds.index.intersection(labels.index)
        oracle_ic = rank_ic(oracle.reindex(rows), labels.loc[rows, column])
        model_ic = rank_ic(preds.loc[rows, "score"], labels.loc[rows, column])
        trees = result.fold_metrics.get("n_trees")
        out.append(
            Recovery(
                shape=shape,
                n_active=int(n_active),
                edge=edge,
                model=name,
                oracle_rank_ic=oracle_ic,
                model_rank_ic=model_ic,
                recovery=model_ic / oracle_ic if oracle_ic > 0 else float("nan"),
                train_seconds=seconds,
                n_trees=tuple(int(n) for n in trees) if trees is not None else (),
            )
        )
    return out


def run_known_answer(
    root: Path,
    *,
    n_active: int = 100,
    n_sessions: int = 2520,
    edge: float = 0.05,
    seed: int = 0,
    shape: str = "momentum",
    overrides: Sequence[str] = (),
) -> KnownAnswerResult:
    """Run the pipeline on the synthetic market under ``root``; see the module docstring."""
    from py_finance import tracking
    from py_finance.config import build, compose
    from py_finance.data.sources.synthetic import SyntheticSource
    from py_finance.pipeline import evaluation, research
    from py_finance.pipeline.context import Context

    began = time.perf_counter()
    root = Path(root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    shared = [
        *market_overrides(n_active, n_sessions, edge, seed, shape=shape),
        f"paths.store={root / 'data/store'}",
        f"paths.features={root / 'data/features'}",
        f"paths.models={root / 'data/models'}",
        f"paths.backtest={root / 'data/backtest'}",
        f"paths.reports={root / 'reports'}",
        f"paths.promotion={root / 'data/promotion'}",
        f"tracking.tracking_uri=sqlite:///{root / 'mlflow.db'}",
        f"tracking.artifact_location={root / 'mlruns'}",
        "tracking.experiment=known-answer",
        *overrides,
    ]
    ctx = Context(build(compose(shared)), root)
    research.ingest(ctx)
    research.features(ctx)
    research.labels(ctx)
    research.regimes(ctx)
    research.train(ctx, progress=False)
    metrics = evaluation.backtest(ctx)
    decision = evaluation.promote(ctx)

    source = SyntheticSource(**dict(ctx.settings.data.options or {}))
    preds = pd.read_parquet(ctx.model_dir() / "predictions.parquet")
    labels = pd.read_parquet(ctx.path("features", f"labels_h{ctx.horizon}.parquet"))
    column = ctx.settings.labels.column
    oracle = pd.Series(source.oracle_scores().stack(future_stack=True))
    oracle.index.names = ["session", "symbol"]
    rows = preds.index.intersection(labels.index)
    oracle_ic = rank_ic(oracle.reindex(rows), labels.loc[rows, column])
    model_ic = rank_ic(preds.loc[rows, "score"], labels.loc[rows, column])
    tracking.setup(ctx.settings.tracking, root)
    champion = tracking.get_alias_version(ctx.deployment, tracking.CHAMPION)
    evidence = decision["evidence"]
    cand = metrics[ctx.settings.promotion.candidate]
    result = KnownAnswerResult(
        edge=float(edge),
        n_active=int(n_active),
        n_sessions=int(n_sessions),
        seed=int(seed),
        oracle_rank_ic=oracle_ic,
        model_rank_ic=model_ic,
        recovery=model_ic / oracle_ic if oracle_ic > 0 else float("nan"),
        promoted=champion is not None,
        dsr=float(evidence["dsr"]),
        n_trials=int(evidence["n_trials"]),
        sharpe=float(cand["sharpe"]),
        benchmark_sharpe=float(metrics["benchmark"]["sharpe"]),
        delistings_held=int(cand.get("delistings_held", 0)),
        delisting_cost=float(cand.get("delisting_cost", 0.0)),
        seconds=time.perf_counter() - began,
        shape=shape,
    )
    out = root / "reports" / f"known_answer_edge{edge:g}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(asdict(result), indent=2))
    return result


@cli_errors
def main(argv: list[str] | None = None) -> None:
    """Command line: ``python -m py_finance.knownanswer [--edge E] [--active N] ...``."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--edge", type=float, default=0.05, help="planted edge strength (0: none)")
    p.add_argument(
        "--shape",
        default="momentum",
        choices=("momentum", "reversal", "sector", "interaction", "regime"),
        help="planted edge shape (py_finance.data.sources.synthetic)",
    )
    p.add_argument("--active", type=int, default=100, help="index members at any time")
    p.add_argument("--sessions", type=int, default=2520, help="sessions generated")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--root", default="outputs/known_answer", help="working directory")
    p.add_argument("overrides", nargs="*", help="extra Hydra overrides (model=xgboost ...)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    name = f"edge{args.edge:g}-n{args.active}-s{args.sessions}-seed{args.seed}"
    root = Path(args.root) / (name if args.shape == "momentum" else f"{args.shape}-{name}")
    if root.exists():
        import shutil

        shutil.rmtree(root)
    result = run_known_answer(
        root,
        n_active=args.active,
        n_sessions=args.sessions,
        edge=args.edge,
        seed=args.seed,
        shape=args.shape,
        overrides=args.overrides,
    )
    print(result.summary())
    print(f"-> {root / 'reports'}")


if __name__ == "__main__":
    main()
