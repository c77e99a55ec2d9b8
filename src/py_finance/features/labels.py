"""Forward-return labels aligned with the decision and the fill.

A decision taken at the close of session t fills at the close of t + lag, so the h-session
label of t is ``close[t + lag + h] / close[t + lag] - 1``: the return the position actually
earns. ``label_end`` is the session at which the label becomes known (t + lag + h); training
rows whose ``label_end`` reaches a test period are purged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from py_finance.errors import ConfigError

TARGETS = ("raw", "rank")


@dataclass(frozen=True, slots=True)
class LabelConfig:
    """The label (``conf/labels/``).

    Parameters
    ----------
    horizon
        Holding horizon in sessions (1, 5 or 20 in the shipped configs).
    target
        What models are trained on: ``raw`` forward return or its cross-sectional
        percentile ``rank`` (0..1) within the session.
    """

    horizon: int = 5
    target: str = "rank"

    def __post_init__(self) -> None:
        if self.horizon < 1:
            raise ConfigError(f"labels.horizon must be >= 1, got {self.horizon}")
        if self.target not in TARGETS:
            raise ConfigError(f"labels.target must be one of {TARGETS}, got {self.target!r}")

    @property
    def column(self) -> str:
        """Name of the raw label column (``fwd_ret_5``)."""
        return f"fwd_ret_{self.horizon}"


def with_delistings(prices: pd.DataFrame, delistings: pd.DataFrame | None) -> pd.DataFrame:
    """``prices`` where each delisted name is worth its delisting payout from its delisting.

    A holder of a name delisted at session ``date`` (the first session it no longer
    trades) gets its last close times ``1 + delisting_return`` in cash then and holds that
    cash after: the value a label's exit sees. Entries stay on the traded prices only.
    """
    if delistings is None or delistings.empty:
        return prices
    values = prices.to_numpy(dtype=np.float64, copy=True)
    index = pd.DatetimeIndex(prices.index)
    cols = {str(c): j for j, c in enumerate(prices.columns)}
    syms = delistings["symbol"].astype(str).to_numpy()
    days = pd.DatetimeIndex(pd.to_datetime(delistings["date"])).normalize()
    rets = delistings["delisting_return"].to_numpy(dtype=np.float64)
    for sym, day, ret in zip(syms, days, rets, strict=True):
        j = cols.get(str(sym))
        r = int(index.searchsorted(day))
        if j is None or r <= 0 or r >= len(index):
            continue
        before = values[:r, j]
        ok = np.flatnonzero(np.isfinite(before) & (before > 0.0))
        if len(ok):
            values[r:, j] = before[ok[-1]] * (1.0 + float(ret))
    return pd.DataFrame(values, index=prices.index, columns=prices.columns)


def forward_returns(
    prices: pd.DataFrame,
    cfg: LabelConfig,
    execution_lag: int = 1,
    *,
    delistings: pd.DataFrame | None = None,
    members: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Labels indexed by ``(session, symbol)``.

    Parameters
    ----------
    prices
        ``session x symbol`` adjusted closes.
    cfg
        Horizon and training target.
    execution_lag
        Sessions between decision and fill (the backtest's ``execution_lag``).
    delistings
        ``symbol, date, delisting_return``: a name delisted inside a label's window exits
        at its delisting payout (:func:`with_delistings`), so the names that die are in the
        labels with what they cost, not dropped (survivorship-free labels).
    members
        ``session x symbol`` booleans: the names in the universe at each session. Rows of
        non-members are dropped and ranks are taken among members only.

    Returns
    -------
    pandas.DataFrame
        Columns ``fwd_ret_{h}`` (raw), ``fwd_rank_{h}`` (cross-sectional percentile rank
        in (0, 1]), ``label_end`` (session the label is known); rows without a complete
        label window are dropped.
    """
    if execution_lag < 1:
        raise ConfigError("execution_lag must be >= 1")
    prices = prices.sort_index().astype("float64")
    entry = prices.shift(-execution_lag)
    exit_ = with_delistings(prices, delistings).shift(-(execution_lag + cfg.horizon))
    raw = exit_ / entry - 1.0
    if members is not None:
        raw = raw.where(members.reindex(index=raw.index, columns=raw.columns, fill_value=False))
    ranks = raw.rank(axis=1, pct=True)
    sessions = prices.index
    end = pd.Series(pd.DatetimeIndex(sessions), index=sessions).shift(
        -(execution_lag + cfg.horizon)
    )
    frame = pd.concat(
        {
            cfg.column: raw.stack(future_stack=True),
            f"fwd_rank_{cfg.horizon}": ranks.stack(future_stack=True),
        },
        axis=1,
    )
    frame.index.names = ["session", "symbol"]
    frame = frame.dropna(how="any")
    frame["label_end"] = end.reindex(frame.index.get_level_values("session")).to_numpy()
    return frame.sort_index()


def target_column(cfg: LabelConfig) -> str:
    """Column models train on."""
    return cfg.column if cfg.target == "raw" else f"fwd_rank_{cfg.horizon}"


def multi_horizon_labels(
    prices: pd.DataFrame, horizons: tuple[int, ...] = (1, 5, 20), execution_lag: int = 1
) -> pd.DataFrame:
    """Raw and ranked labels at several horizons, each with its own ``label_end_{h}``.

    Rows are ``(session, symbol)`` pairs with at least one complete label; a horizon whose
    window is not complete yet is NaN (``label_end_{h}`` NaT) on that row.
    """
    parts = []
    for h in horizons:
        one = forward_returns(prices, LabelConfig(horizon=int(h), target="raw"), execution_lag)
        parts.append(one.rename(columns={"label_end": f"label_end_{h}"}))
    return pd.concat(parts, axis=1, join="outer").sort_index()
