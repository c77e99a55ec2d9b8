"""A seeded synthetic stock market: survivorship-free, with a planted edge of known size.

What is generated (all from ``seed``, identical for identical parameters):

- **Names and their lives.** ``n_names`` symbols ``S0001``, ... in order of listing. About
  ``1.25 * n_active`` are listed at the first session; the others list (IPO) at random
  sessions, and each IPO is followed within 60 sessions by the delisting of a randomly
  chosen older name, so the listed pool stays near ``1.25 * n_active``. A delisting is an
  acquisition (35%, holder gets +10%..+40% over the last close), a failure with nothing left
  (25%, exactly -100%) or a failure with a recovery (-95%..-30%). Which name delists, when,
  and its delisting return are drawn independently of prices: nothing about them can be
  forecast from the bars.
- **Index membership.** An index of ``n_active`` names, cap-weighted, rebuilt every 63
  sessions from the caps at the previous close: a member ranked below ``1.05 * n_active``
  among eligible names drifts out, the largest eligible non-members fill it up. A name is
  eligible once it has 21 sessions of history. A member that delists leaves at its last
  trading session and is replaced on the next one, so membership is ``n_active`` at every
  session once the pool allows. Names list before they join, drift out while still listed,
  and may return (several spells).
- **Returns.** For a name ``i`` listed at sessions ``t-1`` and ``t``::

      r_it = c + beta_i * m_t + g_i * s_{k(i,t),t} + sigma_i * e_it + edge * sigma_i * z_{i,t-1}

  ``c`` is a common drift (7%/year, the same for every name, so it does not change any
  ranking); ``m_t`` a zero-mean market factor with GARCH(1,1) volatility (16%/year on
  average); ``s_k`` eleven (``n_sectors``) sector factors; ``e_it`` Student-t shocks with 4
  degrees of freedom scaled to unit variance; ``sigma_i`` the name's daily idiosyncratic vol
  (20%..45% a year). ``r`` is clipped to [-30%, +40%] so no daily move looks like an
  unadjusted split to :func:`~py_finance.data.validation.validate_bars` (the t tails reach
  it on about 3 days in 100,000). Closes compound: ``close_t = close_{t-1} *
  (1 + r_it)``; first closes are lognormal around 50.
- **The planted edge** has one of several shapes (``shape``); each ``z_{i,t}`` is a
  cross-sectional rank over all listed names with 21 sessions of closes, mapped to uniform
  scores on ``[-sqrt(3), sqrt(3)]`` (mean 0, variance 1); ``z = 0`` for names with a shorter
  history. With ``ret_k = close_t / close_{t-k} - 1``:

  - ``momentum`` (the default): the rank of ``ret_20``;
  - ``reversal``: short-term reversal, the rank of ``-ret_5``;
  - ``sector``: sector-relative momentum, the rank of ``ret_20`` minus the mean ``ret_20`` of
    the ranked names in the same sector at ``t``;
  - ``interaction``: the rank of ``u(ret_20) * u(ret_5)`` (``u``: the uniform rank score),
    an edge that neither return carries alone (momentum confirmed by the last week pays,
    momentum contradicted by it reverses);
  - ``regime``: momentum in bull markets only: the rank of ``ret_20`` when the market
    factor's sum over the last 60 sessions is positive, ``z = 0`` for every name otherwise.

Why :meth:`SyntheticSource.oracle_scores` is the best achievable ranking: given everything
known at the close of ``t``, the market and sector factors and the shocks of ``t+1`` are
independent and mean zero, betas only multiply mean-zero factors, the drift is common and
delistings are unpredictable, so the expected next-session return differs across names only
through ``edge * sigma_i * z_{i,t}``: ranking by ``sigma_i * z_{i,t}`` is ranking by the
expected return. For an ``h``-session label the same score ranks the expected return up to
the drift of ``z`` over the window (it changes slowly, 20-session windows overlap), so it
stays the practical ceiling. Both parts are computable from closes alone (``z`` from 20-day
returns of the listed cross-section, ``sigma_i`` from residual volatility), so a model that
sees prices can learn it. With ``edge=0`` returns hold no cross-sectional information at
all: any skill a pipeline reports on that market is a leak or noise.

Open, high, low and volume are drawn per name from their own seeded stream (so one symbol's
fetch is cheap and equal to the same symbol inside a larger request): the open gaps from the
previous close, high and low extend the open-close range, volume is lognormal and rises with
``|r| / sigma``. There are no corporate actions: ``adj_close == close``.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from py_finance.data.sources.base import SourceInfo, check_range
from py_finance.data.sources.vendor import Fetched
from py_finance.errors import ConfigError, DataError

log = logging.getLogger(__name__)

BENCHMARK_SYMBOL = "INDEX"
CALENDAR = "XNYS"

INFO = SourceInfo(
    name="synthetic",
    survivorship_biased=False,
    adjusted_only=False,
    notes=(
        "synthetic market from a seeded model: listings, delistings and index membership "
        "are simulated, so the universe is survivorship-free",
        "planted edge: E[r_t+1] = edge * sigma_i * z_i,t, z of the chosen shape (20-session "
        "momentum by default; see SyntheticSource.edge_description and oracle_scores)",
        "no corporate actions: adj_close equals close; sectors are synthetic labels",
    ),
)

TRADING_DAYS = 252
DRIFT = 0.07 / TRADING_DAYS  # common to every name: changes no ranking
MARKET_VOL = 0.16 / math.sqrt(TRADING_DAYS)
GARCH_ALPHA, GARCH_BETA = 0.08, 0.90
SECTOR_VOL = 0.10 / math.sqrt(TRADING_DAYS)
IDIO_VOL = (0.20 / math.sqrt(TRADING_DAYS), 0.45 / math.sqrt(TRADING_DAYS))
T_DF = 4.0
# The validator quarantines day-over-day ratios within 3% of a split ratio (1.5 and 2/3 are
# the nearest to 1), so daily returns stay inside [0.7, 1.4] of the previous close.
RETURN_CLIP = (-0.30, 0.40)
MOMENTUM_WINDOW = 20  # z needs closes at t and t-20: 21 sessions of history
POOL_RATIO = 1.25  # listed names per index member
DRIFT_OUT = 1.05  # a member ranked below this many times n_active leaves at a rebuild
REBUILD_EVERY = 63
MIN_AGE_TO_DELIST = 60
DELIST_LAG = 60  # a delisting follows an IPO within this many sessions
SECTOR_CHANGE_SHARE = 0.05
DELIST_KINDS = (0.35, 0.25)  # acquisitions, failures at exactly -100%; the rest partial


@dataclass(frozen=True, slots=True)
class _Market:
    """The generated panel; rows are sessions, columns names (in ``symbols`` order)."""

    sessions: pd.DatetimeIndex
    symbols: tuple[str, ...]
    listing: np.ndarray  # session index of the first bar
    delist: np.ndarray  # first session index without a bar (n_sessions: still listed)
    delisting_return: np.ndarray  # NaN where the name does not delist
    close: np.ndarray  # float64, NaN where not listed
    z: np.ndarray  # float32 momentum score at each close (0 where history is short)
    sigma: np.ndarray  # daily idiosyncratic vol
    member: np.ndarray  # bool, index member during the session
    index_level: np.ndarray  # total-return index of the members, 100 at the first session
    sector: np.ndarray  # first sector label
    sector_new: np.ndarray  # second label (== sector where none)
    sector_from: np.ndarray  # session index of the second label (n_sessions: none)
    volume_base: np.ndarray


SHAPES = ("momentum", "reversal", "sector", "interaction", "regime")
REVERSAL_WINDOW = 5
REGIME_WINDOW = 60


def _first_sessions(start: str, n_sessions: int) -> pd.DatetimeIndex:
    from py_finance.data.calendar import get_calendar, sessions

    last = pd.Timestamp(get_calendar(CALENDAR).last_session).tz_localize(None)
    first = pd.Timestamp(start)
    want = first + pd.Timedelta(days=math.ceil(n_sessions * 366 / 245) + 14)
    found = sessions(first, min(want, last), CALENDAR)[:n_sessions]
    if len(found) < n_sessions:
        raise ConfigError(
            f"data.options: {n_sessions} sessions from {start} run past the calendar's last "
            f"session {last.date()}: choose an earlier start or fewer sessions"
        )
    return pd.DatetimeIndex(found).normalize()


def _lives(
    rng: np.random.Generator, n_names: int, n_pool: int, n_sessions: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Listing and delisting session of every name, and its delisting return."""
    listing = np.zeros(n_names, dtype=np.int64)
    n_ipo = n_names - n_pool
    if n_ipo:
        listing[n_pool:] = np.sort(rng.integers(1, n_sessions, size=n_ipo))
    delist = np.full(n_names, n_sessions, dtype=np.int64)
    events = np.sort(listing[n_pool:] + rng.integers(0, DELIST_LAG, size=n_ipo))
    picks = rng.random(len(events))
    for day, pick in zip(events, picks, strict=True):
        if day >= n_sessions:
            break
        alive = (listing < day) & (delist == n_sessions)
        alive &= (listing == 0) | (day - listing >= MIN_AGE_TO_DELIST)
        candidates = np.flatnonzero(alive)
        if len(candidates):
            delist[candidates[int(pick * len(candidates))]] = day
    dlret = np.full(n_names, np.nan)
    gone = np.flatnonzero(delist < n_sessions)
    kind = rng.random(len(gone))
    acquired, wiped = DELIST_KINDS
    dlret[gone] = np.where(
        kind < acquired,
        rng.uniform(0.10, 0.40, len(gone)),
        np.where(kind < acquired + wiped, -1.0, rng.uniform(-0.95, -0.30, len(gone))),
    )
    return listing, delist, dlret


def _sector_labels(
    rng: np.random.Generator,
    listing: np.ndarray,
    delist: np.ndarray,
    n_sectors: int,
    n_sessions: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n_names = len(listing)
    first = rng.integers(0, n_sectors, size=n_names)
    second = first.copy()
    change = np.full(n_names, n_sessions, dtype=np.int64)
    room = np.flatnonzero(delist - listing > 60)
    n_change = min(len(room), round(SECTOR_CHANGE_SHARE * n_names)) if n_sectors > 1 else 0
    movers = np.sort(rng.choice(room, size=n_change, replace=False))
    if n_change:
        lo, hi = listing[movers] + 20, delist[movers] - 20
        change[movers] = lo + (rng.random(n_change) * (hi - lo)).astype(np.int64)
        second[movers] = (first[movers] + rng.integers(1, n_sectors, size=n_change)) % n_sectors
    return first, second, change


def _momentum(ret20: np.ndarray) -> np.ndarray:
    """Uniform rank scores on ``[-sqrt(3), sqrt(3)]``: mean 0, variance 1."""
    n = len(ret20)
    if n < 2:
        return np.zeros(n)
    ranks = np.empty(n)
    ranks[np.argsort(ret20, kind="stable")] = np.arange(n)
    return math.sqrt(12.0) * ((ranks + 0.5) / n - 0.5)


def _edge_scores(
    shape: str,
    close: np.ndarray,
    t: int,
    seasoned: np.ndarray,
    sector: np.ndarray,
    bull: bool,
) -> np.ndarray:
    """The planted edge's scores ``z`` at the close of ``t`` for the ``seasoned`` names."""
    ret20 = close[t, seasoned] / close[t - MOMENTUM_WINDOW, seasoned]
    if shape == "momentum":
        return _momentum(ret20)
    if shape == "regime":
        return _momentum(ret20) if bull else np.zeros(len(seasoned))
    ret5 = close[t, seasoned] / close[t - REVERSAL_WINDOW, seasoned]
    if shape == "reversal":
        return _momentum(-ret5)
    if shape == "interaction":
        return _momentum(_momentum(ret20) * _momentum(ret5))
    codes = sector[seasoned]
    count = np.bincount(codes).astype(np.float64)
    mean = np.bincount(codes, ret20) / np.maximum(count, 1.0)
    return _momentum(ret20 - mean[codes])


@functools.lru_cache(maxsize=2)
def _market(
    n_active: int,
    n_names: int,
    n_sessions: int,
    start: str,
    n_sectors: int,
    edge: float,
    seed: int,
    shape: str = "momentum",
) -> _Market:
    sessions = _first_sessions(start, n_sessions)
    rng = np.random.default_rng([seed, 1])
    n_pool = min(n_names, max(n_active, math.ceil(POOL_RATIO * n_active)))
    listing, delist, dlret = _lives(rng, n_names, n_pool, n_sessions)
    sector, sector_new, sector_from = _sector_labels(rng, listing, delist, n_sectors, n_sessions)

    beta = rng.uniform(0.6, 1.4, n_names)
    loading = rng.uniform(0.5, 1.5, n_names)
    sigma = rng.uniform(*IDIO_VOL, n_names)
    first_close = 50.0 * np.exp(rng.normal(0.0, 0.5, n_names))
    size = rng.normal(0.0, 0.8, n_names)
    volume_base = 2e5 * np.exp(0.8 * size + rng.normal(0.0, 0.3, n_names))

    factor_rng = np.random.default_rng([seed, 2])
    eta = factor_rng.standard_normal(n_sessions)
    sector_moves = SECTOR_VOL * factor_rng.standard_normal((n_sessions, n_sectors))
    market = np.empty(n_sessions)
    var = MARKET_VOL**2
    omega = var * (1.0 - GARCH_ALPHA - GARCH_BETA)
    h, prev = var, 0.0
    for t in range(n_sessions):
        h = omega + GARCH_ALPHA * prev * prev + GARCH_BETA * h
        prev = market[t] = math.sqrt(h) * eta[t]

    shock_rng = np.random.default_rng([seed, 3])
    t_scale = math.sqrt((T_DF - 2.0) / T_DF)
    close = np.full((n_sessions, n_names), np.nan)
    z = np.zeros((n_sessions, n_names), dtype=np.float32)
    price = np.full(n_names, np.nan)
    z_prev = np.zeros(n_names)
    idio_edge = edge * sigma
    for t in range(n_sessions):
        listed = (listing <= t) & (delist > t)
        shocks = shock_rng.standard_t(T_DF, n_names) * t_scale
        sec_now = np.where(t >= sector_from, sector_new, sector)
        r = DRIFT + beta * market[t] + loading * sector_moves[t, sec_now]
        r += sigma * shocks + idio_edge * z_prev
        np.clip(r, *RETURN_CLIP, out=r)
        price = np.where(listed, price * (1.0 + r), np.nan)
        new = listing == t
        price[new] = first_close[new]
        close[t] = price
        z_prev = np.zeros(n_names)
        if t >= MOMENTUM_WINDOW:
            seasoned = np.flatnonzero(listed & (t - listing >= MOMENTUM_WINDOW))
            bull = market[max(0, t - REGIME_WINDOW + 1) : t + 1].sum() > 0.0
            scores = _edge_scores(shape, close, t, seasoned, sec_now, bool(bull))
            # z goes through float32 here so that the stored score is exactly what drove r
            z_prev[seasoned] = scores.astype(np.float32)
            z[t] = z_prev

    member, index_level = _membership(close, listing, delist, dlret, size, n_active)
    width = max(4, len(str(n_names)))
    symbols = tuple(f"S{i + 1:0{width}d}" for i in range(n_names))
    return _Market(
        sessions=sessions,
        symbols=symbols,
        listing=listing,
        delist=delist,
        delisting_return=dlret,
        close=close,
        z=z,
        sigma=sigma,
        member=member,
        index_level=index_level,
        sector=sector,
        sector_new=sector_new,
        sector_from=sector_from,
        volume_base=volume_base,
    )


def _membership(
    close: np.ndarray,
    listing: np.ndarray,
    delist: np.ndarray,
    dlret: np.ndarray,
    size: np.ndarray,
    n_active: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Index members per session (decided on the previous close) and the index level."""
    n_sessions, n_names = close.shape
    rows = np.arange(n_names)
    # cap = exp(size) * close / first close: relative sizes, the same units for every name
    cap_factor = np.exp(size) / close[listing, rows]
    member = np.zeros((n_sessions, n_names), dtype=bool)
    level = np.empty(n_sessions)
    level[0] = 100.0
    now = np.zeros(n_names, dtype=bool)
    keep_rank = math.floor(DRIFT_OUT * n_active)
    for t in range(n_sessions):
        ref = max(t - 1, 0)
        cap = close[ref] * cap_factor
        if t > 0:
            held = np.flatnonzero(now)
            ret = close[t, held] / close[t - 1, held] - 1.0
            gone = delist[held] == t
            ret[gone] = dlret[held[gone]]
            weight = cap[held]
            level[t] = level[t - 1] * (1.0 + float(weight @ ret / weight.sum()))
        trading = (listing <= ref) & (delist > t)
        eligible = trading & ((listing == 0) | (ref - listing >= MOMENTUM_WINDOW))
        now &= trading
        if t % REBUILD_EVERY == 0:
            pool = np.flatnonzero(eligible)
            order = pool[np.argsort(-cap[pool], kind="stable")]
            now[order[keep_rank:]] = False
        missing = n_active - int(now.sum())
        if missing > 0:
            pool = np.flatnonzero(eligible & ~now)
            now[pool[np.argsort(-cap[pool], kind="stable")[:missing]]] = True
        member[t] = now
    return member, level


class SyntheticSource:
    """A seeded synthetic market with a known planted edge; see the module docstring.

    Parameters
    ----------
    n_active
        Index members at every session.
    n_names
        Names ever listed (default ``2 * n_active``); at least ``n_active``.
    n_sessions
        Number of XNYS sessions generated, the first on or after ``start``.
    start
        First session (ISO date).
    n_sectors
        Number of sector labels (``Sector 01``, ...).
    edge
        Strength of the planted edge (``0``: pure noise).
    shape
        The planted edge's shape: one of ``SHAPES`` (module docstring).
    seed
        Seed of everything; equal parameters give an identical market.
    benchmark_symbol
        Symbol of the index in :meth:`benchmark` and :meth:`fetch`.
    """

    info = INFO

    def __init__(
        self,
        *,
        n_active: int = 100,
        n_names: int | None = None,
        n_sessions: int = 2520,
        start: str | dt.date = "1995-01-03",
        n_sectors: int = 11,
        edge: float = 0.05,
        seed: int = 0,
        benchmark_symbol: str = BENCHMARK_SYMBOL,
        shape: str = "momentum",
    ) -> None:
        n_names = 2 * int(n_active) if n_names is None else int(n_names)
        problems = []
        if int(n_active) < 1:
            problems.append(f"n_active must be at least 1, got {n_active}")
        if n_names < int(n_active):
            problems.append(f"n_names ({n_names}) must be at least n_active ({n_active})")
        if int(n_sessions) <= MOMENTUM_WINDOW + 1:
            problems.append(f"n_sessions must exceed {MOMENTUM_WINDOW + 1}, got {n_sessions}")
        if int(n_sectors) < 1:
            problems.append(f"n_sectors must be at least 1, got {n_sectors}")
        if not math.isfinite(float(edge)):
            problems.append(f"edge must be a finite number, got {edge}")
        if int(seed) < 0:
            problems.append(f"seed must be a non-negative integer, got {seed}")
        if shape not in SHAPES:
            problems.append(f"shape must be one of {', '.join(SHAPES)}, got {shape!r}")
        try:
            start_iso = pd.Timestamp(start).date().isoformat()
        except (ValueError, TypeError):
            problems.append(f"start must be an ISO date, got {start!r}")
            start_iso = ""
        if problems:
            raise ConfigError("synthetic source: " + "; ".join(problems))
        self.n_active = int(n_active)
        self.n_names = n_names
        self.n_sessions = int(n_sessions)
        self.start = start_iso
        self.n_sectors = int(n_sectors)
        self.edge = float(edge)
        self.seed = int(seed)
        self.shape = str(shape)
        self.benchmark_symbol = str(benchmark_symbol).upper()
        self._cached: _Market | None = None

    @property
    def _m(self) -> _Market:
        if self._cached is None:
            self._cached = _market(
                self.n_active,
                self.n_names,
                self.n_sessions,
                self.start,
                self.n_sectors,
                self.edge,
                self.seed,
                self.shape,
            )
        return self._cached

    # --- the source protocol -------------------------------------------------------------

    def symbols(self) -> list[str]:
        """Every name ever listed, sorted (``S0001``, ...), delisted ones included."""
        return list(self._m.symbols)

    def coverage(self) -> tuple[dt.date, dt.date]:
        """First and last generated session."""
        days = self._m.sessions
        return days[0].date(), days[-1].date()

    def _check_range(self, start: dt.date, end: dt.date) -> None:
        check_range(
            start,
            end,
            self.coverage(),
            "the synthetic market covers",
            " (or change data.options n_sessions/start)",
        )

    def check_symbols(self, symbols: list[str]) -> list[str]:
        """Upper-case ``symbols`` and fail on any the market does not have."""
        wanted = [str(s).upper() for s in symbols]
        known = set(self._m.symbols)
        unknown = [s for s in wanted if s not in known]
        if unknown:
            first, last = self._m.symbols[0], self._m.symbols[-1]
            raise DataError(
                f"unknown symbol(s) {', '.join(unknown)} for the synthetic source; "
                f"available: {first}..{last}"
            )
        return wanted

    def _rows(self, start: dt.date | str, end: dt.date | str) -> tuple[int, int]:
        a, b = pd.Timestamp(start).date(), pd.Timestamp(end).date()
        self._check_range(a, b)
        days = self._m.sessions
        return (
            int(days.searchsorted(pd.Timestamp(a), side="left")),
            int(days.searchsorted(pd.Timestamp(b), side="right")),
        )

    def bars(self, symbols: list[str], start: dt.date | str, end: dt.date | str) -> pd.DataFrame:
        """Daily bars of ``symbols`` for sessions in ``[start, end]`` while each is listed.

        Columns ``BAR_COLUMNS`` without ``available_at``; a delisted name has no bar on or
        after its delisting date.
        """
        wanted = self.check_symbols(symbols)
        lo, hi = self._rows(start, end)
        position = {s: i for i, s in enumerate(self._m.symbols)}
        frames = [self._name_bars(position[s], lo, hi) for s in wanted]
        frames = [f for f in frames if len(f)]
        if not frames:
            return _empty()
        return pd.concat(frames, ignore_index=True)

    def _name_bars(self, i: int, lo: int, hi: int) -> pd.DataFrame:
        m = self._m
        first, stop = int(m.listing[i]), int(m.delist[i])
        close = m.close[first:stop, i]
        # one stream per name over its whole life: a slice equals the same rows of any wider
        # request, and a per-symbol fetch costs one name's draws
        rng = np.random.default_rng([self.seed, 4, i])
        n, sig = len(close), float(m.sigma[i])
        gap = np.clip(rng.normal(0.0, 0.3 * sig, n), -0.05, 0.05)
        up = np.abs(rng.normal(0.0, 0.6 * sig, n))
        down = np.abs(rng.normal(0.0, 0.6 * sig, n))
        noise = rng.normal(0.0, 0.35, n)
        prev = np.concatenate([close[:1], close[:-1]])
        open_ = prev * (1.0 + gap)
        high = np.maximum(open_, close) * np.exp(up)
        low = np.minimum(open_, close) * np.exp(-down)
        ret = np.abs(close / prev - 1.0)
        volume = np.round(m.volume_base[i] * np.exp(noise) * (1.0 + 1.5 * ret / sig)) + 1.0
        a, b = max(lo, first) - first, min(hi, stop) - first
        if b <= a:
            return _empty()
        part = slice(a, b)
        return pd.DataFrame(
            {
                "symbol": m.symbols[i],
                "session": m.sessions[first:stop][part],
                "open": open_[part],
                "high": high[part],
                "low": low[part],
                "close": close[part],
                "adj_close": close[part],
                "volume": volume[part],
            }
        )

    def benchmark(self, start: dt.date | str, end: dt.date | str) -> pd.DataFrame:
        """The cap-weighted total-return index of the members as symbol ``benchmark_symbol``.

        Held from the close of ``t-1`` to the close of ``t`` with the members of ``t-1``
        weighted by their caps; a member that delists on ``t`` contributes its delisting
        return. Open, high and low equal the close; volume is NaN.
        """
        lo, hi = self._rows(start, end)
        level = self._m.index_level[lo:hi]
        frame = pd.DataFrame({"symbol": self.benchmark_symbol, "session": self._m.sessions[lo:hi]})
        for col in ("open", "high", "low", "close", "adj_close"):
            frame[col] = level
        frame["volume"] = np.nan
        return frame

    def fetch(self, symbol: str, start: dt.date | str, end: dt.date | str) -> Fetched:
        """One symbol's bars (``benchmark_symbol`` is the index); there are no actions."""
        if symbol.upper() == self.benchmark_symbol:
            return Fetched(bars=self.benchmark(start, end))
        return Fetched(bars=self.bars([symbol], start, end))

    def sectors(self, symbols: list[str]) -> pd.DataFrame:
        """Point-in-time sector labels: ``symbol, name, sector, from``.

        ``from`` is the first session a label applies (the listing session for the first
        label); a name that changed sector has a second row with a later ``from``.
        """
        wanted = self.check_symbols(symbols)
        m = self._m
        position = {s: i for i, s in enumerate(m.symbols)}
        rows = []
        for sym in wanted:
            i = position[sym]
            name = f"Synthetic {sym}"
            rows.append((sym, name, _sector_name(m.sector[i]), m.sessions[m.listing[i]]))
            if m.sector_from[i] < len(m.sessions):
                rows.append(
                    (sym, name, _sector_name(m.sector_new[i]), m.sessions[m.sector_from[i]])
                )
        frame = pd.DataFrame(rows, columns=["symbol", "name", "sector", "from"])
        frame["from"] = pd.to_datetime(frame["from"])
        return frame

    # --- facts a survivorship-free study needs ------------------------------------------

    def universe(self) -> pd.DataFrame:
        """Index membership spells ``symbol, start, end`` (inclusive; ``end`` NaT: open).

        A delisted member's spell ends at its last trading session.
        """
        m = self._m
        n_sessions = len(m.sessions)
        padded = np.zeros((n_sessions + 2, len(m.symbols)), dtype=np.int8)
        padded[1:-1] = m.member
        step = np.diff(padded, axis=0)
        in_day, in_name = np.nonzero(step == 1)
        out_day, out_name = np.nonzero(step == -1)
        # np.nonzero walks rows first: sort both by (name, day) so spells pair up
        a = np.lexsort((in_day, in_name))
        b = np.lexsort((out_day, out_name))
        in_day, in_name, out_day = in_day[a], in_name[a], out_day[b] - 1
        last = np.minimum(out_day, n_sessions - 1)
        end = m.sessions[last].where(out_day < n_sessions - 1)  # NaT: still a member
        return pd.DataFrame(
            {
                "symbol": np.asarray(m.symbols, dtype=object)[in_name],
                "start": m.sessions[in_day],
                "end": end.to_numpy(),
            }
        )

    def delistings(self) -> pd.DataFrame:
        """Delistings ``symbol, date, delisting_return`` (CRSP DLRET convention).

        ``date`` is the first session on which the name no longer trades (its last bar is
        the session before); ``delisting_return`` is the return from that last close to what
        a holder receives (``-1.0``: nothing).
        """
        m = self._m
        gone = np.flatnonzero(m.delist < len(m.sessions))
        frame = pd.DataFrame(
            {
                "symbol": np.asarray(m.symbols, dtype=object)[gone],
                "date": m.sessions[m.delist[gone]],
                "delisting_return": m.delisting_return[gone],
            }
        )
        return frame.sort_values(["date", "symbol"], kind="stable").reset_index(drop=True)

    def closes(self) -> pd.DataFrame:
        """``session x symbol`` closes (NaN where a name is not listed)."""
        m = self._m
        return pd.DataFrame(m.close, index=_named(m.sessions), columns=list(m.symbols))

    def membership(self) -> pd.DataFrame:
        """``session x symbol`` booleans: index member during the session."""
        m = self._m
        return pd.DataFrame(m.member, index=_named(m.sessions), columns=list(m.symbols))

    def oracle_scores(self) -> pd.DataFrame:
        """The best achievable score at the close of each session: ``sigma_i * z_i,t``.

        ``session x symbol`` float64, from data up to ``t`` only; monotone in the expected
        next-session return under the planted rule, whatever its shape (0 for names with
        under 21 sessions of history, and for every name where the edge is off: ``regime``
        outside bull markets; NaN where a name is not listed).
        """
        m = self._m
        scores = m.z.astype(np.float64) * m.sigma
        scores[np.isnan(m.close)] = np.nan
        return pd.DataFrame(scores, index=_named(m.sessions), columns=list(m.symbols))

    def edge_description(self) -> str:
        """The planted rule in one line."""
        if self.edge == 0:
            return "no planted edge (edge=0): cross-sectional returns are pure noise"
        ranked = {
            "momentum": "the trailing 20-session return",
            "reversal": "minus the trailing 5-session return",
            "sector": "the trailing 20-session return minus its sector's mean",
            "interaction": "u(20-session return) * u(5-session return)",
            "regime": "the trailing 20-session return while the market's last 60 sessions "
            "are up (z = 0 otherwise)",
        }[self.shape]
        return (
            f"{self.shape}: E[r_i,t+1] - common drift = {self.edge:g} * sigma_i * z_i,t, "
            f"z = uniform rank score in [-sqrt3, sqrt3] of {ranked} "
            "among listed names (0 under 21 sessions of history), sigma_i = daily "
            "idiosyncratic vol; oracle_scores() = sigma_i * z_i,t"
        )


def _sector_name(code: int | np.integer) -> str:
    return f"Sector {int(code) + 1:02d}"


def _named(sessions: pd.DatetimeIndex) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(sessions, name="session")


def _empty() -> pd.DataFrame:
    from py_finance.data.sources.vendor import empty_bars

    return empty_bars()


__all__ = ["BENCHMARK_SYMBOL", "INFO", "SHAPES", "SyntheticSource"]
