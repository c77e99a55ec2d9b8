"""Research stages: ingest -> features -> labels -> regimes -> train.

Each stage reads the previous stage's files and writes its own, atomically, under the
context's root. Reads of the store name their as-of time explicitly.
"""

from __future__ import annotations

import logging
import pickle
import sys
from typing import Any

import pandas as pd

from py_finance.errors import DataError
from py_finance.features.labels import forward_returns, target_column
from py_finance.features.regimes import detect_regimes
from py_finance.features.technical import build_features
from py_finance.io import atomic_path, read_parquet, write_json, write_parquet
from py_finance.models.walk_forward import skill_summary, walk_forward
from py_finance.pipeline.context import Context

log = logging.getLogger(__name__)

# Symbols per committed store snapshot for the local sources (bundled, files, synthetic).
LOCAL_BATCH = 250


def ingest(ctx: Context) -> dict[str, Any]:
    """Load the configured source into the store; report validation and the calendar check.

    Bars go through validation (refused rows to the store's quarantine, with the reason);
    the store is written in committed batches under its lock, so an interrupted ingest
    resumes and a repeated one adds nothing. ``meta.json`` records the source facts,
    whether the universe is survivorship-biased, the calendar check and the ingest summary.
    """
    from py_finance.data.ingest import check_calendar, ingest_bars, read_universe
    from py_finance.data.sources.registry import get_source

    cfg = ctx.settings.data
    options = dict(cfg.options or {})
    if "path" in options:  # a files source's directory, relative to the project
        options["path"] = str(ctx.root / str(options["path"]))
    source = get_source(cfg.source, **options)
    universe = read_universe(ctx.root / cfg.universe) if cfg.universe else None
    own_universe = callable(getattr(source, "universe", None)) and source.universe() is not None
    if cfg.symbols:
        symbols = list(cfg.symbols)
    elif universe is not None:
        symbols = sorted(universe["symbol"].unique())
    elif hasattr(source, "symbols"):
        symbols = source.symbols()
    else:
        raise DataError(f"data.symbols is required for the {cfg.source} source (or data.universe)")
    store = ctx.store
    # Local sources fetch nothing over a network: large batches (few store commits).
    local = cfg.source in ("bundled", "files", "synthetic")
    report = ingest_bars(
        store,
        source,
        symbols,
        cfg.start_date,
        cfg.end_date,
        calendar=cfg.calendar,
        benchmark=cfg.benchmark,
        universe=universe,
        batch_size=max(cfg.batch_size, LOCAL_BATCH) if local else cfg.batch_size,
        progress=False,
    )
    log.info("ingest: %s", report.summary().replace("\n", "; "))
    check = check_calendar(store, symbols, cfg.end_date, cfg.calendar)
    if check.ok:
        log.info(check.summary())
    else:
        log.warning(check.summary())
    first_known = store.bars(symbols[:1], None, None, pd.Timestamp.max.tz_localize("UTC"))[
        "available_at"
    ].min()
    sector_map = source.sectors(symbols)
    store.write_sectors(sector_map, available_at=first_known, calendar=cfg.calendar)
    has_universe = universe is not None or own_universe
    biased = bool(source.info.survivorship_biased or not has_universe)
    notes = list(source.info.notes)
    if "from" not in sector_map or sector_map["from"].isna().all():
        notes.append(
            "sector map is today's GICS sectors applied to all history (not point in time)"
        )
    if not has_universe and not source.info.survivorship_biased:
        notes.append("symbols picked today without a membership file: survivorship-biased")
    meta = {
        "source": source.info.name,
        "survivorship_biased": biased,
        "adjusted_only": source.info.adjusted_only,
        "notes": notes,
        "symbols": symbols,
        "start": cfg.start_date.isoformat(),
        "end": cfg.end_date.isoformat(),
        "universe": cfg.universe
        or ("the source's membership spells" if own_universe else "derived from the ingested data"),
        "calendar_check": {
            "ok": check.ok,
            "summary": check.summary(),
            "missing_sessions": [d.isoformat() for d in check.missing_sessions],
            "extra_dates": [d.isoformat() for d in check.extra_dates],
        },
        "rows_added": {
            "bars": report.rows_added.get("bars", 0),
            "benchmark": report.rows_added.get("benchmark", 0),
        },
        "ingest": report.as_dict(),
        "snapshot": store.fingerprint(),
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


def feature_frame(ctx: Context, start: Any, end: Any, as_of: pd.Timestamp) -> pd.DataFrame:
    """The configured feature set from the store's bars in ``[start, end]`` known at ``as_of``.

    The one feature path of the research stages and the live loop. Groups that read the
    store's fundamentals or news get every version known at ``as_of`` (whatever ``start``);
    the groups themselves use at session t only what was known by the close of t.
    """
    from py_finance.features.registry import adjusted_panel, needs
    from py_finance.features.tables import read_tables

    fcfg = ctx.settings.features
    dcfg = ctx.settings.data
    symbols = list(dcfg.symbols) if dcfg.symbols else None
    if fcfg.groups:
        tables, extra = needs([g for g, _, _ in fcfg.make_groups()])
        bars = adjusted_panel(ctx.store, symbols, start, end, as_of, extra=extra)
        market = None
        if fcfg.expanding:
            bench = ctx.store.wide("adj_close", None, start, end, as_of, table="benchmark")
            market = bench.iloc[:, 0]
        known = read_tables(ctx.store, tables, list(map(str, bars["close"].columns)), as_of)
        return build_features(
            bars,
            fcfg,
            market=market,
            calendar=dcfg.calendar,
            fundamentals=known.get("fundamentals"),
            news=known.get("news"),
        )
    # momentum/volatility on closes only (the basic set)
    return build_features(ctx.store.wide("adj_close", symbols, start, end, as_of), fcfg)


def features(ctx: Context) -> pd.DataFrame:
    """Build and write ``features.parquet``.

    Reads every bar field the store has (open/high/low/volume on the adjusted basis; the
    bundled source has adjusted closes only) and, for feature sets with regime features,
    the benchmark index, all as of the end of the configured range.
    """
    dcfg = ctx.settings.data
    frame = feature_frame(ctx, dcfg.start_date, dcfg.end_date, ctx.as_of)
    write_parquet(frame, ctx.path("features", "features.parquet"))
    log.info("features: %d rows x %d columns", *frame.shape)
    return frame


def labels(ctx: Context) -> pd.DataFrame:
    """Build and write ``labels_h{h}.parquet``: members' forward returns, delistings paid out."""
    from py_finance.data.store import membership_mask

    px = prices(ctx)
    members = membership_mask(ctx.store.membership(ctx.as_of), px.index, px.columns)
    frame = forward_returns(
        px,
        ctx.settings.labels,
        ctx.settings.backtest.execution_lag,
        delistings=ctx.store.delistings(ctx.as_of),
        members=members,
    )
    write_parquet(frame, ctx.path("features", f"labels_h{ctx.horizon}.parquet"))
    return frame


def regimes(ctx: Context) -> pd.DataFrame:
    """Detect regimes on the benchmark index and write ``regimes.parquet``."""
    index = prices(ctx, table="benchmark").iloc[:, 0]
    frame = detect_regimes(index, ctx.settings.regimes)
    write_parquet(frame, ctx.path("features", "regimes.parquet"))
    return frame


def train(ctx: Context, *, progress: bool | None = None) -> dict[str, Any]:
    """Walk-forward out-of-sample predictions plus a final model fitted on all labels.

    Writes ``predictions.parquet`` (every score out of sample), ``folds.parquet``
    (per-fold IC), ``skill.json`` and ``model.pkl`` (the model for live trading, trained
    on every row whose label is known at the end of the data) under ``models/h{h}/``.
    ``progress`` shows a bar over the folds; by default only on a terminal (a bar's
    redraws written to a log file are noise).
    """
    if progress is None:
        progress = sys.stderr.isatty()
    s = ctx.settings
    feats = read_parquet(ctx.path("features", "features.parquet"), stage=ctx.dvc_stage("features"))
    labs = read_parquet(
        ctx.path("features", f"labels_h{ctx.horizon}.parquet"), stage=ctx.dvc_stage("labels")
    )
    target = target_column(s.labels)
    result = walk_forward(
        feats,
        labs,
        target,
        s.model_factory,
        s.walk_forward,
        eval_column=s.labels.column,
        progress=progress,
        final=True,
    )
    skill = skill_summary(result.predictions, labs, s.labels.column)
    out = ctx.model_dir()
    write_parquet(result.predictions, out / "predictions.parquet")
    write_parquet(result.fold_metrics, out / "folds.parquet")
    final = result.final_model
    with atomic_path(out / "model.pkl") as tmp, tmp.open("wb") as fh:
        pickle.dump(final, fh)
    last_label = pd.Timestamp(labs["label_end"].max())
    meta = {
        "model": s.model_name,
        "horizon": ctx.horizon,
        "target": target,
        "feature_names": list(feats.columns),
        "trained_through_label_end": last_label.date().isoformat(),
        "n_train_rows": result.final_rows,
        "n_folds": len(result.folds),
        "oos_start": result.folds[0].test_start.date().isoformat(),
        "oos_end": result.folds[-1].test_end.date().isoformat(),
        **{f"oos_{k}": v for k, v in skill.items()},
    }
    write_json(meta, out / "skill.json")
    log.info("walk-forward skill: %s", ", ".join(f"{k} {v:.4g}" for k, v in skill.items()))
    return meta
