"""Research stages: ingest -> features -> labels -> regimes -> train.

Each stage reads the previous stage's files and writes its own, atomically, under the
context's root. Reads of the store name their as-of time explicitly.
"""

from __future__ import annotations

import json
import logging
import pickle
from typing import Any

import pandas as pd

from py_finance.data.calendar import check_sessions
from py_finance.data.sources.bundled import get_source
from py_finance.errors import DataError
from py_finance.features.labels import forward_returns, target_column
from py_finance.features.regimes import detect_regimes
from py_finance.features.technical import build_features
from py_finance.io import atomic_path, write_json, write_parquet
from py_finance.models.walk_forward import skill_summary, walk_forward
from py_finance.pipeline.context import Context

log = logging.getLogger(__name__)


def ingest(ctx: Context) -> dict[str, Any]:
    """Load the configured source into the store; report the calendar check."""
    cfg = ctx.settings.data
    source = get_source(cfg.source)
    symbols = list(cfg.symbols) if cfg.symbols else source.symbols()
    bars = source.bars(symbols, cfg.start_date, cfg.end_date)
    bench = source.benchmark(cfg.start_date, cfg.end_date)
    check = check_sessions(
        pd.DatetimeIndex(bars["session"].unique()), cfg.calendar, through=cfg.end_date
    )
    if check.ok:
        log.info(check.summary())
    else:
        log.warning(check.summary())
    store = ctx.store
    bar_summary = store.write_bars(bars, calendar=cfg.calendar)
    bench_summary = store.write_bars(bench, table="benchmark", calendar=cfg.calendar)
    first_known = store.bars(symbols[:1], None, None, pd.Timestamp.max.tz_localize("UTC"))[
        "available_at"
    ].min()
    store.write_sectors(source.sectors(symbols), available_at=first_known)
    meta = {
        "source": source.info.name,
        "survivorship_biased": source.info.survivorship_biased,
        "adjusted_only": source.info.adjusted_only,
        "notes": [
            *source.info.notes,
            "sector map is today's GICS sectors applied to all history (not point in time)",
        ],
        "symbols": symbols,
        "start": cfg.start_date.isoformat(),
        "end": cfg.end_date.isoformat(),
        "calendar_check": {
            "ok": check.ok,
            "summary": check.summary(),
            "missing_sessions": [d.isoformat() for d in check.missing_sessions],
            "extra_dates": [d.isoformat() for d in check.extra_dates],
        },
        "rows_added": {"bars": bar_summary.rows_added, "benchmark": bench_summary.rows_added},
    }
    store.write_meta(meta)
    return meta


def prices(ctx: Context, table: str = "bars") -> pd.DataFrame:
    """``session x symbol`` adjusted closes of the configured range, as of its end."""
    cfg = ctx.settings.data
    symbols = list(cfg.symbols) if cfg.symbols and table == "bars" else None
    wide = ctx.store.wide(
        "adj_close", symbols, cfg.start_date, cfg.end_date, ctx.as_of, table=table
    )
    if wide.empty:
        raise DataError(f"no {table} in the store for {cfg.start_date}..{cfg.end_date}")
    return wide


def features(ctx: Context) -> pd.DataFrame:
    """Build and write ``features.parquet``."""
    frame = build_features(prices(ctx), ctx.settings.features)
    write_parquet(frame, ctx.path("features", "features.parquet"))
    log.info("features: %d rows x %d columns", *frame.shape)
    return frame


def labels(ctx: Context) -> pd.DataFrame:
    """Build and write ``labels_h{h}.parquet``."""
    frame = forward_returns(prices(ctx), ctx.settings.labels, ctx.settings.backtest.execution_lag)
    write_parquet(frame, ctx.path("features", f"labels_h{ctx.horizon}.parquet"))
    return frame


def regimes(ctx: Context) -> pd.DataFrame:
    """Detect regimes on the benchmark index and write ``regimes.parquet``."""
    index = prices(ctx, table="benchmark").iloc[:, 0]
    frame = detect_regimes(index, ctx.settings.regimes)
    write_parquet(frame, ctx.path("features", "regimes.parquet"))
    return frame


def train(ctx: Context, *, progress: bool = True) -> dict[str, Any]:
    """Walk-forward out-of-sample predictions plus a final model fitted on all labels.

    Writes ``predictions.parquet`` (every score out of sample), ``folds.parquet``
    (per-fold IC), ``skill.json`` and ``model.pkl`` (the model for live trading, trained
    on every row whose label is known at the end of the data) under ``models/h{h}/``.
    """
    s = ctx.settings
    feats = pd.read_parquet(ctx.path("features", "features.parquet"))
    labs = pd.read_parquet(ctx.path("features", f"labels_h{ctx.horizon}.parquet"))
    target = target_column(s.labels)
    result = walk_forward(
        feats,
        labs,
        target,
        s.model_factory,
        s.walk_forward,
        eval_column=s.labels.column,
        progress=progress,
    )
    skill = skill_summary(result.predictions, labs, s.labels.column)
    out = ctx.model_dir()
    write_parquet(result.predictions, out / "predictions.parquet")
    write_parquet(result.fold_metrics, out / "folds.parquet")

    train_rows = feats.join(labs[[target]], how="inner")
    final = s.model_factory().fit(train_rows[list(feats.columns)], train_rows[target])
    with atomic_path(out / "model.pkl") as tmp, tmp.open("wb") as fh:
        pickle.dump(final, fh)
    last_label = pd.Timestamp(labs["label_end"].max())
    meta = {
        "model": s.model_name,
        "horizon": ctx.horizon,
        "target": target,
        "feature_names": list(feats.columns),
        "trained_through_label_end": last_label.date().isoformat(),
        "n_train_rows": len(train_rows),
        "n_folds": len(result.folds),
        "oos_start": result.folds[0].test_start.date().isoformat(),
        "oos_end": result.folds[-1].test_end.date().isoformat(),
        **{f"oos_{k}": v for k, v in skill.items()},
    }
    write_json(meta, out / "skill.json")
    log.info("walk-forward skill: %s", json.dumps(skill))
    return meta
