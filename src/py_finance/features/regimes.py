"""Market regimes: K-means on market return and volatility, fitted point in time.

The detector is refitted at the first session of every refit period (year by default) on
the market features of all earlier sessions (expanding window), and labels the sessions of
that period with the fitted model. A session's regime therefore depends only on prices up
to its own close. Clusters are named by matching their centroids (in standardised units) to
the prototypes bull/bear x low/high volatility with an optimal one-to-one assignment, so
names stay stable across refits.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from py_finance.data.calendar import PERIODS, period_starts
from py_finance.errors import ConfigError, DataError

REGIME_NAMES = ("bull_low_vol", "bull_high_vol", "bear_low_vol", "bear_high_vol")
UNKNOWN = "unknown"
# (return sign, volatility sign) of each name in standardised feature space.
_PROTOTYPES = np.array([[1.0, -1.0], [1.0, 1.0], [-1.0, -1.0], [-1.0, 1.0]])


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
        K-means random state.
    """

    n_clusters: int = 4
    return_window: int = 20
    vol_window: int = 20
    refit: str = "yearly"
    min_train_sessions: int = 504
    seed: int = 42

    def __post_init__(self) -> None:
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
    """One fitted detector: what it saw and how it names clusters."""

    fit_end: pd.Timestamp
    mean_: np.ndarray
    scale_: np.ndarray
    centers_: np.ndarray
    names_: tuple[str, ...]

    def predict(self, feats: pd.DataFrame) -> np.ndarray:
        """Regime name per row of ``market_ret, market_vol``."""
        z = (feats[["market_ret", "market_vol"]].to_numpy() - self.mean_) / self.scale_
        dist = ((z[:, None, :] - self.centers_[None, :, :]) ** 2).sum(axis=2)
        return np.asarray(self.names_, dtype=object)[dist.argmin(axis=1)]


def fit_regimes(feats: pd.DataFrame, cfg: RegimeConfig, fit_end: pd.Timestamp) -> RegimeFit:
    """Fit K-means on the complete feature rows up to and including ``fit_end``."""
    from sklearn.cluster import KMeans

    train = feats.loc[:fit_end].dropna()
    if len(train) < cfg.min_train_sessions:
        raise DataError(f"{len(train)} sessions before {fit_end.date()}: too few to fit regimes")
    values = train.to_numpy()
    mean, scale = values.mean(axis=0), values.std(axis=0)
    scale[scale == 0] = 1.0
    km = KMeans(n_clusters=cfg.n_clusters, n_init=10, random_state=cfg.seed)
    km.fit((values - mean) / scale)
    return RegimeFit(
        fit_end=fit_end,
        mean_=mean,
        scale_=scale,
        centers_=km.cluster_centers_,
        names_=tuple(name_clusters(km.cluster_centers_)),
    )


def detect_regimes(index: pd.Series, cfg: RegimeConfig) -> pd.DataFrame:
    """Point-in-time regime of every session of ``index``.

    Returns
    -------
    pandas.DataFrame
        Indexed by session: ``market_ret``, ``market_vol``, ``regime`` (a name of
        ``REGIME_NAMES`` or ``unknown``) and ``fit_end`` (last session the detector that
        labelled the row was trained on; NaT when unknown).
    """
    feats = market_features(index, cfg)
    sessions = feats.index
    out = feats.copy()
    out["regime"] = UNKNOWN
    out["fit_end"] = pd.NaT
    starts = list(period_starts(pd.DatetimeIndex(sessions), cfg.refit))
    complete = feats.notna().all(axis=1).to_numpy()
    n_complete_before = np.concatenate([[0], np.cumsum(complete)])
    for i, start in enumerate(starts):
        pos = int(sessions.searchsorted(start))
        if pos == 0 or n_complete_before[pos] < cfg.min_train_sessions:
            continue
        stop = starts[i + 1] if i + 1 < len(starts) else None
        fit = fit_regimes(feats.iloc[:pos], cfg, pd.Timestamp(sessions[pos - 1]))
        block = feats.loc[start:stop].iloc[: None if stop is None else -1]
        block = block[block.notna().all(axis=1)]
        out.loc[block.index, "regime"] = fit.predict(block)
        out.loc[block.index, "fit_end"] = fit.fit_end
    out["fit_end"] = pd.to_datetime(out["fit_end"])
    out.index.name = "session"
    return out
