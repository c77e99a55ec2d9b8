"""Scale-free technical and cross-sectional features on ``session x symbol`` matrices.

Every value at session t uses prices up to the close of t only (trailing windows), and the
cross-sectional statistics use the names that have a value at t, so features are causal
and unaffected by split/dividend back-adjustment.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from py_finance.errors import ConfigError

ANNUALISATION = np.sqrt(252.0)


@dataclass(frozen=True, slots=True)
class FeatureConfig:
    """A feature set (``conf/features/``).

    Parameters
    ----------
    name
        Feature-set name (logged with every run).
    momentum_windows
        Trailing total-return windows, in sessions (``mom_20`` = 20-session return).
    volatility_windows
        Trailing realised-volatility windows (annualised std of daily log returns).
    zscore
        Add a cross-sectional z-score (``z_<feature>``) of every feature, per session.
    dtype
        Storage dtype of the feature matrix.
    """

    name: str = "basic"
    momentum_windows: tuple[int, ...] = (5, 20, 60)
    volatility_windows: tuple[int, ...] = (20,)
    zscore: bool = True
    dtype: str = "float32"

    def __post_init__(self) -> None:
        object.__setattr__(self, "momentum_windows", tuple(int(w) for w in self.momentum_windows))
        object.__setattr__(
            self, "volatility_windows", tuple(int(w) for w in self.volatility_windows)
        )
        if any(w < 1 for w in self.momentum_windows) or any(w < 2 for w in self.volatility_windows):
            raise ConfigError("features windows must be >= 1 (momentum) and >= 2 (volatility)")
        if not self.momentum_windows and not self.volatility_windows:
            raise ConfigError("features: at least one momentum or volatility window is needed")
        if self.dtype not in ("float32", "float64"):
            raise ConfigError(f"features.dtype must be float32 or float64, got {self.dtype!r}")

    @property
    def lookback(self) -> int:
        """Sessions of history a feature row needs."""
        return max((*self.momentum_windows, *(w + 1 for w in self.volatility_windows)))


def cross_sectional_zscore(wide: pd.DataFrame) -> pd.DataFrame:
    """Z-score of each row across its non-missing columns (NaN where fewer than 2 names)."""
    values = wide.to_numpy(dtype="float64")
    count = np.sum(~np.isnan(values), axis=1)
    mean = _nanmean_rows(values)
    std = _nanstd_rows(values, mean)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (values - mean) / std
    out[count < 2] = np.nan
    out[~np.isfinite(out)] = np.nan
    return pd.DataFrame(out, index=wide.index, columns=wide.columns)


def _nanmean_rows(values: np.ndarray) -> np.ndarray:
    total = np.nansum(values, axis=1, keepdims=True)
    count = np.sum(~np.isnan(values), axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return total / count


def _nanstd_rows(values: np.ndarray, mean: np.ndarray) -> np.ndarray:
    dev = np.where(np.isnan(values), 0.0, values - mean)
    count = np.sum(~np.isnan(values), axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.sqrt(np.sum(dev * dev, axis=1, keepdims=True) / (count - 1))


def build_features(prices: pd.DataFrame, cfg: FeatureConfig) -> pd.DataFrame:
    """Feature frame indexed by ``(session, symbol)`` from adjusted closes.

    Parameters
    ----------
    prices
        ``session x symbol`` adjusted closes (NaN where a name has no price).
    cfg
        The feature set.

    Returns
    -------
    pandas.DataFrame
        One row per (session, symbol) where every feature is defined (warm-up rows and
        names without enough history are dropped); features at t use closes up to t.
    """
    prices = prices.sort_index().astype("float64")
    log_ret = prices.apply(np.log).diff()
    mats: dict[str, pd.DataFrame] = {}
    for w in cfg.momentum_windows:
        mats[f"mom_{w}"] = prices / prices.shift(w) - 1.0
    for w in cfg.volatility_windows:
        mats[f"vol_{w}"] = log_ret.rolling(w, min_periods=w).std() * ANNUALISATION
    if cfg.zscore:
        for name in list(mats):
            mats[f"z_{name}"] = cross_sectional_zscore(mats[name])
    frame = pd.concat({name: mat.stack(future_stack=True) for name, mat in mats.items()}, axis=1)
    frame.index.names = ["session", "symbol"]
    frame = frame.dropna(how="any").astype(np.dtype(cfg.dtype))
    return frame.sort_index()
