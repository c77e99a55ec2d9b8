"""Purged walk-forward training: every prediction is out of sample.

The sessions are cut into test folds at the first session of each refit period (year,
quarter or month). The model for a fold is trained on rows whose label is fully known
before the fold starts (``label_end < test_start``: the purge), from an expanding or a
rolling window, and predicts every row of the fold. Because training data always precedes
the test fold, no embargo after the fold is needed here; cross-validation schemes that
train on data after a test fold must add one.

Early stopping (tree models with ``patience > 0``): each fold's training rows are split once
more, the same way. The last ``val_fraction`` of the fold's training sessions validate, and
the model is fitted on the rows whose label is known before the first validation session
(``label_end < val_start``, the purge between the two, a gap of the label horizon). The
validation rows are training rows of the fold, so nothing of the test fold is read. The
number of trees (``n_trees``) each fold kept is in its fold record; the final model grows the
median of the folds' numbers on every known label, without a validation tail of its own.
A model takes part through ``validation_fraction`` (0: none), ``fit(X, y, valid=...)``,
``fit_record_`` (what the fit chose, logged per fold), ``size_key`` (its key there) and
``sized(n)`` (the final model). Sequence models stop early on a purged tail of their own
(``chooses_own_size``); their final model likewise trains the folds' median epochs.
"""

from __future__ import annotations

import copy
import functools
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from py_finance.data.calendar import PERIODS, period_starts
from py_finance.errors import ConfigError, DataError
from py_finance.models.base import Estimator

log = logging.getLogger(__name__)

EXECUTORS = ("local", "processes", "ray")
RAY_ADDRESS_ENV = "RAY_ADDRESS"


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
    executor
        How the folds are trained: ``local`` (one after another in this process),
        ``processes`` (``workers`` forked processes, each fold's model with one thread:
        OpenMP cannot be forked, so each process pins it to one thread before it trains)
        or ``ray`` (one Ray task per fold on the cluster at
        ``$RAY_ADDRESS``, or a Ray started here; each task reserves the model's threads as
        CPUs; the feature frame is put in Ray's object store once). The folds are
        independent, so every executor gives the same predictions bit for bit (tree models
        are deterministic for any thread count); ``warm_trees`` chains the folds and needs
        ``local``.
    workers
        Processes of the ``processes`` executor (0: one per core).
    """

    refit: str = "yearly"
    min_train_sessions: int = 756
    window: str = "expanding"
    rolling_sessions: int = 2520
    embargo: int = 0
    train_every: int = 1
    warm_trees: int = 0
    executor: str = "local"
    workers: int = 0

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
        if self.executor not in EXECUTORS:
            raise ConfigError(
                f"walk_forward.executor must be one of {EXECUTORS}, got {self.executor!r}"
            )
        if self.workers < 0:
            raise ConfigError(f"walk_forward.workers must be >= 0, got {self.workers}")
        if self.warm_trees and self.executor != "local":
            raise ConfigError(
                "walk_forward.warm_trees continues each fold's model from the previous fold's: "
                "it needs walk_forward.executor=local"
            )


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


def _progress(folds: Iterable[Any], show: bool, total: int | None = None) -> Any:
    """A progress bar over the folds (plain iteration where tqdm is not installed)."""
    try:
        from tqdm.auto import tqdm
    except ImportError:  # minimal GPU images carry only numpy, pandas, torch and lightning
        return folds
    return tqdm(folds, desc="walk-forward folds", disable=not show, leave=False, total=total)


@dataclass(frozen=True, slots=True)
class WalkForwardResult:
    """Out-of-sample scores and per-fold skill."""

    predictions: pd.DataFrame  # (session, symbol) -> score, fold
    fold_metrics: pd.DataFrame  # per fold: ic, rank_ic, n_train, n_test, dates (, n_trees)
    folds: tuple[Fold, ...]
    last_model: Any = None  # the last fold's model when warm-starting (the final one continues it)
    final_model: Any = None  # with ``final=True``: the model fitted on every known label
    final_rows: int = 0  # the rows that model was fitted on
    final_size: int | None = None  # with early stopping: the folds' median size it was grown to


def _grouped_pearson(codes: np.ndarray, n: int, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson correlation of ``x`` and ``y`` within each group ``codes`` (0..n-1).

    NaN for a group of fewer than three rows or with a constant side.
    """
    count = np.bincount(codes, minlength=n).astype("float64")
    with np.errstate(invalid="ignore", divide="ignore"):
        dx = x - (np.bincount(codes, x, n) / count)[codes]
        dy = y - (np.bincount(codes, y, n) / count)[codes]
        sxy = np.bincount(codes, dx * dy, n)
        sxx = np.bincount(codes, dx * dx, n)
        syy = np.bincount(codes, dy * dy, n)
        r = sxy / np.sqrt(sxx * syy)
    r[(count <= 2) | (sxx <= 0) | (syy <= 0)] = np.nan
    return np.clip(r, -1.0, 1.0)


def information_coefficients(scores: pd.Series, labels: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Per-session Pearson IC and Spearman rank IC between scores and realised labels.

    Vectorised over sessions (one pass of ``np.bincount`` per moment, ranks from one grouped
    rank); a session with fewer than three scored names, or constant scores or labels, is NaN.
    """
    frame = pd.concat({"s": scores, "y": labels}, axis=1).dropna()
    if frame.empty:
        return pd.Series(dtype="float64"), pd.Series(dtype="float64")
    codes, sessions = pd.factorize(frame.index.get_level_values("session"), sort=True)
    n = len(sessions)
    s = frame["s"].to_numpy("float64")
    y = frame["y"].to_numpy("float64")
    ranked = frame.groupby(codes).rank()
    index = pd.Index(sessions, name="session")
    ic = pd.Series(_grouped_pearson(codes, n, s, y), index=index)
    rank_ic = pd.Series(
        _grouped_pearson(
            codes, n, ranked["s"].to_numpy("float64"), ranked["y"].to_numpy("float64")
        ),
        index=index,
    )
    return ic, rank_ic


def _sized(factory: Callable[[], Any], n: int) -> Any:
    """``factory()``'s model with a fixed size ``n`` (the final model after early stopping)."""
    return factory().sized(n)


def _context_sessions(model: Any) -> int:
    return int(getattr(model, "context_sessions", 0) or 0)


FINAL = -1  # job number of the model fitted on every known label (no test fold)


@dataclass(frozen=True, slots=True)
class _FoldJob:
    """Row positions of one fold: training rows, model inputs, and which inputs are tested."""

    number: int
    take: np.ndarray  # training rows
    inputs: np.ndarray  # rows the model reads to score the fold (context sessions first)
    keep: np.ndarray  # bool over ``inputs``: the fold's own (test) rows
    fit: np.ndarray | None = None  # with early stopping: the rows fitted on (purged from val)
    val: np.ndarray | None = None  # with early stopping: the validation tail of ``take``


# (model, scores, std or None, what the fit chose: {"n_trees": ...} or {})
FoldOutput = tuple[Any, np.ndarray, "np.ndarray | None", dict[str, Any]]


def validation_tail(
    rows: np.ndarray, session_level: Any, label_end: np.ndarray, fraction: float
) -> tuple[np.ndarray, np.ndarray] | None:
    """Split training ``rows`` into the rows to fit on and a purged validation tail.

    The last ``fraction`` of the rows' distinct sessions validate; the rows fitted on are
    those whose label is known before the first validation session (``label_end <
    val_start``). ``None`` where the window is too short to leave rows on both sides.
    """
    sessions = np.asarray(session_level[rows])
    uniq = np.unique(sessions)
    n_val = max(1, round(len(uniq) * fraction))
    if len(uniq) - n_val < 2:
        return None
    val_start = uniq[len(uniq) - n_val]
    fit = rows[label_end[rows] < val_start]
    val = rows[sessions >= val_start]
    if not len(fit) or not len(val):
        return None
    return fit, val


def _fit_record(model: Any) -> dict[str, Any]:
    try:
        return dict(getattr(model, "fit_record_", None) or {})
    except AttributeError:  # fitted without choosing anything
        return {}


def _fit_fold(
    features: pd.DataFrame,
    y_all: np.ndarray,
    target: str,
    factory: Callable[[], Estimator],
    job: _FoldJob,
    *,
    warm_from: Any = None,
    warm_trees: int = 0,
    threads: int | None = None,
) -> FoldOutput:
    """Train one fold's model on its rows and score its test rows."""
    model: Any = copy.deepcopy(factory())
    if threads is not None and hasattr(model, "set_threads"):
        model.set_threads(threads)
    rows = job.take if job.fit is None else job.fit
    X = features.iloc[rows]
    y = pd.Series(y_all[rows], name=target)
    if warm_from is not None:
        model.fit(X, y, warm_from=warm_from, n_new=warm_trees)
    elif job.val is not None:
        valid = (features.iloc[job.val], pd.Series(y_all[job.val], name=target))
        model.fit(X, y, valid=valid)
    else:
        model.fit(X, y)
    if job.number == FINAL:
        return model, np.empty(0), None, _fit_record(model)
    inputs = features.iloc[job.inputs]
    score = np.asarray(model.predict(inputs))[job.keep]
    std = None
    if hasattr(model, "predict_dist"):
        std = np.asarray(model.predict_dist(inputs)[1])[job.keep]
    return model, score, std, _fit_record(model)


# What forked fold workers read: set in the parent just before the pool starts, inherited
# by the children copy-on-write (the feature frame is never pickled).
_SHARED: dict[str, Any] = {}


def _fit_shared(job: _FoldJob) -> FoldOutput:
    model, score, std, record = _fit_fold(
        _SHARED["features"],
        _SHARED["y"],
        _SHARED["target"],
        _SHARED["factory"],
        job,
        threads=_SHARED["threads"],
    )
    # Fold models stay in the worker (only their scores come back); the final model returns
    # with the thread count it was configured with (the one it would have had locally).
    if job.number != FINAL:
        return None, score, std, record
    model.set_threads(_SHARED["factory"]().threads)
    return model, score, std, record


def _one_thread() -> None:
    """Fold-process start: every loaded OpenMP (and BLAS) runtime to one thread."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # minimal images: no scikit-learn, no threadpoolctl
        return
    threadpool_limits(1)


def available_cores() -> int:
    """Cores this process may use: its CPU affinity, capped by ``$OMP_NUM_THREADS`` when set.

    Ray sets ``OMP_NUM_THREADS`` in a task to the CPUs it reserved, so a sweep job on a Ray
    node forks no more fold workers than it was given.
    """
    import os

    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    omp = os.environ.get("OMP_NUM_THREADS", "")
    if omp.isdigit() and int(omp) > 0:
        cores = min(cores, int(omp))
    return max(1, cores)


def _fit_remote(
    features: pd.DataFrame,
    y_all: np.ndarray,
    target: str,
    factory: Callable[[], Estimator],
    job: _FoldJob,
) -> FoldOutput:
    """One fold as a Ray task: scores back, and the model itself for the final job only."""
    model, score, std, record = _fit_fold(features, y_all, target, factory, job)
    return (model if job.number == FINAL else None), score, std, record


def _run_folds_ray(
    features: pd.DataFrame,
    y_all: np.ndarray,
    target: str,
    factory: Callable[[], Estimator],
    jobs: list[_FoldJob],
    progress: bool,
) -> list[FoldOutput]:
    import os

    import ray

    if not ray.is_initialized():
        address = os.environ.get(RAY_ADDRESS_ENV) or None
        log.info("walk-forward folds on Ray at %s", address or "a Ray started here")
        ray.init(address=address, log_to_driver=False, include_dashboard=False)
    threads = int(getattr(factory(), "threads", 1) or 1)
    remote = ray.remote(num_cpus=threads, max_retries=3)(_fit_remote)
    # The frame and targets go to the object store once; every task reads them from there.
    features_ref, y_ref = ray.put(features), ray.put(y_all)
    refs = [remote.remote(features_ref, y_ref, target, factory, job) for job in jobs]
    index = {ref: i for i, ref in enumerate(refs)}
    results: dict[int, FoldOutput] = {}
    pending = list(refs)
    bar = _progress(range(len(refs)), progress)
    bar_update = getattr(bar, "update", None)
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        for ref in done:
            results[index[ref]] = ray.get(ref)
            if bar_update is not None:
                bar_update(1)
    if hasattr(bar, "close"):
        bar.close()
    return [results[i] for i in range(len(jobs))]


def _run_folds(
    features: pd.DataFrame,
    y_all: np.ndarray,
    target: str,
    factory: Callable[[], Estimator],
    cfg: WalkForwardConfig,
    jobs: list[_FoldJob],
    progress: bool,
) -> list[FoldOutput]:
    """Every fold's (model, scores, std), in fold order, by ``cfg.executor``."""
    workers = min(cfg.workers or available_cores(), len(jobs))
    executor = cfg.executor
    if executor != "local" and not hasattr(factory(), "set_threads"):
        # Sequence models train on the accelerator (and torch must not be forked).
        log.info("walk_forward.executor=%s: this model trains its folds locally", executor)
        executor = "local"
    if executor == "ray":
        return _run_folds_ray(features, y_all, target, factory, jobs, progress)
    if executor == "local" or workers <= 1:
        out: list[FoldOutput] = []
        previous = None
        for job in _progress(jobs, progress):
            fitted = _fit_fold(
                features,
                y_all,
                target,
                factory,
                job,
                warm_from=previous if cfg.warm_trees else None,
                warm_trees=cfg.warm_trees,
            )
            previous = fitted[0]
            out.append(fitted)
        return out
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # One thread per fold process: a forked child inherits the parent's OpenMP runtime
    # without its threads, and a parallel region of more than one thread then waits forever
    # for them (GNU libgomp; the parent may have used it: K-means in the regimes stage, or an
    # earlier job's model). One-thread regions need no thread pool.
    threads = 1
    preload = getattr(factory(), "preload", None)
    if preload is not None:
        preload()  # import the library once, before the fork, not once per worker
    _SHARED.update(features=features, y=y_all, target=target, factory=factory, threads=threads)
    try:
        # Largest folds first: the last fold to finish is a small one.
        order = sorted(range(len(jobs)), key=lambda i: -len(jobs[i].take))
        results: dict[int, FoldOutput] = {}
        ctx = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_one_thread) as pool:
            futures = {pool.submit(_fit_shared, jobs[i]): i for i in order}
            from concurrent.futures import as_completed

            for fut in _progress(as_completed(futures), progress, total=len(jobs)):
                results[futures[fut]] = fut.result()
    finally:
        _SHARED.clear()
    return [results[i] for i in range(len(jobs))]


def walk_forward(
    features: pd.DataFrame,
    labels: pd.DataFrame,
    target: str,
    estimator_factory: Callable[[], Estimator],
    cfg: WalkForwardConfig,
    *,
    eval_column: str | None = None,
    progress: bool = True,
    final: bool = False,
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
    final
        Also fit the model for live trading on every row whose label is known at the end
        of the data (:func:`final_training_rows`; with warm starts it continues the last
        fold's model), as one more job of the executor: ``result.final_model``.
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
    probe = estimator_factory()
    if cfg.train_every > 1 and _context_sessions(probe):
        raise ConfigError(
            "walk_forward.train_every > 1 thins the sessions a sequence model reads its "
            "windows from: use train_every=1 with lstm/tcn"
        )
    if cfg.warm_trees and not getattr(probe, "supports_warm_start", False):
        raise ConfigError(
            f"walk_forward.warm_trees needs a tree model; {type(probe).__name__} "
            "cannot continue a fitted model"
        )
    y_all = lab[target].to_numpy()
    # Early stopping needs a validation tail; warm starts grow a fixed number of trees.
    fraction = 0.0 if cfg.warm_trees else float(getattr(probe, "validation_fraction", 0.0) or 0)
    jobs = []
    for fold in folds:
        train_mask = (
            (session_level >= fold.train_start)
            & has_end
            & kept
            & (end_values < fold.train_cutoff.to_datetime64())
        )
        # Sequence models need the features of the sessions before the fold (known then;
        # only their labels are purged) to form the first windows.
        first = max(0, int(sessions.searchsorted(fold.test_start)) - _context_sessions(probe))
        inputs = np.flatnonzero(
            (session_level >= sessions[first]) & (session_level <= fold.test_end)
        )
        train_rows = np.flatnonzero(train_mask)
        split = None
        if fraction:
            split = validation_tail(train_rows, session_level, end_values, fraction)
        jobs.append(
            _FoldJob(
                fold.number,
                train_rows,
                inputs,
                session_level[inputs] >= fold.test_start,
                *(split or (None, None)),
            )
        )
    final_job = None
    if final:
        take, _ = final_training_rows(features, labels, target, cfg)
        final_job = _FoldJob(FINAL, take, np.empty(0, np.int64), np.empty(0, bool))
    # A model that chooses its size per fit (trees kept by early stopping on the folds'
    # validation tails, a sequence model's epochs on its own) grows its final model to the
    # folds' median choice: the final model waits for the folds.
    size_key = getattr(probe, "size_key", None)
    own = bool(getattr(probe, "chooses_own_size", False))  # no validation tail from here
    stopping = any(job.val is not None for job in jobs) or own
    if final_job is not None and not stopping:
        jobs.append(final_job)  # trained beside the folds
    fitted = _run_folds(features, y_all, target, estimator_factory, cfg, jobs, progress)
    final_size = None
    if final_job is not None and stopping:
        # The final model is grown to the folds' choice: it waits for the folds.
        sizes = [
            int(out[3][size_key])
            for job, out in zip(jobs, fitted, strict=True)
            if (job.val is not None or own) and size_key in out[3]
        ]
        factory: Callable[[], Any] = estimator_factory
        if sizes:  # a model that chose no size trains as configured
            final_size = round(float(np.median(sizes)))
            factory = functools.partial(_sized, estimator_factory, final_size)
        fitted += _run_folds(features, y_all, target, factory, cfg, [final_job], False)
        jobs.append(final_job)
    final_rows = len(final_job.take) if final_job is not None else 0
    final_model = fitted.pop()[0] if final else None
    jobs = jobs[: len(folds)]
    preds, rows = [], []
    previous: Any = None
    for fold, job, (model, score, std, record) in zip(folds, jobs, fitted, strict=True):
        take = job.take
        test = lab.iloc[job.inputs[job.keep]]
        out = pd.DataFrame(index=test.index)
        # The score is the model's deterministic prediction (what the live loop uses); models
        # with an uncertainty estimate add its std.
        out["score"] = score
        if std is not None:
            out["std"] = std
        out["fold"] = fold.number
        preds.append(out)
        ic, rank_ic = information_coefficients(out["score"], test[eval_column])
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
                **({"n_val": len(job.val)} if job.val is not None else {}),
                **record,
            }
        )
        log.debug(
            "fold %d %s..%s trained on %d rows",
            fold.number,
            fold.test_start,
            fold.test_end,
            len(take),
        )
        previous = model
    predictions = pd.concat(preds).sort_index()
    return WalkForwardResult(
        predictions,
        pd.DataFrame(rows),
        tuple(folds),
        previous if cfg.warm_trees else None,
        final_model,
        final_rows,
        final_size,
    )


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
