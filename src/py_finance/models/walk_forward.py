"""Purged walk-forward training: every prediction is out of sample.

The sessions are cut into test folds at the first session of each refit period (year,
quarter or month). The model for a fold is trained on rows whose label is fully known
before the fold starts (``label_end < test_start``: the purge), from an expanding or a
rolling window, and predicts every row of the fold. Because training data always precedes
the test fold, no embargo after the fold is needed here; cross-validation schemes that
train on data after a test fold must add one.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from py_finance.data.calendar import PERIODS, period_starts
from py_finance.errors import ConfigError, DataError
from py_finance.models.base import Estimator

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class WalkForwardConfig:
    """Walk-forward schedule (``walk_forward`` in ``conf/config.yaml``).

    Parameters
    ----------
    refit
        ``yearly``, ``quarterly`` or ``monthly``: test-fold length and refit frequency.
    min_train_sessions
        Distinct training sessions required before the first fold.
    window
        ``expanding`` (all past rows) or ``rolling`` (the last ``rolling_sessions``).
    rolling_sessions
        Length of the rolling window in sessions.
    embargo
        Extra sessions between the last training label and the test fold, on top of the
        purge (``label_end < test_start``): training labels must be known ``embargo``
        sessions before the fold starts. Use at least the label horizon.
    train_every
        Train on every ``train_every``-th session of the window (1: all). The h-day labels
        of neighbouring sessions overlap by h - 1 days, so their rows are near copies:
        thinning bounds training cost on a large universe for little loss of skill (each
        fold's test rows are always complete). The same sessions are kept in every fold.
    warm_trees
        0: every fold's model is trained from scratch. ``n > 0``: the first fold trains the
        model's ``n_estimators`` trees, each later fold continues the previous fold's model
        with ``n`` more trees fitted on its own training rows (warm start; tree models
        only). The previous model saw only labels known before its own fold, so nothing
        leaks; the cost per fold falls to ``n / n_estimators``.
    """

    refit: str = "yearly"
    min_train_sessions: int = 756
    window: str = "expanding"
    rolling_sessions: int = 2520
    embargo: int = 0
    train_every: int = 1
    warm_trees: int = 0

    def __post_init__(self) -> None:
        if self.refit not in PERIODS:
            raise ConfigError(
                f"walk_forward.refit must be one of {tuple(PERIODS)}, got {self.refit!r}"
            )
        if self.window not in ("expanding", "rolling"):
            raise ConfigError("walk_forward.window must be 'expanding' or 'rolling'")
        if self.min_train_sessions < 20:
            raise ConfigError("walk_forward.min_train_sessions must be >= 20")
        if self.embargo < 0:
            raise ConfigError(f"walk_forward.embargo must be >= 0, got {self.embargo}")
        if self.warm_trees < 0:
            raise ConfigError(f"walk_forward.warm_trees must be >= 0, got {self.warm_trees}")
        if self.train_every < 1:
            raise ConfigError(f"walk_forward.train_every must be >= 1, got {self.train_every}")


@dataclass(frozen=True, slots=True)
class Fold:
    """One walk-forward fold: train on rows with ``label_end < train_cutoff``.

    ``train_cutoff`` is ``test_start`` moved back by the embargo, so every training label is
    known at least ``embargo`` sessions before the first test session.
    """

    number: int
    train_start: pd.Timestamp
    test_start: pd.Timestamp
    test_end: pd.Timestamp
    train_cutoff: pd.Timestamp


def make_folds(
    sessions: pd.DatetimeIndex, label_end: pd.Series, cfg: WalkForwardConfig
) -> list[Fold]:
    """Folds over ``sessions`` (the feature sessions, sorted).

    ``label_end`` maps each labelled session to the session its label is known; a fold is
    created only when at least ``min_train_sessions`` labelled sessions end before it.
    """
    sessions = pd.DatetimeIndex(sessions).unique().sort_values()
    starts = period_starts(sessions, cfg.refit)
    ends = np.sort(pd.DatetimeIndex(label_end.dropna()).to_numpy())
    label_sessions = pd.DatetimeIndex(label_end.dropna().index)
    folds: list[Fold] = []
    for i, start in enumerate(starts):
        pos = int(sessions.searchsorted(start))
        if pos - cfg.embargo <= 0:
            continue
        cutoff = sessions[pos - cfg.embargo]
        n_train = int(np.searchsorted(ends, cutoff.to_datetime64(), side="left"))
        if n_train < cfg.min_train_sessions:
            continue
        stop = starts[i + 1] if i + 1 < len(starts) else None
        test_end = sessions[sessions < stop][-1] if stop is not None else sessions[-1]
        if cfg.window == "rolling":
            usable = label_sessions[label_end.dropna().to_numpy() < cutoff.to_datetime64()]
            train_start = usable[-cfg.rolling_sessions :][0]
        else:
            train_start = sessions[0]
        folds.append(Fold(len(folds), train_start, start, test_end, cutoff))
    return folds


def aligned(frame: pd.DataFrame, index: pd.Index, columns: list[str]) -> pd.DataFrame:
    """``frame[columns]`` on the rows of ``index`` (NaN/NaT where missing), both (session, symbol).

    The same as ``frame[columns].reindex(index)`` without building a hash table of millions
    of (session, symbol) tuples: rows are matched on integer keys made from the level codes.
    """
    src = frame.index
    if not isinstance(src, pd.MultiIndex) or not isinstance(index, pd.MultiIndex):
        return frame[columns].reindex(index)
    n_sym = len(index.levels[1]) + 1
    ses_map = index.levels[0].get_indexer(src.levels[0])
    sym_map = index.levels[1].get_indexer(src.levels[1])
    s_ses = ses_map[src.codes[0]]
    s_sym = sym_map[src.codes[1]]
    ok = (s_ses >= 0) & (s_sym >= 0)
    src_key = np.where(ok, s_ses.astype(np.int64) * n_sym + s_sym, -1)
    dst_key = index.codes[0].astype(np.int64) * n_sym + index.codes[1]
    order = np.argsort(src_key, kind="stable")
    sorted_keys = src_key[order]
    pos = np.searchsorted(sorted_keys, dst_key)
    pos = np.minimum(pos, len(sorted_keys) - 1) if len(sorted_keys) else pos
    found = len(sorted_keys) > 0
    hit = (sorted_keys[pos] == dst_key) if found else np.zeros(len(dst_key), dtype=bool)
    rows = np.where(hit, order[pos] if found else 0, -1)
    out = {}
    for col in columns:
        values = frame[col].to_numpy()
        taken = values[np.maximum(rows, 0)] if len(values) else np.empty(len(rows), values.dtype)
        if values.dtype.kind == "M":
            taken = np.where(hit, taken, np.datetime64("NaT"))
        else:
            taken = np.where(hit, taken.astype("float64"), np.nan)
        out[col] = taken
    return pd.DataFrame(out, index=index)


def final_training_rows(
    features: pd.DataFrame, labels: pd.DataFrame, target: str, cfg: WalkForwardConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Row positions of ``features`` and their targets for the model fitted on all labels.

    The same rules as the folds: every row whose label is known, the last
    ``rolling_sessions`` labelled sessions with a rolling window, every ``train_every``-th
    session (counted as in the folds).
    """
    lab = aligned(labels, features.index, [target, "label_end"])
    session_level = features.index.get_level_values("session")
    ok = lab[target].notna().to_numpy() & lab["label_end"].notna().to_numpy()
    sessions = pd.DatetimeIndex(session_level).unique().sort_values()
    if cfg.train_every > 1:
        ok &= sessions.get_indexer(session_level) % cfg.train_every == 0
    if cfg.window == "rolling":
        labelled = pd.DatetimeIndex(labels["label_end"].dropna().index.get_level_values("session"))
        labelled = labelled.unique().sort_values()
        if len(labelled):
            ok &= session_level >= labelled[-cfg.rolling_sessions :][0]
    take = np.flatnonzero(ok)
    return take, lab[target].to_numpy()[take]


def _progress(folds: list[Fold], show: bool) -> Any:
    """A progress bar over the folds (plain iteration where tqdm is not installed)."""
    try:
        from tqdm.auto import tqdm
    except ImportError:  # minimal GPU images carry only numpy, pandas, torch and lightning
        return folds
    return tqdm(folds, desc="walk-forward folds", disable=not show, leave=False)


@dataclass(frozen=True, slots=True)
class WalkForwardResult:
    """Out-of-sample scores and per-fold skill."""

    predictions: pd.DataFrame  # (session, symbol) -> score, fold
    fold_metrics: pd.DataFrame  # per fold: ic, rank_ic, n_train, n_test, dates
    folds: tuple[Fold, ...]
    last_model: Any = None  # the last fold's model when warm-starting (the final one continues it)


def information_coefficients(scores: pd.Series, labels: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Per-session Pearson IC and Spearman rank IC between scores and realised labels."""
    frame = pd.concat({"s": scores, "y": labels}, axis=1).dropna()
    if frame.empty:
        return pd.Series(dtype="float64"), pd.Series(dtype="float64")
    grouped = frame.groupby(level="session")
    ic = grouped.apply(lambda g: g["s"].corr(g["y"]) if len(g) > 2 else np.nan)
    ranked = frame.groupby(level="session").rank()
    rank_ic = ranked.groupby(level="session").apply(
        lambda g: g["s"].corr(g["y"]) if len(g) > 2 else np.nan
    )
    return ic.astype("float64"), rank_ic.astype("float64")


def walk_forward(
    features: pd.DataFrame,
    labels: pd.DataFrame,
    target: str,
    estimator_factory: Callable[[], Estimator],
    cfg: WalkForwardConfig,
    *,
    eval_column: str | None = None,
    progress: bool = True,
) -> WalkForwardResult:
    """Train one model per fold and predict its test fold.

    Parameters
    ----------
    features
        ``(session, symbol)`` feature frame; features at t use data up to the close of t.
    labels
        ``(session, symbol)`` frame with ``target``, ``label_end`` and ``eval_column``.
    target
        Label column to train on.
    estimator_factory
        Returns a fresh unfitted estimator (``fit(X, y) -> self``, ``predict(X)``).
    cfg
        The schedule.
    eval_column
        Raw label column used for IC (default ``target``).
    """
    eval_column = eval_column or target
    if features.empty:
        raise DataError("no feature rows to train on")
    label_cols = list(dict.fromkeys([target, eval_column, "label_end"]))
    # Labels aligned to the feature rows (a few columns); the feature frame itself is never
    # copied whole, only each fold's rows are taken from it.
    lab = aligned(labels, features.index, label_cols)
    sessions = pd.DatetimeIndex(features.index.get_level_values("session")).unique().sort_values()
    label_end = labels["label_end"].groupby(level="session").first()
    folds = make_folds(sessions, label_end, cfg)
    if not folds:
        raise DataError(
            f"not enough history for walk-forward: need {cfg.min_train_sessions} labelled "
            f"sessions before the first fold, the data has {label_end.notna().sum()}"
        )
    session_level = features.index.get_level_values("session")
    end_values = lab["label_end"].to_numpy()
    has_end = ~pd.isna(end_values)
    kept = np.ones(len(features), dtype=bool)
    if cfg.train_every > 1:
        kept = sessions.get_indexer(session_level) % cfg.train_every == 0
    y_all = lab[target].to_numpy()
    feature_cols = list(features.columns)
    preds, rows = [], []
    previous: Any = None
    for fold in _progress(folds, progress):
        train_mask = (
            (session_level >= fold.train_start)
            & has_end
            & kept
            & (end_values < fold.train_cutoff.to_datetime64())
        )
        take = np.flatnonzero(train_mask)
        in_test = np.flatnonzero(
            (session_level >= fold.test_start) & (session_level <= fold.test_end)
        )
        test = lab.iloc[in_test]
        model = copy.deepcopy(estimator_factory())
        if cfg.train_every > 1 and int(getattr(model, "context_sessions", 0) or 0):
            raise ConfigError(
                "walk_forward.train_every > 1 thins the sessions a sequence model reads its "
                "windows from: use train_every=1 with lstm/tcn"
            )
        if cfg.warm_trees and previous is not None:
            tree_model: Any = model  # a tree model's fit takes the warm start
            tree_model.fit(
                features.iloc[take],
                pd.Series(y_all[take], name=target),
                warm_from=previous,
                n_new=cfg.warm_trees,
            )
        else:
            model.fit(features.iloc[take], pd.Series(y_all[take], name=target))
        if cfg.warm_trees:
            if not getattr(model, "supports_warm_start", False):
                raise ConfigError(
                    f"walk_forward.warm_trees needs a tree model; {type(model).__name__} "
                    "cannot continue a fitted model"
                )
            previous = model
        # Sequence models need the features of the sessions before the fold (known then;
        # only their labels are purged) to form the first windows.
        context = int(getattr(model, "context_sessions", 0))
        first = max(0, int(sessions.searchsorted(fold.test_start)) - context)
        inputs = features[(session_level >= sessions[first]) & (session_level <= fold.test_end)]
        keep = inputs.index.get_level_values("session") >= fold.test_start
        out = pd.DataFrame(index=test.index)
        # The score is the model's deterministic prediction (what the live loop uses); models
        # with an uncertainty estimate add its std.
        out["score"] = np.asarray(model.predict(inputs[feature_cols]))[keep]
        if hasattr(model, "predict_dist"):
            out["std"] = np.asarray(model.predict_dist(inputs[feature_cols])[1])[keep]
        out["fold"] = fold.number
        score = out["score"]
        preds.append(out)
        ic, rank_ic = information_coefficients(score, test[eval_column])
        rows.append(
            {
                "fold": fold.number,
                "train_start": fold.train_start,
                "train_label_end_max": pd.Timestamp(np.max(end_values[take])),
                "test_start": fold.test_start,
                "test_end": fold.test_end,
                "n_train": len(take),
                "n_test": len(test),
                "ic": float(ic.mean()) if len(ic) else np.nan,
                "rank_ic": float(rank_ic.mean()) if len(rank_ic) else np.nan,
                "rank_ic_std": float(rank_ic.std()) if len(rank_ic) > 1 else np.nan,
            }
        )
        log.debug(
            "fold %d %s..%s trained on %d rows",
            fold.number,
            fold.test_start,
            fold.test_end,
            len(take),
        )
    predictions = pd.concat(preds).sort_index()
    return WalkForwardResult(predictions, pd.DataFrame(rows), tuple(folds), previous)


def skill_summary(
    predictions: pd.DataFrame, labels: pd.DataFrame, eval_column: str
) -> dict[str, float]:
    """Mean IC, rank IC and ICIR (mean / std of per-session rank IC) over all predictions."""
    ic, rank_ic = information_coefficients(predictions["score"], labels[eval_column])
    std = float(rank_ic.std()) if len(rank_ic) > 1 else np.nan
    return {
        "ic": float(ic.mean()) if len(ic) else np.nan,
        "rank_ic": float(rank_ic.mean()) if len(rank_ic) else np.nan,
        "icir": float(rank_ic.mean() / std) if std and np.isfinite(std) and std > 0 else np.nan,
    }
