"""Market regimes: K-means (or a Gaussian HMM) on market return and volatility, point in time.

The detector is refitted at the first session of every refit period (year by default) on
the market features of earlier sessions only (expanding window, or the last
``rolling_sessions`` with ``window: rolling``), and labels the sessions of that period with
the fitted model. A session's regime therefore depends only on prices up to its own close.
Clusters (HMM states) of the first fit are named by matching their centroids (in
standardised units) to the prototypes bull/bear x low/high volatility with an optimal
one-to-one assignment; every later fit (``naming: anchored``, the default) inherits the name
of the previous fit's nearest centroid (again one-to-one), so a refit never swaps names
between clusters that barely moved. ``naming: prototype`` names every fit afresh.

The HMM labels a session with its *filtered* state (forward algorithm over the sessions up
to t), never the smoothed or Viterbi path, which would use later sessions.

A change of regime is an event: ``regime_change`` marks the session it happens on and
:func:`regime_events` lists them for alerts.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from py_finance.data.calendar import PERIODS, period_starts
from py_finance.errors import ConfigError, DataError

REGIME_NAMES = ("bull_low_vol", "bull_high_vol", "bear_low_vol", "bear_high_vol")
UNKNOWN = "unknown"
# (return sign, volatility sign) of each name in standardised feature space.
_PROTOTYPES = np.array([[1.0, -1.0], [1.0, 1.0], [-1.0, -1.0], [-1.0, 1.0]])
METHODS = ("kmeans", "hmm")
WINDOWS = ("expanding", "rolling")
NAMINGS = ("anchored", "prototype")
HMM_BURN_IN = 252
# Opt-in memo of fits keyed by (config, training data), see fit_cache().
_FIT_CACHE: dict[tuple[object, ...], RegimeFit] | None = None


@dataclass(frozen=True, slots=True)
class RegimeConfig:
    """Regime detector (``conf/regimes/``).

    Parameters
    ----------
    n_clusters
        Number of K-means clusters; 4 maps one-to-one onto the four regime names.
    return_window, vol_window
        Trailing windows (sessions) of the market return and annualised volatility.
    refit
        ``yearly``, ``quarterly`` or ``monthly``.
    min_train_sessions
        Sessions of market features needed before the first fit (earlier: ``unknown``).
    seed
        K-means / HMM random state.
    method
        ``kmeans`` or ``hmm`` (Gaussian HMM, hmmlearn, filtered states).
    window
        ``expanding`` (every earlier session) or ``rolling`` (the last ``rolling_sessions``).
    rolling_sessions
        Training sessions of a rolling window.
    hmm_iter
        EM iterations of an HMM fit.
    naming
        ``anchored`` (names follow the previous fit's centroids) or ``prototype`` (each fit
        named by the prototypes alone).
    """

    n_clusters: int = 4
    return_window: int = 20
    vol_window: int = 20
    refit: str = "yearly"
    min_train_sessions: int = 504
    seed: int = 42
    method: str = "kmeans"
    window: str = "expanding"
    rolling_sessions: int = 2520
    hmm_iter: int = 50
    naming: str = "anchored"

    def __post_init__(self) -> None:
        if self.naming not in NAMINGS:
            raise ConfigError(f"regimes.naming must be one of {NAMINGS}, got {self.naming!r}")
        if self.method not in METHODS:
            raise ConfigError(f"regimes.method must be one of {METHODS}, got {self.method!r}")
        if self.window not in WINDOWS:
            raise ConfigError(f"regimes.window must be one of {WINDOWS}, got {self.window!r}")
        if self.window == "rolling" and self.rolling_sessions < self.min_train_sessions:
            raise ConfigError("regimes.rolling_sessions must be >= regimes.min_train_sessions")
        if self.n_clusters != 4:
            raise ConfigError("regimes.n_clusters must be 4 (one per regime name)")
        if self.refit not in PERIODS:
            raise ConfigError(f"regimes.refit must be one of {tuple(PERIODS)}, got {self.refit!r}")
        if self.min_train_sessions < 50:
            raise ConfigError("regimes.min_train_sessions must be >= 50")


def market_features(index: pd.Series, cfg: RegimeConfig) -> pd.DataFrame:
    """Trailing market return and annualised volatility of a price index, per session."""
    index = index.sort_index().astype("float64")
    log_ret = index.apply(np.log).diff()
    return pd.DataFrame(
        {
            "market_ret": index / index.shift(cfg.return_window) - 1.0,
            "market_vol": log_ret.rolling(cfg.vol_window, min_periods=cfg.vol_window).std()
            * np.sqrt(252.0),
        }
    )


def name_like(
    centers_z: np.ndarray, previous: RegimeFit, mean: np.ndarray, scale: np.ndarray
) -> list[str]:
    """Names of new centroids: those of the previous fit's nearest centroids, one-to-one.

    Both sets are compared in the new fit's standardised units.
    """
    from scipy.optimize import linear_sum_assignment

    prev_z = (previous.centers_ * previous.scale_ + previous.mean_ - mean) / scale
    cost = ((centers_z[:, None, :] - prev_z[None, :, :]) ** 2).sum(axis=2)
    rows, cols = linear_sum_assignment(cost)
    names = [""] * len(centers_z)
    for r, c in zip(rows, cols, strict=True):
        names[r] = previous.names_[c]
    return names


def name_clusters(centers_z: np.ndarray) -> list[str]:
    """Regime name of each centroid (rows: clusters; columns: standardised return, vol)."""
    from scipy.optimize import linear_sum_assignment

    cost = -centers_z @ _PROTOTYPES.T  # maximise alignment with the prototype
    rows, cols = linear_sum_assignment(cost)
    names = [""] * len(centers_z)
    for r, c in zip(rows, cols, strict=True):
        names[r] = REGIME_NAMES[c]
    return names


@dataclass(frozen=True, slots=True)
class RegimeFit:
    """One fitted detector: what it saw and how it names clusters (states).

    For an HMM, ``centers_`` are the state means and ``covars_``, ``transmat_``,
    ``startprob_`` its other parameters (standardised units); ``predict`` then returns
    the filtered state of each row given the rows before it.
    """

    fit_end: pd.Timestamp
    mean_: np.ndarray
    scale_: np.ndarray
    centers_: np.ndarray
    names_: tuple[str, ...]
    covars_: np.ndarray | None = None
    transmat_: np.ndarray | None = None
    startprob_: np.ndarray | None = None

    def predict(self, feats: pd.DataFrame) -> np.ndarray:
        """Regime name per row of ``market_ret, market_vol`` (rows in session order)."""
        z = (feats[["market_ret", "market_vol"]].to_numpy() - self.mean_) / self.scale_
        if self.transmat_ is None:
            dist = ((z[:, None, :] - self.centers_[None, :, :]) ** 2).sum(axis=2)
            state = dist.argmin(axis=1)
        else:
            state = self._filter(z)
        return np.asarray(self.names_, dtype=object)[state]

    def _filter(self, z: np.ndarray) -> np.ndarray:
        """Most likely state at each row given rows up to it (forward algorithm)."""
        from py_finance.features.ops import hmm_filter

        assert self.covars_ is not None and self.transmat_ is not None
        assert self.startprob_ is not None
        var = self.covars_  # diagonal variances, (k, d)
        loglik = -0.5 * (
            (((z[:, None, :] - self.centers_[None]) ** 2) / var[None]).sum(axis=2)
            + np.log(2 * np.pi * var).sum(axis=1)[None]
        )
        return np.asarray(hmm_filter(loglik, self.transmat_, self.startprob_))


@contextlib.contextmanager
def fit_cache() -> Iterator[None]:
    """Memoise fits by (config, training data) inside the block.

    A fit is a pure function of its training rows, so the lookahead detector, which
    recomputes regimes many times on prefixes of the same data, refits only when the
    training data differ.
    """
    global _FIT_CACHE
    previous = _FIT_CACHE
    _FIT_CACHE = {} if previous is None else previous
    try:
        yield
    finally:
        _FIT_CACHE = previous


def fit_regimes(
    feats: pd.DataFrame,
    cfg: RegimeConfig,
    fit_end: pd.Timestamp,
    previous: RegimeFit | None = None,
) -> RegimeFit:
    """Fit the detector on the complete feature rows up to and including ``fit_end``.

    With ``previous`` (the last fit, itself trained on earlier data) and anchored naming,
    clusters take the names of the previous fit's nearest centroids.
    """
    train = feats.loc[:fit_end].dropna()
    if cfg.window == "rolling":
        train = train.iloc[-cfg.rolling_sessions :]
    if len(train) < cfg.min_train_sessions:
        raise DataError(f"{len(train)} sessions before {fit_end.date()}: too few to fit regimes")
    values = np.ascontiguousarray(train.to_numpy(dtype="float64"))
    key = None
    if _FIT_CACHE is not None:
        prev = (
            b"" if previous is None else previous.centers_.tobytes() + str(previous.names_).encode()
        )
        key = (cfg, pd.Timestamp(fit_end), hashlib.sha1(values.tobytes() + prev).hexdigest())
        if key in _FIT_CACHE:
            return _FIT_CACHE[key]
    mean, scale = values.mean(axis=0), values.std(axis=0)
    scale[scale == 0] = 1.0
    z = (values - mean) / scale
    with _one_thread():
        fit = _fit(z, cfg, fit_end, mean, scale)
    if previous is not None and cfg.naming == "anchored":
        fit = replace(fit, names_=tuple(name_like(fit.centers_, previous, mean, scale)))
    if _FIT_CACHE is not None and key is not None:
        _FIT_CACHE[key] = fit
    return fit


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """Single-threaded BLAS/OpenMP inside the block.

    A fit on a few thousand rows gains nothing from threads, and OpenMP's busy-waiting
    makes it 10-100x slower when the cores are shared.
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        yield


def _fit(
    z: np.ndarray, cfg: RegimeConfig, fit_end: pd.Timestamp, mean: np.ndarray, scale: np.ndarray
) -> RegimeFit:
    if cfg.method == "hmm":
        return _fit_hmm(z, cfg, fit_end, mean, scale)
    from sklearn.cluster import KMeans

    km = KMeans(n_clusters=cfg.n_clusters, n_init=10, random_state=cfg.seed)
    km.fit(z)
    return RegimeFit(
        fit_end=fit_end,
        mean_=mean,
        scale_=scale,
        centers_=km.cluster_centers_,
        names_=tuple(name_clusters(km.cluster_centers_)),
    )


def _fit_hmm(
    z: np.ndarray, cfg: RegimeConfig, fit_end: pd.Timestamp, mean: np.ndarray, scale: np.ndarray
) -> RegimeFit:
    import logging as _logging

    from hmmlearn.hmm import GaussianHMM

    _logging.getLogger("hmmlearn").setLevel(_logging.ERROR)
    model = GaussianHMM(
        n_components=cfg.n_clusters,
        covariance_type="diag",
        n_iter=cfg.hmm_iter,
        random_state=cfg.seed,
        min_covar=1e-4,
    )
    model.fit(z)
    covars = np.asarray([np.diag(c) for c in model.covars_])
    return RegimeFit(
        fit_end=fit_end,
        mean_=mean,
        scale_=scale,
        centers_=np.asarray(model.means_),
        names_=tuple(name_clusters(np.asarray(model.means_))),
        covars_=covars,
        transmat_=np.asarray(model.transmat_),
        startprob_=np.asarray(model.startprob_),
    )


def detect_regimes(index: pd.Series, cfg: RegimeConfig) -> pd.DataFrame:
    """Point-in-time regime of every session of ``index``.

    Returns
    -------
    pandas.DataFrame
        Indexed by session: ``market_ret``, ``market_vol``, ``regime`` (a name of
        ``REGIME_NAMES`` or ``unknown``), ``fit_end`` (last session the detector that
        labelled the row was trained on; NaT when unknown), ``regime_change`` (True on the
        session a known regime differs from the previous session's known regime) and
        ``regime_age`` (sessions since the current regime began; 0 on a change).
    """
    feats = market_features(index, cfg)
    sessions = feats.index
    out = feats.copy()
    out["regime"] = UNKNOWN
    out["fit_end"] = pd.NaT
    starts = list(period_starts(pd.DatetimeIndex(sessions), cfg.refit))
    complete = feats.notna().all(axis=1).to_numpy()
    n_complete_before = np.concatenate([[0], np.cumsum(complete)])
    fit: RegimeFit | None = None
    for i, start in enumerate(starts):
        pos = int(sessions.searchsorted(start))
        if pos == 0 or n_complete_before[pos] < cfg.min_train_sessions:
            continue
        stop = starts[i + 1] if i + 1 < len(starts) else None
        fit = fit_regimes(feats.iloc[:pos], cfg, pd.Timestamp(sessions[pos - 1]), fit)
        block = feats.loc[start:stop].iloc[: None if stop is None else -1]
        block = block[block.notna().all(axis=1)]
        if fit.transmat_ is not None:
            # the filter runs through a burn-in of earlier sessions so the state has history
            lead = feats.iloc[:pos].dropna().iloc[-HMM_BURN_IN:]
            names = fit.predict(pd.concat([lead, block]))[len(lead) :]
        else:
            names = fit.predict(block)
        out.loc[block.index, "regime"] = names
        out.loc[block.index, "fit_end"] = fit.fit_end
    out["fit_end"] = pd.to_datetime(out["fit_end"])
    out.index.name = "session"
    return _add_events(out)


def _add_events(out: pd.DataFrame) -> pd.DataFrame:
    """``regime_change`` and ``regime_age`` (unknown rows: False, 0; they break no run)."""
    regime = out["regime"].to_numpy()
    change = np.zeros(len(out), dtype=bool)
    age = np.zeros(len(out), dtype=np.int64)
    last: object = None
    run = 0
    for i, name in enumerate(regime):
        if name == UNKNOWN:
            continue
        if name == last:
            run += 1
        else:
            change[i] = last is not None
            run = 0
        last = name
        age[i] = run
    out["regime_change"] = change
    out["regime_age"] = age
    return out


def regime_events(regimes: pd.DataFrame) -> pd.DataFrame:
    """Regime changes as events: ``session``, ``previous``, ``regime`` (for alerts).

    ``regimes`` is the output of :func:`detect_regimes`; a change at session t is known at
    the close of t.
    """
    known = regimes[regimes["regime"] != UNKNOWN]
    previous = known["regime"].shift(1)
    changed = known[known["regime_change"]]
    return pd.DataFrame(
        {
            "session": changed.index,
            "previous": previous.loc[changed.index].to_numpy(),
            "regime": changed["regime"].to_numpy(),
        }
    ).reset_index(drop=True)
