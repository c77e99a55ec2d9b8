"""Feature groups by name: the registry behind ``conf/features/*.yaml``.

A feature set is a list of group specs, e.g.::

    groups:
      - {kind: momentum, windows: [1, 5, 20], zscore: true, rank: true}
      - {kind: calendar}

Each group turns :class:`FeatureInputs` (``symbol x session`` matrices of adjusted bars)
into named columns, every value at session t from data up to the close of t. ``zscore`` /
``rank`` add the cross-sectional z-score (``z_<col>``) and percentile rank (``r_<col>``) of
each column over the names that have a value at that session. A group that needs a field the
data lacks (volume, high/low) or a table the store lacks (fundamentals, news) leaves its
columns out and says so in the log.

New groups register with :func:`register_group`; see ``docs/features.md``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from py_finance.errors import ConfigError

log = logging.getLogger(__name__)

ANNUALISATION = float(np.sqrt(252.0))
PRICE_FIELDS = ("open", "high", "low", "close", "vwap")
# raw_close: the as-traded (unadjusted) close, for ratios of per-share fundamentals to price.
FIELDS = (*PRICE_FIELDS, "volume", "raw_close")
# Marks a group whose values depend on the whole history before t (expanding refits).
EXPANDING = None


@dataclass
class FeatureInputs:
    """Adjusted bars as ``symbol x session`` float64 matrices (rows: symbols).

    Parameters
    ----------
    sessions, symbols
        Axes of every matrix.
    fields
        ``close`` (required) and any of ``open, high, low, vwap, volume``; prices must be
        on the same adjustment basis as ``close``. ``raw_close`` (optional) is the
        as-traded, unadjusted close, for ratios of per-share fundamentals to price.
    market
        Market index level per session (for regime features); ``None``: an equal-weighted
        index of the names, built from their returns.
    calendar
        Exchange calendar of the sessions (calendar features; session closes of the
        fundamentals and news cut-offs).
    fundamentals
        ``symbol, period_end, field, value, available_at``: every version of every value the
        store knew at the run's knowledge time, restatements as later rows of the same
        (symbol, period_end, field); ``None``: no fundamentals (their features are left out).
    news
        ``symbol, id, available_at`` (+ optional ``sentiment``): one row per article with the
        time it was first known; ``None``: no news.

    Notes
    -----
    In both tables ``available_at`` (tz-aware UTC knowledge time) decides what row t may
    use: a row counts at session t only if ``available_at`` is at or before the close of t,
    whatever its ``period_end``. See :mod:`py_finance.features.tables`.
    """

    sessions: pd.DatetimeIndex
    symbols: pd.Index
    fields: dict[str, np.ndarray]
    market: pd.Series | None = None
    calendar: str = "XNYS"
    fundamentals: pd.DataFrame | None = None
    news: pd.DataFrame | None = None
    _cache: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    @classmethod
    def from_frames(
        cls,
        data: pd.DataFrame | Mapping[str, pd.DataFrame],
        *,
        market: pd.Series | None = None,
        calendar: str = "XNYS",
        fundamentals: pd.DataFrame | None = None,
        news: pd.DataFrame | None = None,
    ) -> FeatureInputs:
        """From a ``session x symbol`` close frame or a mapping of such frames by field.

        ``fundamentals`` and ``news`` are the long tables described in the class docstring.
        """
        frames = {"close": data} if isinstance(data, pd.DataFrame) else dict(data)
        if "close" not in frames:
            raise ConfigError("feature inputs need a 'close' (adjusted close) matrix")
        close = frames["close"].sort_index().sort_index(axis=1)
        sessions = pd.DatetimeIndex(close.index)
        symbols = close.columns
        fields: dict[str, np.ndarray] = {}
        for name, frame in frames.items():
            if name not in FIELDS:
                raise ConfigError(f"unknown bar field {name!r}; fields: {FIELDS}")
            aligned = frame.reindex(index=sessions, columns=symbols)
            values = np.ascontiguousarray(aligned.to_numpy(dtype="float64").T)
            if np.isnan(values).all():
                continue  # a field the source does not have: absent, not NaN features
            fields[name] = values
        if market is not None:
            market = market.sort_index().reindex(sessions)
        return cls(sessions, symbols, fields, market, calendar, fundamentals, news)

    @property
    def shape(self) -> tuple[int, int]:
        """``(n_symbols, n_sessions)``."""
        return len(self.symbols), len(self.sessions)

    def has(self, *names: str) -> bool:
        """True when every named field is present."""
        return all(n in self.fields for n in names)

    def get(self, name: str) -> np.ndarray:
        """A field matrix."""
        return self.fields[name]

    def cached(self, key: str, make: Callable[[], np.ndarray]) -> np.ndarray:
        """Memoise an intermediate shared by several groups (e.g. log returns)."""
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    def log_returns(self) -> np.ndarray:
        """Close-to-close log returns (NaN on a name's first session)."""

        def make() -> np.ndarray:
            with np.errstate(invalid="ignore", divide="ignore"):
                logc = np.log(self.get("close"))
            out = np.full_like(logc, np.nan)
            out[:, 1:] = logc[:, 1:] - logc[:, :-1]
            return out

        return self.cached("log_returns", make)

    def broadcast(self, row: np.ndarray) -> np.ndarray:
        """A per-session vector repeated for every symbol."""
        return np.broadcast_to(np.asarray(row, dtype="float64"), self.shape)


class FeatureGroup:
    """Base class of a registered group: ``names`` says what ``compute`` will yield."""

    kind: str = ""
    # Store tables the group reads (``fundamentals``, ``news``): the pipeline reads only these.
    tables: tuple[str, ...] = ()
    # Bar fields beyond the adjusted OHLCV that the group uses when present (``raw_close``).
    extra_fields: tuple[str, ...] = ()
    # Parameters the group accepts; None: the group checks its own.
    PARAMS: frozenset[str] | None = None

    def __init__(self, **params: Any) -> None:
        if self.PARAMS is not None:
            unknown = sorted(set(params) - self.PARAMS)
            if unknown:
                raise ConfigError(
                    f"features.groups[{self.kind}]: unknown parameter(s) {unknown}; "
                    f"known: {sorted(self.PARAMS)}"
                )
        self.params = params

    def lookback(self) -> int | None:
        """Sessions of history one row needs; ``None`` for expanding (whole past) state."""
        raise NotImplementedError

    def names(self, inp: FeatureInputs) -> list[str]:
        """Column names this group yields for these inputs (absent fields leave some out)."""
        raise NotImplementedError

    def compute(self, inp: FeatureInputs) -> Iterator[tuple[str, np.ndarray]]:
        """Yield ``(name, symbol x session matrix)`` in the order of :meth:`names`."""
        raise NotImplementedError


GROUPS: dict[str, type[FeatureGroup]] = {}


def register_group(kind: str) -> Callable[[type[FeatureGroup]], type[FeatureGroup]]:
    """Class decorator: make a :class:`FeatureGroup` selectable as ``kind`` in feature sets."""

    def deco(cls: type[FeatureGroup]) -> type[FeatureGroup]:
        cls.kind = kind
        GROUPS[kind] = cls
        return cls

    return deco


def make_group(spec: Mapping[str, Any]) -> tuple[FeatureGroup, bool, bool]:
    """``(group, zscore, rank)`` from one spec of a feature set."""
    params = dict(spec)
    kind = params.pop("kind", None)
    if kind not in GROUPS:
        raise ConfigError(f"features.groups: unknown kind {kind!r}; known: {sorted(GROUPS)}")
    zscore = bool(params.pop("zscore", False))
    rank = bool(params.pop("rank", False))
    try:
        group = GROUPS[kind](**params)
    except TypeError as exc:
        raise ConfigError(f"features.groups[{kind}]: {exc}") from exc
    return group, zscore, rank


def _windows(params: Mapping[str, Any], default: Sequence[int], minimum: int = 1) -> list[int]:
    windows = [int(w) for w in params.get("windows", default)]
    if any(w < minimum for w in windows):
        raise ConfigError(f"feature windows must be >= {minimum}, got {windows}")
    return windows


# --------------------------------------------------------------------------- cross-section
def cs_zscore(mat: np.ndarray) -> np.ndarray:
    """Z-score of each session (column) across the symbols that have a value (NaN if < 2)."""
    valid = ~np.isnan(mat)
    count = valid.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.nansum(mat, axis=0) / count
        dev = np.where(valid, mat - mean, 0.0)
        std = np.sqrt((dev * dev).sum(axis=0) / (count - 1))
        out = (mat - mean) / std
    out[:, count < 2] = np.nan
    out[~np.isfinite(out)] = np.nan
    return out


def cs_rank(mat: np.ndarray) -> np.ndarray:
    """Percentile rank (average ties, in (0, 1]) of each session across its valid symbols."""
    frame = pd.DataFrame(mat)
    return frame.rank(axis=0, pct=True).to_numpy(dtype="float64")


# --------------------------------------------------------------------------- groups
@register_group("momentum")
class Momentum(FeatureGroup):
    """Trailing total returns ``mom_<w>`` and the 12-1 momentum ``mom_12_1``.

    Parameters: ``windows`` (sessions; default 1, 5, 10, 20, 60, 120, 252), ``skip_month``
    (add ``mom_12_1`` = return from t-252 to t-21, default true).
    """

    def lookback(self) -> int:
        """Longest window."""
        w = _windows(self.params, (1, 5, 10, 20, 60, 120, 252))
        return max([*w, 252 if self.params.get("skip_month", True) else 0])

    def names(self, inp: FeatureInputs) -> list[str]:
        """``mom_<w>`` and ``mom_12_1``."""
        out = [f"mom_{w}" for w in _windows(self.params, (1, 5, 10, 20, 60, 120, 252))]
        return [*out, "mom_12_1"] if self.params.get("skip_month", True) else out

    def compute(self, inp: FeatureInputs) -> Iterator[tuple[str, np.ndarray]]:
        """Returns over each window."""
        from py_finance.features.ops import shift

        close = inp.get("close")
        for w in _windows(self.params, (1, 5, 10, 20, 60, 120, 252)):
            yield f"mom_{w}", close / shift(close, w) - 1.0
        if self.params.get("skip_month", True):
            yield "mom_12_1", shift(close, 21) / shift(close, 252) - 1.0


@register_group("volatility")
class Volatility(FeatureGroup):
    """Volatility features.

    Annualised realised volatility ``vol_<w>``, downside volatility ``dvol_<w>``, and,
    where high/low exist, Parkinson volatility ``pkvol_<w>`` and ``atr_<w>`` (average true
    range / close).

    Parameters: ``windows`` (default 5, 10, 20, 60), ``downside``, ``parkinson``, ``atr``
    (booleans, default true).
    """

    def _w(self) -> list[int]:
        return _windows(self.params, (5, 10, 20, 60), minimum=2)

    def lookback(self) -> int:
        """Longest window plus the return's extra session."""
        return max(self._w()) + 1

    def names(self, inp: FeatureInputs) -> list[str]:
        """Columns available for these inputs."""
        p = self.params
        out: list[str] = []
        for w in self._w():
            out.append(f"vol_{w}")
            if p.get("downside", True):
                out.append(f"dvol_{w}")
            if p.get("parkinson", True) and inp.has("high", "low"):
                out.append(f"pkvol_{w}")
            if p.get("atr", True) and inp.has("high", "low"):
                out.append(f"atr_{w}")
        return out

    def compute(self, inp: FeatureInputs) -> Iterator[tuple[str, np.ndarray]]:
        """Rolling volatilities."""
        from py_finance.features.ops import rolling_mean, rolling_std, shift

        wanted = set(self.names(inp))
        ret = inp.log_returns()
        down2 = np.where(np.isnan(ret), np.nan, np.minimum(ret, 0.0) ** 2)
        hl2 = tr = None
        if inp.has("high", "low"):
            high, low, close = inp.get("high"), inp.get("low"), inp.get("close")
            with np.errstate(invalid="ignore", divide="ignore"):
                hl2 = np.log(high / low) ** 2 / (4.0 * np.log(2.0))
            prev = shift(close, 1)
            tr = np.fmax(high - low, np.fmax(np.abs(high - prev), np.abs(low - prev)))
            tr[:, 0] = (high - low)[:, 0]
        for w in self._w():
            yield f"vol_{w}", rolling_std(ret, w) * ANNUALISATION
            if f"dvol_{w}" in wanted:
                yield f"dvol_{w}", np.sqrt(np.maximum(rolling_mean(down2, w), 0.0)) * ANNUALISATION
            if f"pkvol_{w}" in wanted and hl2 is not None:
                yield f"pkvol_{w}", np.sqrt(np.maximum(rolling_mean(hl2, w), 0.0)) * ANNUALISATION
            if f"atr_{w}" in wanted and tr is not None:
                yield f"atr_{w}", rolling_mean(tr, w) / inp.get("close")


@register_group("volume")
class Volume(FeatureGroup):
    """Volume features, only when the data has volume.

    ``vratio_<w>`` (log of volume over
    its trailing mean), ``adv_<w>`` (log trailing mean dollar volume), ``amihud_<w>``
    (trailing mean of |return| per million dollars traded).

    Parameters: ``windows`` (default 5, 20, 60).
    """

    def _w(self) -> list[int]:
        return _windows(self.params, (5, 20, 60))

    def lookback(self) -> int:
        """Longest window plus one."""
        return max(self._w()) + 1

    def names(self, inp: FeatureInputs) -> list[str]:
        """Nothing when the data has no volume."""
        if not inp.has("volume"):
            log.debug("features: no volume in the data, volume features left out")
            return []
        return [f"{k}_{w}" for w in self._w() for k in ("vratio", "adv", "amihud")]

    def compute(self, inp: FeatureInputs) -> Iterator[tuple[str, np.ndarray]]:
        """Rolling volume statistics."""
        from py_finance.features.ops import rolling_mean

        if not inp.has("volume"):
            return
        vol, close = inp.get("volume"), inp.get("close")
        dollar = vol * close
        with np.errstate(invalid="ignore", divide="ignore"):
            illiq = np.abs(np.expm1(inp.log_returns())) / (dollar / 1e6)
            illiq[~np.isfinite(illiq)] = np.nan
            for w in self._w():
                yield f"vratio_{w}", np.log((vol + 1.0) / (rolling_mean(vol, w) + 1.0))
                yield f"adv_{w}", np.log1p(rolling_mean(dollar, w))
                yield f"amihud_{w}", rolling_mean(illiq, w)


@register_group("calendar")
class Calendar(FeatureGroup):
    """Exchange-calendar features, the same for every name.

    ``dow`` (0 = Monday), ``month``
    (1-12), ``turn_of_month`` (last session of a month or one of the first three),
    ``sessions_to_month_end`` (0 on the month's last session), ``pre_holiday`` (the next
    weekday is not a session), ``early_close`` (the session closes early).

    Sessions come from the exchange calendar (known in advance), not from the data's dates.
    """

    COLUMNS = (
        "dow",
        "month",
        "turn_of_month",
        "sessions_to_month_end",
        "pre_holiday",
        "early_close",
    )

    def lookback(self) -> int:
        """No history needed."""
        return 0

    def names(self, inp: FeatureInputs) -> list[str]:
        """All calendar columns."""
        return list(self.COLUMNS)

    def compute(self, inp: FeatureInputs) -> Iterator[tuple[str, np.ndarray]]:
        """Per-session calendar values, broadcast to every name."""
        table = calendar_table(inp.sessions, inp.calendar)
        for name in self.COLUMNS:
            yield name, inp.broadcast(table[name].to_numpy(dtype="float64"))


def calendar_table(sessions: pd.DatetimeIndex, calendar: str = "XNYS") -> pd.DataFrame:
    """Calendar features of ``sessions`` (see :class:`Calendar`), indexed by session."""
    from py_finance.data.calendar import get_calendar

    cal = get_calendar(calendar)
    days = pd.DatetimeIndex(sessions).normalize()
    all_sessions = pd.DatetimeIndex(cal.sessions).tz_localize(None)
    if len(days) and days[-1] + pd.Timedelta(days=40) > all_sessions[-1]:
        raise ConfigError(f"the {calendar} calendar ends at {all_sessions[-1].date()}")
    early = pd.DatetimeIndex(cal.early_closes).tz_localize(None).normalize()
    after = all_sessions.searchsorted(days, side="right")  # first calendar session after day
    next_weekday = days + pd.offsets.BDay(1)
    month_end = (days + pd.offsets.MonthEnd(0)).normalize()
    to_end = all_sessions.searchsorted(month_end, side="right") - after
    month_first = days.to_period("M").to_timestamp()
    from_start = all_sessions.searchsorted(days, side="left") - all_sessions.searchsorted(
        month_first, side="left"
    )
    return pd.DataFrame(
        {
            "dow": days.dayofweek.to_numpy(),
            "month": days.month.to_numpy(),
            "turn_of_month": ((to_end == 0) | (from_start < 3)).astype(float),
            "sessions_to_month_end": to_end.astype(float),
            "pre_holiday": (all_sessions[after] > next_weekday).astype(float),
            "early_close": days.isin(early).astype(float),
        },
        index=pd.DatetimeIndex(sessions, name="session"),
    )


@register_group("regime")
class Regime(FeatureGroup):
    """Market-state features, the same for every name.

    Trailing market return ``mkt_ret``
    and volatility ``mkt_vol``, ``breadth`` (share of names above their ``breadth_window``
    moving average), the current regime one-hot ``regime_<name>`` (all zero while unknown)
    and ``regime_age`` (sessions since the regime last changed).

    The regime comes from :func:`py_finance.features.regimes.detect_regimes` on the market
    index (refitted on past data only), so rows depend on the whole past: ``lookback`` is
    expanding. Parameters: ``breadth_window`` (default 50), ``regimes`` (a mapping of
    :class:`~py_finance.features.regimes.RegimeConfig` fields).
    """

    def lookback(self) -> int | None:
        """Expanding: regime fits use every earlier session."""
        return EXPANDING

    def _cfg(self) -> Any:
        from py_finance.features.regimes import RegimeConfig

        return RegimeConfig(**dict(self.params.get("regimes", {})))

    def names(self, inp: FeatureInputs) -> list[str]:
        """Market, breadth and regime columns."""
        from py_finance.features.regimes import REGIME_NAMES

        return [
            "mkt_ret",
            "mkt_vol",
            "breadth",
            *(f"regime_{n}" for n in REGIME_NAMES),
            "regime_age",
        ]

    def compute(self, inp: FeatureInputs) -> Iterator[tuple[str, np.ndarray]]:
        """Regime features from the market index."""
        from py_finance.features.ops import rolling_mean
        from py_finance.features.regimes import REGIME_NAMES, detect_regimes

        market = inp.market
        if market is None or market.isna().all():
            ret = np.expm1(inp.log_returns())
            with np.errstate(invalid="ignore"):
                mean_ret = np.nanmean(np.where(np.isnan(ret), np.nan, ret), axis=0)
            mean_ret = np.nan_to_num(mean_ret, nan=0.0)
            market = pd.Series(np.cumprod(1.0 + mean_ret), index=inp.sessions)
        reg = detect_regimes(market.ffill(), self._cfg())
        yield "mkt_ret", inp.broadcast(reg["market_ret"].to_numpy())
        yield "mkt_vol", inp.broadcast(reg["market_vol"].to_numpy())
        bw = int(self.params.get("breadth_window", 50))
        close = inp.get("close")
        ma = rolling_mean(close, bw)
        valid = ~np.isnan(ma) & ~np.isnan(close)
        with np.errstate(invalid="ignore", divide="ignore"):
            breadth = np.where(valid, close > ma, False).sum(axis=0) / valid.sum(axis=0)
        yield "breadth", inp.broadcast(breadth)
        regime = reg["regime"].to_numpy()
        for name in REGIME_NAMES:
            yield f"regime_{name}", inp.broadcast((regime == name).astype(float))
        yield "regime_age", inp.broadcast(reg["regime_age"].to_numpy(dtype="float64"))


def _register_builtin() -> None:
    # These register themselves on import; kept here so the registry is complete on import.
    from py_finance.features import alpha158, fundamentals, news  # noqa: F401


_register_builtin()


def adjusted_panel(
    store: Any,
    symbols: Sequence[str] | None,
    start: Any,
    end: Any,
    as_of: Any,
    *,
    table: str = "bars",
    extra: Sequence[str] = (),
) -> dict[str, pd.DataFrame]:
    """``{field: session x symbol}`` bars on the adjusted-close basis, as known at ``as_of``.

    ``close`` is the stored ``adj_close``; open/high/low/vwap are scaled by
    ``adj_close / close`` of the same session and volume divided by it, so ratios across
    sessions see no split. Fields a source does not have come back all-NaN and are then
    left out by :class:`FeatureInputs`. ``extra=("raw_close",)`` adds the stored
    (as-traded) close as ``raw_close``, unless the store's ``meta.json`` says its source
    has adjusted prices only.
    """
    wanted = ("open", "high", "low", "close", "adj_close", "volume")
    if hasattr(store, "panel"):
        raw = store.panel(wanted, symbols, start, end, as_of, table=table)
    else:  # a store without multi-field reads: closes only
        raw = {"adj_close": store.wide("adj_close", symbols, start, end, as_of, table=table)}
    adj = raw["adj_close"]
    out = {"close": adj}
    if "close" in raw:
        with np.errstate(invalid="ignore", divide="ignore"):
            factor = adj / raw["close"]
        for name in ("open", "high", "low"):
            if name in raw:
                out[name] = raw[name] * factor
        if "volume" in raw:
            out["volume"] = raw["volume"] / factor
        if "raw_close" in extra:
            meta = store.meta() if hasattr(store, "meta") else {}
            if meta.get("adjusted_only"):  # e.g. alpaca's adjustment=all: "close" is adjusted
                log.info("features: the store's source has adjusted prices only, no raw_close")
            else:
                out["raw_close"] = raw["close"]
    return out


def needs(groups: Sequence[FeatureGroup]) -> tuple[list[str], list[str]]:
    """``(tables, extra_fields)`` the groups read beyond the adjusted bars."""
    tables = sorted({t for g in groups for t in g.tables})
    extra = sorted({f for g in groups for f in g.extra_fields})
    return tables, extra
