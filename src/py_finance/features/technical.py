"""Scale-free technical and cross-sectional features on ``session x symbol`` matrices.

Every value at session t uses prices up to the close of t only (trailing windows), and the
cross-sectional statistics use the names that have a value at t, so features are causal
and unaffected by split/dividend back-adjustment.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from py_finance.errors import ConfigError

ANNUALISATION = np.sqrt(252.0)


EXPANDING_LOOKBACK = 1_000_000  # "all history": groups with expanding fitted state


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
        Add a cross-sectional z-score (``z_<feature>``) of every momentum/volatility
        feature above, per session.
    dtype
        Storage dtype of the feature matrix.
    groups
        Registered feature groups (:mod:`py_finance.features.registry`), each a mapping
        with ``kind`` and the group's parameters (plus ``zscore`` / ``rank`` for
        cross-sectional versions of its columns).
    dropna
        ``any``: drop rows with any missing feature (warm-up, short histories); ``all``:
        drop only rows where every feature is missing (for models that accept NaN);
        ``none``: keep every row.
    """

    name: str = "basic"
    momentum_windows: tuple[int, ...] = (5, 20, 60)
    volatility_windows: tuple[int, ...] = (20,)
    zscore: bool = True
    dtype: str = "float32"
    groups: tuple[dict[str, Any], ...] = ()
    dropna: str = "any"

    def __post_init__(self) -> None:
        object.__setattr__(self, "momentum_windows", tuple(int(w) for w in self.momentum_windows))
        object.__setattr__(
            self, "volatility_windows", tuple(int(w) for w in self.volatility_windows)
        )
        object.__setattr__(self, "groups", tuple(dict(g) for g in self.groups))
        if any(w < 1 for w in self.momentum_windows) or any(w < 2 for w in self.volatility_windows):
            raise ConfigError("features windows must be >= 1 (momentum) and >= 2 (volatility)")
        if not self.momentum_windows and not self.volatility_windows and not self.groups:
            raise ConfigError(
                "features: at least one momentum or volatility window or group is needed"
            )
        if self.dtype not in ("float32", "float64"):
            raise ConfigError(f"features.dtype must be float32 or float64, got {self.dtype!r}")
        if self.dropna not in ("any", "all", "none"):
            raise ConfigError(f"features.dropna must be any, all or none, got {self.dropna!r}")
        self.make_groups()  # unknown kinds and bad parameters fail at config time

    def make_groups(self) -> list[tuple[Any, bool, bool]]:
        """The configured groups as ``(group, zscore, rank)``."""
        from py_finance.features.registry import make_group

        return [make_group(spec) for spec in self.groups]

    @property
    def lookback(self) -> int:
        """Sessions of history a feature row needs (very large when a group is expanding)."""
        legacy = (*self.momentum_windows, *(w + 1 for w in self.volatility_windows))
        needs: list[int] = list(legacy)
        for group, _, _ in self.make_groups():
            lb = group.lookback()
            needs.append(EXPANDING_LOOKBACK if lb is None else int(lb))
        return max(needs)

    @property
    def expanding(self) -> bool:
        """True when some group depends on the whole past (regime fits)."""
        return any(g.lookback() is None for g, _, _ in self.make_groups())


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


def build_features(
    prices: pd.DataFrame | Mapping[str, pd.DataFrame],
    cfg: FeatureConfig,
    *,
    market: pd.Series | None = None,
    calendar: str = "XNYS",
    fundamentals: pd.DataFrame | None = None,
    news: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Feature frame indexed by ``(session, symbol)``.

    Parameters
    ----------
    prices
        ``session x symbol`` adjusted closes (NaN where a name has no price), or a mapping
        ``{field: session x symbol frame}`` with ``close`` (adjusted) and any of ``open,
        high, low, vwap, volume`` on the same adjustment basis.
    cfg
        The feature set.
    market
        Market index level per session, for ``regime`` groups (default: an equal-weighted
        index of the names).
    calendar
        Exchange calendar, for ``calendar`` groups and the session closes of the
        ``fundamentals`` / ``news`` groups.
    fundamentals, news
        Point-in-time tables for those groups (layouts in
        :class:`~py_finance.features.registry.FeatureInputs`); ``None`` leaves them out.

    Returns
    -------
    pandas.DataFrame
        One row per (session, symbol), rows dropped per ``cfg.dropna``; features at t use
        data up to the close of t.
    """
    from py_finance.features.ops import scatter_rows
    from py_finance.features.registry import FeatureInputs, cs_rank, cs_zscore

    inp = FeatureInputs.from_frames(
        prices, market=market, calendar=calendar, fundamentals=fundamentals, news=news
    )
    n_sym, n_ses = inp.shape
    legacy = _legacy_matrices(inp, cfg)
    groups = cfg.make_groups()
    plan: list[tuple[Any, list[str], bool, bool]] = [(g, g.names(inp), z, r) for g, z, r in groups]
    names = list(legacy)
    for _, cols, _, _ in plan:
        names += cols
    if cfg.zscore:
        names += [f"z_{n}" for n in legacy]
    for _, cols, z, _ in plan:
        names += [f"z_{c}" for c in cols] if z else []
    for _, cols, _, r in plan:
        names += [f"r_{c}" for c in cols] if r else []
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise ConfigError(f"feature set {cfg.name!r} yields duplicate columns {dup}")
    position = {n: i for i, n in enumerate(names)}
    # Only (session, symbol) cells with a close get a row when rows are dropped anyway: a
    # name before its listing or after its delisting costs no memory (the feature matrix is
    # the largest object of the pipeline).
    if cfg.dropna != "none":
        present = np.isfinite(inp.get("close")).T.ravel()
    else:
        present = np.ones(n_ses * n_sym, dtype=bool)
    n_rows = int(present.sum())
    dest = np.full(present.size, -1, dtype=np.int64)
    dest[present] = np.arange(n_rows, dtype=np.int64)
    out = np.empty((n_rows, len(names)), dtype=np.dtype(cfg.dtype), order="F")

    def put(name: str, mat: np.ndarray) -> None:
        # (symbol, session) matrix -> session-major rows, as the (session, symbol) index
        scatter_rows(mat, dest, out[:, position[name]])

    for name, mat in legacy.items():
        put(name, mat)
        if cfg.zscore:
            put(f"z_{name}", cross_sectional_zscore(pd.DataFrame(mat.T)).to_numpy().T)
    for group, cols, z, r in plan:
        seen = set()
        for name, raw in group.compute(inp):
            put(name, raw)  # inf -> NaN on the way
            mat = raw if not (z or r) else np.where(np.isfinite(raw), raw, np.nan)
            seen.add(name)
            if z:
                put(f"z_{name}", cs_zscore(mat))
            if r:
                put(f"r_{name}", cs_rank(mat))
        if seen != set(cols):
            raise ConfigError(f"feature group {group.kind!r} yielded {sorted(seen ^ set(cols))}")
    cells = np.flatnonzero(present)
    keep = np.ones(n_rows, dtype=bool)
    if cfg.dropna != "none" and len(names):
        # column by column: no full-matrix mask
        drop = np.zeros(n_rows, dtype=bool) if cfg.dropna == "any" else np.ones(n_rows, bool)
        for j in range(len(names)):
            if cfg.dropna == "any":
                drop |= np.isnan(out[:, j])
            else:
                drop &= np.isnan(out[:, j])
        keep = ~drop
    if not keep.all():
        # compact in place, column by column (a copy of the matrix would double the peak)
        rows = np.flatnonzero(keep)
        for j in range(len(names)):
            out[: len(rows), j] = out[rows, j]
        out = out[: len(rows)]
        cells = cells[rows]
    levels: list[Any] = [inp.sessions, inp.symbols]
    codes: list[Any] = [cells // n_sym, cells % n_sym]
    index = pd.MultiIndex(
        levels=levels,
        codes=codes,
        names=["session", "symbol"],
        verify_integrity=False,
    )
    return pd.DataFrame(out, index=index, columns=names, copy=False)


def _legacy_matrices(inp: Any, cfg: FeatureConfig) -> dict[str, np.ndarray]:
    """The walking skeleton's momentum/volatility columns, computed exactly as before."""
    prices = pd.DataFrame(inp.get("close").T, index=inp.sessions, columns=inp.symbols)
    log_ret = prices.apply(np.log).diff()
    mats: dict[str, np.ndarray] = {}
    for w in cfg.momentum_windows:
        mats[f"mom_{w}"] = (prices / prices.shift(w) - 1.0).to_numpy().T
    for w in cfg.volatility_windows:
        vol = log_ret.rolling(w, min_periods=w).std() * ANNUALISATION
        mats[f"vol_{w}"] = vol.to_numpy().T
    return mats
