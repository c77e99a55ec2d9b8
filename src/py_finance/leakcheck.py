"""Lookahead detector: ``python -m py_finance.leakcheck``.

In the spirit of freqtrade's ``lookahead-analysis``: for N sampled sessions t it recomputes
every component (each shipped feature set, label horizon and regime config, plus any
registered with :func:`register_component`) twice,

1. from data truncated at the close of t, and
2. from data whose future (sessions after t) was randomly perturbed,

and compares the rows known at t with the full-history computation. A column whose past
changed is a leak; it is reported by name and the command exits with status 1.

To stay fast, components with a finite lookback are recomputed on a window
``[t - lookback - compare, t (+ future)]`` rather than the whole history; components with
expanding state (regime fits) are recomputed on the whole prefix, with fits memoised by
their training data (:func:`py_finance.features.regimes.fit_cache`).

Fundamentals and news tables travel with the bars: truncating at t keeps only the rows
whose knowledge time ``available_at`` is at or before the close of t (what a store read as
of that close returns), and the perturbed future changes the values of rows known after it
and drops or delays articles known after it. The bundled source has no such tables, so
:func:`bundled_data` adds synthetic ones (:func:`synthetic_tables`: late filings,
restatements, after-close and weekend articles) for the ``fundamentals`` and ``news``
groups to be checked.

Bars, delistings and membership travel the same way. The bundled source has adjusted closes
only, so the command also checks the feature sets and labels on the synthetic market
(:func:`synthetic_data`): every bar field (open, high, low, close, vwap, volume) is
perturbed after t, delistings after t are redrawn and new ones added, membership not yet
known at t is redrawn, and half the sampled sessions sit at those events.

Values are compared with a relative tolerance of ``rtol`` (running sums restarted at a
different session differ in the last bits); rows present on one side only are reported as
the column ``<rows>``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from py_finance.errors import PyFinanceError

log = logging.getLogger(__name__)

ROWS = "<rows>"
SLACK = 5  # extra sessions of history in each recompute window


@dataclass(frozen=True)
class LeakData:
    """What components are computed from: bar fields (``session x symbol``) and the market.

    Parameters
    ----------
    fields
        ``{field: session x symbol frame}`` with ``close`` (adjusted) at least.
    market
        Market index level per session (the benchmark).
    fundamentals, news
        Point-in-time tables (layouts in :mod:`py_finance.features.tables`), or ``None``.
    calendar
        Exchange calendar whose session closes cut the tables.
    delistings
        ``symbol, date, delisting_return`` (``date``: the first session a name no longer
        trades, known from its close), or ``None``.
    membership
        Membership spells ``symbol, start, end`` (``end``: the last member session, NaT
        while open; a spell is known from its start's close, its end from the end's close),
        or ``None``.
    """

    fields: dict[str, pd.DataFrame]
    market: pd.Series
    fundamentals: pd.DataFrame | None = None
    news: pd.DataFrame | None = None
    calendar: str = "XNYS"
    delistings: pd.DataFrame | None = None
    membership: pd.DataFrame | None = None

    @property
    def sessions(self) -> pd.DatetimeIndex:
        """Sessions of the data."""
        return pd.DatetimeIndex(self.fields["close"].index)

    def event_positions(self) -> np.ndarray:
        """Sessions (positions) of, and just before, each delisting and spell start or end."""
        days: list[pd.Timestamp] = []
        if self.delistings is not None:
            days += list(pd.to_datetime(self.delistings["date"]))
        if self.membership is not None:
            days += list(pd.to_datetime(self.membership["start"]))
            days += list(pd.to_datetime(self.membership["end"]).dropna())
        if not days:
            return np.array([], dtype=int)
        at = self.sessions.get_indexer(pd.DatetimeIndex(days).normalize())
        at = at[at >= 0]
        return np.unique(np.concatenate([at - 1, at]))

    def members(self) -> pd.DataFrame | None:
        """``session x symbol`` membership (:func:`~py_finance.data.store.membership_mask`)."""
        from py_finance.data.store import membership_mask

        if self.membership is None:
            return None
        close = self.fields["close"]
        return membership_mask(self.membership, close.index, close.columns)

    def cutoff(self, position: int) -> int:
        """Close of the session at ``position`` (int64 UTC ns): the tables' knowledge cut."""
        from py_finance.features.tables import session_cutoffs

        return int(session_cutoffs(self.sessions[position : position + 1], self.calendar)[0])

    def window(self, lo: int, hi: int) -> LeakData:
        """Sessions ``lo..hi`` (positions, inclusive); tables as known at the close of ``hi``."""
        from py_finance.features.tables import known_by

        cut = self.cutoff(hi) if self.fundamentals is not None or self.news is not None else 0
        last = self.sessions[hi]
        return LeakData(
            {k: v.iloc[lo : hi + 1] for k, v in self.fields.items()},
            self.market.iloc[lo : hi + 1],
            known_by(self.fundamentals, cut),
            known_by(self.news, cut),
            self.calendar,
            _delistings_known(self.delistings, last),
            membership_known(self.membership, last),
        )

    def perturbed(self, after: int, rng: np.random.Generator, scale: float = 0.05) -> LeakData:
        """A copy whose sessions after position ``after`` are randomly changed.

        Every bar field changes: prices get a random-walk factor per symbol (shared by
        open/high/low/close/vwap) and independent noise per field (so a feature reading a
        later open, high or low sees it move even relative to the close); volume, and any
        other field, an independent log-normal factor. With delistings, the later ones get
        new returns and one name in eight still trading at ``after`` is delisted at a random
        later session (its bars end there). With membership, spells open at ``after`` get a
        random end (or stay open), later spells are replaced by random ones.
        """
        n = len(self.sessions) - after - 1
        if n <= 0:
            return self
        out: dict[str, pd.DataFrame] = {}
        k = self.fields["close"].shape[1]
        path = np.exp(np.cumsum(rng.normal(0.0, scale, size=(n, k)), axis=0))
        for name, frame in self.fields.items():
            values = frame.to_numpy(dtype="float64", copy=True)
            if name in PRICE_FIELDS:
                values[after + 1 :] *= path * np.exp(rng.normal(0.0, scale / 5, size=(n, k)))
            else:
                values[after + 1 :] *= rng.lognormal(0.0, 0.5, size=(n, k))
            out[name] = pd.DataFrame(values, index=frame.index, columns=frame.columns)
        market = self.market.to_numpy(dtype="float64", copy=True)
        market[after + 1 :] *= np.exp(np.cumsum(rng.normal(0.0, scale, size=n)))
        fundamentals, news = self.fundamentals, self.news
        if fundamentals is not None or news is not None:
            fundamentals, news = _perturb_tables(fundamentals, news, self.cutoff(after), rng)
        delistings = self.delistings
        if delistings is not None:
            delistings = _perturb_delistings(out, delistings, after, rng)
        membership = self.membership
        if membership is not None:
            membership = _perturb_membership(membership, self.sessions, after, rng)
        return LeakData(
            out,
            pd.Series(market, index=self.market.index, name=self.market.name),
            fundamentals,
            news,
            self.calendar,
            delistings,
            membership,
        )


PRICE_FIELDS = ("open", "high", "low", "close", "vwap", "raw_close")


def _delistings_known(delistings: pd.DataFrame | None, t: pd.Timestamp) -> pd.DataFrame | None:
    """Delistings known at the close of session ``t`` (those dated ``t`` or before)."""
    if delistings is None:
        return None
    dates = pd.DatetimeIndex(pd.to_datetime(delistings["date"]))
    return delistings.loc[np.asarray(dates <= t)].reset_index(drop=True)


def membership_known(spells: pd.DataFrame | None, t: pd.Timestamp) -> pd.DataFrame | None:
    """Membership spells as known at the close of session ``t``.

    Spells that start after ``t`` are unknown; an end after ``t`` is unknown (the spell is
    open), as :func:`py_finance.data.store.membership_versions` stores them.
    """
    if spells is None:
        return None
    known = spells.loc[np.asarray(pd.to_datetime(spells["start"]) <= t)].copy()
    end = pd.to_datetime(known["end"])
    known["end"] = end.where(end <= t)
    return known.reset_index(drop=True)


def _perturb_delistings(
    fields: dict[str, pd.DataFrame],
    delistings: pd.DataFrame,
    after: int,
    rng: np.random.Generator,
) -> pd.DataFrame:
    """New returns for the delistings after ``after``; some names delisted at random later.

    ``fields`` are changed in place: a newly delisted name has no bars from its date on.
    """
    close = fields["close"]
    sessions = pd.DatetimeIndex(close.index)
    t = sessions[after]
    frame = delistings.copy()
    dates = pd.DatetimeIndex(pd.to_datetime(frame["date"]))
    later = np.asarray(dates > t)
    rets = frame["delisting_return"].to_numpy(dtype="float64", copy=True)
    rets[later] = rng.uniform(-1.0, 0.5, size=int(later.sum()))
    frame["delisting_return"] = rets
    trading = np.flatnonzero(np.isfinite(close.to_numpy()[after]))
    if after + 2 >= len(sessions) or not len(trading):
        return frame
    chosen = trading[rng.random(len(trading)) < 0.125]
    rows = []
    for j in chosen:
        sym = str(close.columns[j])
        r = int(rng.integers(after + 1, len(sessions)))
        for values in fields.values():
            if sym in values.columns:
                values.loc[values.index[r:], sym] = np.nan
        rows.append((sym, sessions[r], float(rng.uniform(-1.0, 0.5))))
    if not rows:
        return frame
    gone = {sym for sym, _, _ in rows}
    keep = ~(frame["symbol"].astype(str).isin(gone).to_numpy() & later)
    added = pd.DataFrame(rows, columns=["symbol", "date", "delisting_return"])
    return pd.concat([frame.loc[keep], added], ignore_index=True)


def _perturb_membership(
    spells: pd.DataFrame, sessions: pd.DatetimeIndex, after: int, rng: np.random.Generator
) -> pd.DataFrame:
    """Spells as known at ``after`` kept; their unknown ends and later spells drawn at random."""
    t = sessions[after]
    n = len(sessions)
    if after + 1 >= n:
        return spells
    start = pd.to_datetime(spells["start"])
    end = pd.to_datetime(spells["end"])
    ended = np.asarray(end.notna() & (end <= t))
    open_at_t = np.asarray((start <= t) & ~ended)
    frame = spells.loc[ended | open_at_t, ["symbol", "start", "end"]].copy()
    redraw = np.asarray(open_at_t[ended | open_at_t])
    new_end = pd.Series(
        sessions[rng.integers(after + 1, n, size=len(frame))], index=frame.index
    ).where(rng.random(len(frame)) < 0.5)
    frame.loc[redraw, "end"] = new_end[redraw]
    symbols = spells["symbol"].astype(str).unique()
    joins = symbols[rng.random(len(symbols)) < 0.1]
    first = rng.integers(after + 1, n, size=len(joins))
    last = np.minimum(first + rng.integers(0, 126, size=len(joins)), n - 1)
    added = pd.DataFrame(
        {
            "symbol": joins,
            "start": sessions[first],
            "end": pd.Series(sessions[last]).where(rng.random(len(joins)) < 0.5).to_numpy(),
        }
    )
    return pd.concat([frame, added], ignore_index=True)


def _perturb_tables(
    fundamentals: pd.DataFrame | None,
    news: pd.DataFrame | None,
    cut: int,
    rng: np.random.Generator,
) -> tuple[pd.DataFrame | None, pd.DataFrame | None]:
    """Change what is known after ``cut`` (UTC ns): values scaled, articles dropped or delayed."""
    stamp = pd.Timestamp(cut, tz="UTC")
    if fundamentals is not None:
        fundamentals = fundamentals.copy()
        later = np.asarray(pd.to_datetime(fundamentals["available_at"], utc=True) > stamp)
        values = fundamentals["value"].to_numpy(dtype="float64", copy=True)
        values[later] *= rng.lognormal(0.0, 0.5, size=int(later.sum()))
        fundamentals["value"] = values
    if news is not None:
        known = pd.to_datetime(news["available_at"], utc=True)
        later = np.asarray(known > stamp)
        keep = ~later | (rng.random(len(news)) < 0.5)
        news = news.copy()
        delay = pd.to_timedelta(rng.uniform(0.0, 2.0, size=len(news)) * later, unit="D")
        news["available_at"] = known + delay
        if "sentiment" in news.columns:
            noise = rng.normal(0.0, 0.5, size=len(news)) * later
            news["sentiment"] = news["sentiment"].to_numpy(dtype="float64") + noise
        news = news.loc[keep].reset_index(drop=True)
    return fundamentals, news


KnownAt = Callable[[pd.DataFrame, pd.Timestamp], np.ndarray]


def _session_level(frame: pd.DataFrame) -> pd.DatetimeIndex:
    index = frame.index
    if isinstance(index, pd.MultiIndex):
        return pd.DatetimeIndex(index.get_level_values(0))
    return pd.DatetimeIndex(index)


def known_by_session(frame: pd.DataFrame, t: pd.Timestamp) -> np.ndarray:
    """Rows whose session is on or before t (features, regimes)."""
    return np.asarray(_session_level(frame) <= t)


def known_by_label_end(frame: pd.DataFrame, t: pd.Timestamp) -> np.ndarray:
    """Rows whose label window has ended by t (labels)."""
    return np.asarray(pd.DatetimeIndex(frame["label_end"]) <= t)


@dataclass(frozen=True)
class Component:
    """One thing to check: a pure function of :class:`LeakData`.

    Parameters
    ----------
    name
        How reports name it (``features=alpha158``).
    compute
        Returns a frame indexed by session or ``(session, symbol)``.
    lookback
        Sessions of history one row needs; ``None`` for expanding state (whole prefix).
    delay
        Sessions between a row's session and when it becomes known (labels: lag + h).
    known_at
        Which rows of a result are known at t.
    """

    name: str
    compute: Callable[[LeakData], pd.DataFrame]
    lookback: int | None
    delay: int = 0
    known_at: KnownAt = known_by_session


@dataclass(frozen=True)
class Finding:
    """A column of a component whose past changed."""

    component: str
    column: str
    mode: str  # "truncated" or "perturbed"
    n_sessions: int  # sampled sessions at which it changed
    first_session: pd.Timestamp
    example: str


@dataclass(frozen=True)
class LeakReport:
    """What the detector found for one component."""

    component: str
    n_sessions: int
    columns: tuple[str, ...]
    findings: tuple[Finding, ...] = field(default=())

    @property
    def ok(self) -> bool:
        """No leak found."""
        return not self.findings

    @property
    def leaky_columns(self) -> list[str]:
        """Names of the columns that leak."""
        return sorted({f.column for f in self.findings})

    def summary(self) -> str:
        """One line (plus one per leaky column)."""
        head = f"{self.component}: {len(self.columns)} columns x {self.n_sessions} sessions: " + (
            "ok" if self.ok else f"LEAK in {', '.join(self.leaky_columns)}"
        )
        lines = [head]
        for f in self.findings:
            lines.append(
                f"  {f.column} ({f.mode}) changed at {f.n_sessions} sampled sessions, "
                f"first {f.first_session.date()}: {f.example}"
            )
        return "\n".join(lines)


def _compare(expected: pd.DataFrame, got: pd.DataFrame, rtol: float, atol: float) -> dict[str, str]:
    """Columns that differ -> an example; ``<rows>`` when the row sets differ."""
    out: dict[str, str] = {}
    if not expected.index.equals(got.index):
        missing = expected.index.difference(got.index)
        extra = got.index.difference(expected.index)
        out[ROWS] = f"{len(missing)} rows missing, {len(extra)} extra"
        common = expected.index.intersection(got.index)
        expected, got = expected.loc[common], got.loc[common]
    for col in expected.columns:
        if col not in got.columns:
            out[col] = "column missing"
            continue
        a, b = expected[col], got[col]
        if pd.api.types.is_numeric_dtype(a) and pd.api.types.is_numeric_dtype(b):
            x = a.to_numpy(dtype="float64")
            y = b.to_numpy(dtype="float64")
            same = np.isclose(x, y, rtol=rtol, atol=atol, equal_nan=True)
        else:
            same = ((a == b) | (a.isna() & b.isna())).to_numpy()
        if not same.all():
            i = int(np.flatnonzero(~same)[0])
            out[col] = f"row {expected.index[i]}: full {a.iloc[i]!r} vs {b.iloc[i]!r}"
    for col in got.columns:
        if col not in expected.columns:
            out[col] = "extra column"
    return out


def check(
    component: Component,
    data: LeakData,
    *,
    n_sessions: int = 100,
    seed: int = 0,
    compare: int = 5,
    future: int = 63,
    rtol: float = 1e-5,
    atol: float = 1e-8,
    progress: bool = False,
) -> LeakReport:
    """Recompute ``component`` at ``n_sessions`` sampled sessions; see the module docstring.

    With delistings or membership in ``data``, up to half of the sampled sessions are the
    sessions of, and just before, a delisting or a membership change (where knowing it a
    session early shows); the rest are drawn uniformly.

    Parameters
    ----------
    compare
        Sessions up to t whose rows are compared at each sampled t.
    future
        Sessions after t kept (and perturbed) in the perturbed recompute.
    """
    from py_finance.features.regimes import fit_cache

    rng = np.random.default_rng(seed)
    sessions = data.sessions
    n = len(sessions)
    lookback = component.lookback
    history = (lookback or 0) + component.delay + compare + SLACK
    first = history if lookback is not None else component.delay + compare
    if n - 1 - first < 1:
        raise PyFinanceError(f"{component.name}: {n} sessions are too few to check")
    positions = _sample(np.arange(first, n - 1), data.event_positions(), n_sessions, rng)
    findings: dict[tuple[str, str], list[Any]] = {}
    with fit_cache():
        full = component.compute(data)
        iterator: Any = positions
        if progress:
            from tqdm import tqdm

            iterator = tqdm(positions, desc=component.name, leave=False)
        for p in iterator:
            t = sessions[p]
            lo = 0 if lookback is None else max(0, p - history)
            region_start = sessions[max(lo + (lookback or 0), p - compare - component.delay + 1)]

            def region(
                frame: pd.DataFrame, t: pd.Timestamp = t, start: Any = region_start
            ) -> pd.DataFrame:
                s = _session_level(frame)
                keep = np.asarray(s >= start) & component.known_at(frame, t)
                return frame.loc[keep]

            expected = region(full)
            truncated = component.compute(data.window(lo, p))
            hi = min(n - 1, p + future)
            perturbed = component.compute(data.window(lo, hi).perturbed(p - lo, rng))
            for mode, got in (("truncated", truncated), ("perturbed", perturbed)):
                for col, example in _compare(expected, region(got), rtol, atol).items():
                    findings.setdefault((col, mode), []).append((t, example))
    result = tuple(
        Finding(component.name, col, mode, len(hits), hits[0][0], hits[0][1])
        for (col, mode), hits in sorted(findings.items())
    )
    return LeakReport(component.name, len(positions), tuple(map(str, full.columns)), result)


def _sample(
    candidates: np.ndarray, events: np.ndarray, n_sessions: int, rng: np.random.Generator
) -> np.ndarray:
    """``n_sessions`` of ``candidates`` (sorted): up to half at ``events``, the rest uniform."""
    size = min(n_sessions, len(candidates))
    at_events = np.intersect1d(candidates, events)
    k = min(size // 2, len(at_events))
    chosen = rng.choice(at_events, size=k, replace=False) if k else np.array([], dtype=int)
    rest = np.setdiff1d(candidates, chosen)
    others = rng.choice(rest, size=size - k, replace=False)
    return np.sort(np.concatenate([chosen, others]).astype(int))


# ------------------------------------------------------------------ shipped components
ComponentFactory = Callable[[Any], list[Component]]
_FACTORIES: list[ComponentFactory] = []


def register_component(factory: ComponentFactory) -> ComponentFactory:
    """Add components built from a composed config (e.g. regime policies)."""
    _FACTORIES.append(factory)
    return factory


def options(group: str) -> list[str]:
    """Shipped options of a config group (``conf/<group>/*.yaml``)."""
    from py_finance.config import conf_dir

    return sorted(p.stem for p in (conf_dir() / group).glob("*.yaml"))


def feature_component(name: str, cfg: Any, calendar: str = "XNYS") -> Component:
    """A feature set as a component."""
    from py_finance.features.technical import build_features

    def compute(d: LeakData) -> pd.DataFrame:
        return build_features(
            d.fields,
            cfg,
            market=d.market,
            calendar=calendar,
            fundamentals=d.fundamentals,
            news=d.news,
        )

    return Component(f"features={name}", compute, None if cfg.expanding else cfg.lookback + 1)


def label_component(name: str, cfg: Any, execution_lag: int = 1) -> Component:
    """A label config as a component: rows known once their window has ended.

    As the labels stage computes them: with the data's delistings (paid out inside a
    window) and membership (members' rows only, ranked among members), when it has them.
    """
    from py_finance.features.labels import forward_returns

    def compute(d: LeakData) -> pd.DataFrame:
        return forward_returns(
            d.fields["close"], cfg, execution_lag, delistings=d.delistings, members=d.members()
        )

    return Component(
        f"labels={name}", compute, 0, delay=cfg.horizon + execution_lag, known_at=known_by_label_end
    )


def regime_component(name: str, cfg: Any) -> Component:
    """A regime config as a component (expanding refits)."""
    from py_finance.features.regimes import detect_regimes

    def compute(d: LeakData) -> pd.DataFrame:
        return detect_regimes(d.market, cfg)

    return Component(f"regimes={name}", compute, None)


def policy_component(name: str, policy: Any, regimes_cfg: Any) -> Component:
    """A regime exposure policy as a component: its multiplier per session.

    The policy sees the regimes of ``regimes_cfg`` and, for policies estimated from the
    strategy's past (``data_driven``), the equal-weight universe's daily return as the
    strategy's return: any use of a later return changes an earlier multiplier.
    """
    from py_finance.features.regimes import detect_regimes

    def compute(d: LeakData) -> pd.DataFrame:
        regimes = detect_regimes(d.market, regimes_cfg)["regime"].reindex(d.sessions)
        returns = d.fields["close"].pct_change(fill_method=None).mean(axis=1)
        mult = policy.row_multipliers(
            [str(r) for r in regimes.fillna("unknown")], returns.to_numpy(dtype="float64")
        )
        return pd.DataFrame({"multiplier": mult}, index=d.sessions)

    return Component(f"regime_policy={name}", compute, None)


def shipped_components(
    features: Sequence[str] | None = None,
    labels: Sequence[str] | None = None,
    regimes: Sequence[str] | None = None,
    overrides: Sequence[str] = (),
    policies: Sequence[str] | None = None,
) -> list[Component]:
    """Every shipped feature set, label horizon, regime config and regime policy."""
    from py_finance.config import build, compose, instantiate

    base = compose(list(overrides))
    lag = int(base.backtest.execution_lag)
    calendar = str(base.data.get("calendar", "XNYS"))
    out: list[Component] = []
    for name in features if features is not None else options("features"):
        cfg = instantiate(compose([*overrides, f"features={name}"]).features)
        out.append(feature_component(name, cfg, calendar))
    for name in labels if labels is not None else options("labels"):
        cfg = instantiate(compose([*overrides, f"labels={name}"]).labels)
        out.append(label_component(name, cfg, lag))
    for name in regimes if regimes is not None else options("regimes"):
        cfg = instantiate(compose([*overrides, f"regimes={name}"]).regimes)
        out.append(regime_component(name, cfg))
    regimes_cfg = instantiate(base.regimes)
    for name in policies if policies is not None else options("regime_policy"):
        policy = instantiate(compose([*overrides, f"regime_policy={name}"]).regime_policy)
        out.append(policy_component(name, policy, regimes_cfg))
    if _FACTORIES:
        settings = build(base)
        for factory in _FACTORIES:
            out.extend(factory(settings))
    return out


def synthetic_tables(
    close: pd.DataFrame, seed: int = 0, calendar: str = "XNYS"
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Random fundamentals and news for the symbols and sessions of ``close``.

    Fundamentals (``eps``, ``bvps``, ``revenue``, ``roe``) of every calendar quarter, filed
    20 to 100 days after the quarter ends (before the open, at the close or after it); one
    value in sixteen is restated 20 to 120 days later, and a late filing may arrive after the
    next quarter's. News: about 0.4 articles per symbol and calendar day at any time of day
    (weekends and after the close included) with a ``sentiment`` in [-1, 1]; one in twenty
    also has a later version. Only for checking time rules: the numbers mean nothing.
    """
    from py_finance.features.tables import session_cutoffs

    rng = np.random.default_rng(seed)
    sessions = pd.DatetimeIndex(close.index)
    first, last = sessions[0], sessions[-1]
    quarters = pd.date_range(first - pd.Timedelta(days=200), last, freq="QE")
    closes = session_cutoffs(sessions, calendar)
    day_ns = 86_400 * 10**9
    hour_ns = 3_600 * 10**9
    parts = []
    for sym in map(str, close.columns):
        n = len(quarters)
        lag = pd.to_timedelta(rng.integers(20, 101, n), unit="D")
        filed = sessions.searchsorted(quarters + lag)
        ok = filed < len(sessions)
        # before the open, at the close, after the close of the filing session
        hours = rng.choice([-7.0, 0.0, 1.5], n)
        known = closes[np.minimum(filed, len(sessions) - 1)] + (hours * hour_ns).astype("int64")
        values = {
            "eps": 1.0 + np.cumsum(rng.normal(0.0, 0.3, n)),
            "bvps": 20.0 * np.exp(np.cumsum(rng.normal(0.01, 0.05, n))),
            "revenue": 1e9 * np.exp(np.cumsum(rng.normal(0.01, 0.08, n))),
            "roe": rng.normal(0.1, 0.05, n),
        }
        for name, value in values.items():
            parts.append(_table_rows(sym, quarters[ok], name, value[ok], known[ok]))
            restated = ok & (rng.random(n) < 0.06)
            later = known + (rng.uniform(20, 120, n) * day_ns).astype("int64")
            parts.append(
                _table_rows(
                    sym, quarters[restated], name, value[restated] * 1.1 + 0.01, later[restated]
                )
            )
    fundamentals = pd.concat(parts, ignore_index=True)
    start_ns = pd.Timestamp(first, tz="UTC").value
    span = pd.Timestamp(last, tz="UTC").value + day_ns - start_ns
    parts = []
    for sym in map(str, close.columns):
        n = int(rng.poisson(0.4 * span / day_ns))
        times = np.sort(start_ns + (rng.random(n) * span).astype("int64"))
        part = pd.DataFrame(
            {
                "symbol": sym,
                "id": [f"{sym}-{i}" for i in range(n)],
                "available_at": pd.to_datetime(times, utc=True),
                "sentiment": rng.uniform(-1.0, 1.0, n),
            }
        )
        again = part.loc[rng.random(n) < 0.05].copy()
        again["available_at"] += pd.to_timedelta(rng.uniform(0.1, 3.0, len(again)), unit="D")
        again["sentiment"] = rng.uniform(-1.0, 1.0, len(again))
        parts += [part, again]
    news = pd.concat(parts, ignore_index=True)
    return fundamentals, news


def _table_rows(
    symbol: str, periods: pd.DatetimeIndex, name: str, values: np.ndarray, known: np.ndarray
) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "symbol": symbol,
            "period_end": periods,
            "field": name,
            "value": values,
            "available_at": pd.to_datetime(known, utc=True),
        }
    )


def bundled_data(
    symbols: Sequence[str] | None = None,
    start: str | None = None,
    end: str | None = None,
    *,
    tables: bool = True,
) -> LeakData:
    """The bundled source's bars and benchmark (no store needed).

    With ``tables`` (default), synthetic fundamentals and news (:func:`synthetic_tables`)
    and an as-traded close equal to the adjusted one, so the ``fundamentals`` and ``news``
    groups are checked too (the bundled source has neither).
    """
    from py_finance.data.sources.bundled import BundledSource

    src = BundledSource()
    first, last = src.coverage()
    s = pd.Timestamp(start).date() if start else first
    e = pd.Timestamp(end).date() if end else last
    long = src.bars(list(symbols) if symbols else src.symbols(), s, e)
    close = long.pivot(index="session", columns="symbol", values="adj_close").sort_index()
    close.columns.name = None
    bench = src.benchmark(s, e)
    market = bench.pivot(index="session", columns="symbol", values="adj_close").iloc[:, 0]
    close = close.astype("float64")
    if not tables:
        return LeakData({"close": close}, market.reindex(close.index))
    fundamentals, news = synthetic_tables(close)
    return LeakData(
        {"close": close, "raw_close": close.copy()},
        market.reindex(close.index),
        fundamentals,
        news,
    )


def synthetic_data(
    n_active: int = 30,
    n_sessions: int = 1260,
    seed: int = 0,
    *,
    tables: bool = True,
) -> LeakData:
    """The synthetic market's OHLCV bars, index, delistings and membership (no store needed).

    :class:`~py_finance.data.sources.synthetic.SyntheticSource` with ``n_active`` index
    members (twice as many names listed over time): names list, delist (acquisitions and
    failures, with their delisting returns) and drift in and out of the index, so labels are
    checked with delistings and membership changes and every bar field (open, high, low,
    close, volume, plus a ``vwap`` of high, low and close and ``raw_close`` equal to the
    close) is perturbed. With ``tables``, synthetic fundamentals and news as for
    :func:`bundled_data`.
    """
    from py_finance.data.sources.synthetic import SyntheticSource

    src = SyntheticSource(n_active=n_active, n_sessions=n_sessions, seed=seed)
    first, last = src.coverage()
    long = src.bars(src.symbols(), first, last)
    sessions = pd.DatetimeIndex(pd.to_datetime(src.benchmark(first, last)["session"]))
    fields: dict[str, pd.DataFrame] = {}
    for name in ("open", "high", "low", "close", "volume"):
        wide = long.pivot(index="session", columns="symbol", values=name)
        wide.columns.name = None
        fields[name] = wide.reindex(sessions).astype("float64")
    fields["vwap"] = (fields["high"] + fields["low"] + fields["close"]) / 3.0
    fields["raw_close"] = fields["close"].copy()
    bench = src.benchmark(first, last)
    market = pd.Series(bench["adj_close"].to_numpy(dtype="float64"), index=sessions)
    fundamentals, news = synthetic_tables(fields["close"], seed) if tables else (None, None)
    return LeakData(
        fields,
        market,
        fundamentals,
        news,
        delistings=src.delistings(),
        membership=src.universe(),
    )


def run(
    components: Sequence[Component],
    data: LeakData,
    *,
    label: str | None = None,
    **kwargs: Any,
) -> list[LeakReport]:
    """Check every component; logs one summary per component (prefixed ``[label]``)."""
    reports = []
    prefix = f"[{label}] " if label else ""
    for comp in components:
        report = check(comp, data, **kwargs)
        (log.info if report.ok else log.error)(prefix + report.summary())
        reports.append(report)
    return reports


DATASETS = ("bundled", "synthetic")


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; returns the exit status (0 clean, 1 leak, 2 usage/data error)."""
    parser = argparse.ArgumentParser(
        prog="python -m py_finance.leakcheck",
        description="Recompute features, labels and regimes on truncated and future-perturbed "
        "data at sampled sessions; exit 1 if any past value changed.",
    )
    parser.add_argument("--features", nargs="*", help="feature sets (default: all shipped)")
    parser.add_argument("--labels", nargs="*", help="label configs (default: all shipped)")
    parser.add_argument("--regimes", nargs="*", help="regime configs (default: all shipped)")
    parser.add_argument("--policies", nargs="*", help="regime policies (default: all shipped)")
    parser.add_argument(
        "--data",
        nargs="+",
        choices=DATASETS,
        default=list(DATASETS),
        help="bundled: the bundled closes (every component); synthetic: the synthetic market's "
        "OHLCV bars with delistings and membership changes (feature sets and labels); "
        "default: both",
    )
    parser.add_argument("--sessions", type=int, default=100, help="sampled sessions (100)")
    parser.add_argument(
        "--synthetic-sessions",
        type=int,
        default=50,
        help="sampled sessions on the synthetic market (50)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--compare", type=int, default=5, help="sessions compared per sample")
    parser.add_argument("--future", type=int, default=63, help="perturbed sessions after t")
    parser.add_argument("--symbols", nargs="*", help="bundled symbols (default: all)")
    parser.add_argument("--start", help="first bundled session (default: the data's first)")
    parser.add_argument("--end", help="last bundled session (default: the data's last)")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. regimes.refit=monthly")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    common = {
        "seed": args.seed,
        "compare": args.compare,
        "future": args.future,
        "progress": sys.stderr.isatty(),
    }
    leaks: list[str] = []
    counts: list[str] = []
    try:
        if "bundled" in args.data:
            comps = shipped_components(
                args.features, args.labels, args.regimes, args.overrides, args.policies
            )
            data = bundled_data(args.symbols, args.start, args.end)
            reports = run(comps, data, label="bundled", n_sessions=args.sessions, **common)
            leaks += [f"{r.component} (bundled)" for r in reports if not r.ok]
            counts.append(f"{len(comps)} on the bundled closes")
        if "synthetic" in args.data:
            # Regimes and regime policies read the index (and closes): the bundled run
            # checks them; here the components that read open/high/low/volume, delistings
            # and membership.
            comps = shipped_components(args.features, args.labels, [], args.overrides, [])
            data = synthetic_data(seed=args.seed)
            reports = run(
                comps, data, label="synthetic", n_sessions=args.synthetic_sessions, **common
            )
            leaks += [f"{r.component} (synthetic)" for r in reports if not r.ok]
            counts.append(
                f"{len(comps)} on the synthetic market (OHLCV, "
                f"{len(data.delistings if data.delistings is not None else [])} delistings, "
                f"{len(data.membership if data.membership is not None else [])} membership "
                "spells)"
            )
    except PyFinanceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(
        f"leakcheck: {', '.join(counts)}: "
        + ("no leak" if not leaks else f"LEAKS in {', '.join(leaks)}")
    )
    return 1 if leaks else 0


if __name__ == "__main__":
    sys.exit(main())
