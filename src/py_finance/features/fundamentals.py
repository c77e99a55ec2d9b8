"""The ``fundamentals`` feature group: reported values as the market knew them at each close.

Reads :attr:`FeatureInputs.fundamentals <py_finance.features.registry.FeatureInputs>`
(layout and time rules in :mod:`py_finance.features.tables`). At session t a version is
usable only if its knowledge time ``available_at`` is at or before the close of t; a value
restated or filed late after that close changes rows from the next session on, never row t.
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from py_finance.errors import ConfigError
from py_finance.features.registry import FeatureGroup, FeatureInputs, register_group
from py_finance.features.tables import fundamentals_arrays, session_cutoffs

log = logging.getLogger(__name__)

NS_PER_DAY = 86_400 * 10**9
YEAR_DAYS = 365
YEAR_TOLERANCE_DAYS = 20  # a period "one year earlier" ends 345..385 days before


@dataclass(frozen=True, slots=True)
class Steps:
    """A step function of knowledge time: the state after each change.

    ``times`` (int64 UTC ns, increasing); after ``times[i]``: the latest period's current
    value ``value[i]``, the time that period was first known ``first[i]`` and its change on
    the period one year earlier ``growth[i]``.
    """

    times: np.ndarray
    value: np.ndarray
    first: np.ndarray
    growth: np.ndarray

    def at(self, cutoffs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(value, first, growth)`` known at each cutoff (NaN before the first change)."""
        idx = np.searchsorted(self.times, cutoffs, side="right") - 1
        known = idx >= 0
        pick = np.where(known, idx, 0)

        def take(a: np.ndarray) -> np.ndarray:
            return np.where(known, a[pick], np.nan)

        return take(self.value), take(self.first), take(self.growth)


def field_steps(period_end: np.ndarray, known: np.ndarray, value: np.ndarray) -> Steps:
    """The latest-period value of one (symbol, field) after each knowledge time.

    Parameters
    ----------
    period_end
        Day numbers (days since 1970-01-01) of each version's period: valid time.
    known
        Knowledge time of each version (``available_at``, int64 UTC ns).
    value
        The version's value.

    At a knowledge time the current version of each period is its latest known one; the
    latest period is the one with the latest ``period_end`` known so far (a late filing of
    an older period changes that period's value, not which period is latest).
    """
    order = np.lexsort((period_end, known))
    current: dict[int, float] = {}
    first: dict[int, int] = {}
    periods: list[int] = []
    latest: int | None = None
    times: list[int] = []
    rows: list[tuple[float, float, float]] = []
    for i in order:
        k, p, v = int(known[i]), int(period_end[i]), float(value[i])
        if p not in current:
            bisect.insort(periods, p)
            first[p] = k
        current[p] = v
        latest = p if latest is None or p > latest else latest
        state = (current[latest], float(first[latest]), _growth(current, periods, latest))
        if times and times[-1] == k:
            rows[-1] = state
        else:
            times.append(k)
            rows.append(state)
    arr = np.asarray(rows, dtype="float64").reshape(-1, 3)
    return Steps(np.asarray(times, dtype="int64"), arr[:, 0], arr[:, 1], arr[:, 2])


def _growth(current: Mapping[int, float], periods: list[int], latest: int) -> float:
    """Change of the latest period's value on the period ending about a year before it."""
    target = latest - YEAR_DAYS
    lo = bisect.bisect_left(periods, target - YEAR_TOLERANCE_DAYS)
    hi = bisect.bisect_right(periods, target + YEAR_TOLERANCE_DAYS)
    if lo >= hi:
        return float("nan")
    prior = min(periods[lo:hi], key=lambda p: (abs(p - target), -p))
    base = current[prior]
    if not np.isfinite(base) or base == 0.0:
        return float("nan")
    return (current[latest] - base) / abs(base)


@register_group("fundamentals")
class Fundamentals(FeatureGroup):
    """Point-in-time fundamentals, per symbol, as known at the close of each session.

    Columns (all NaN where the symbol has no close at t):

    * ``f_<field>``: value of the latest reported period known at the close of t (its
      latest version known then), forward-filled until a later period or a restatement
      becomes known;
    * ``<name>`` for each ``ratios`` entry ``name: field``: that latest value divided by
      the as-traded (unadjusted) close of t, e.g. earnings yield ``ey: eps`` or book to
      price ``bp: bvps``. Per-share values are reported on the share count of their day,
      so the back-adjusted close (which depends on later splits) would be wrong; the
      columns are left out when the data has no as-traded close;
    * ``g_<field>`` for each ``growth`` field: change of the latest period's value on the
      period ending about one year earlier (``(x - x_prev) / |x_prev|``), both as known then;
    * ``f_age`` (``age: true``): days from the first knowledge of the symbol's latest
      reported period (any field) to the close of t.

    ``max_age_days`` blanks a value whose period was first known longer ago than that. The
    group needs no bar history (``lookback`` 0): every row reads the table as of its close.
    When the inputs have no fundamentals table the columns are left out (and logged); a
    configured field the table never has gives NaN.
    """

    tables = ("fundamentals",)
    extra_fields = ("raw_close",)
    PARAMS = frozenset({"fields", "ratios", "growth", "age", "max_age_days"})

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.fields = [str(f) for f in params.get("fields") or ()]
        self.ratios = {str(k): str(v) for k, v in dict(params.get("ratios") or {}).items()}
        self.growth = [str(f) for f in params.get("growth") or ()]
        self.age = bool(params.get("age", True))
        max_age = params.get("max_age_days")
        self.max_age_days = None if max_age is None else float(max_age)
        if self.max_age_days is not None and self.max_age_days <= 0:
            raise ConfigError("features.groups[fundamentals]: max_age_days must be positive")
        if not (self.fields or self.ratios or self.growth or self.age):
            raise ConfigError(
                "features.groups[fundamentals]: configure fields, ratios, growth or age"
            )

    def lookback(self) -> int:
        """No bar history: each row reads the table as known at its own close."""
        return 0

    def names(self, inp: FeatureInputs) -> list[str]:
        """Columns for these inputs (none without a fundamentals table)."""
        if inp.fundamentals is None:
            log.info("features: no fundamentals in the data, fundamentals features left out")
            return []
        out = [f"f_{f}" for f in self.fields]
        if self.ratios:
            if inp.has("raw_close"):
                out += list(self.ratios)
            else:
                log.info("features: no as-traded close in the data, %s left out", list(self.ratios))
        out += [f"g_{f}" for f in self.growth]
        return [*out, "f_age"] if self.age else out

    def compute(self, inp: FeatureInputs) -> Iterator[tuple[str, np.ndarray]]:
        """Per-symbol step functions of knowledge time, read at each session close."""
        names = self.names(inp)
        if not names:
            return
        assert inp.fundamentals is not None
        table = fundamentals_arrays(inp.fundamentals)
        table = table[table["symbol"].isin(set(map(str, inp.symbols)))]
        cut = session_cutoffs(inp.sessions, inp.calendar)
        row_of = {str(s): i for i, s in enumerate(inp.symbols)}
        shape = inp.shape
        no_close = np.isnan(inp.get("close"))
        present = set(table["field"].unique())
        wanted = [*self.fields, *self.ratios.values(), *self.growth]
        for f in dict.fromkeys(wanted):
            if f not in present:
                log.warning("features: field %r is not in the fundamentals table: NaN", f)

        value: dict[str, np.ndarray] = {}
        growth: dict[str, np.ndarray] = {}
        for f in dict.fromkeys(wanted):
            value[f] = np.full(shape, np.nan)
            growth[f] = np.full(shape, np.nan)
        mine = table[table["field"].isin(set(wanted))]
        for (sym, name), rows in mine.groupby(["symbol", "field"], sort=False):
            steps = field_steps(
                rows["period_end"].to_numpy(), rows["known"].to_numpy(), rows["value"].to_numpy()
            )
            v, first, g = steps.at(cut)
            if self.max_age_days is not None:
                with np.errstate(invalid="ignore"):
                    stale = (cut - first) / NS_PER_DAY > self.max_age_days
                v = np.where(stale, np.nan, v)
                g = np.where(stale, np.nan, g)
            value[str(name)][row_of[str(sym)]] = v
            growth[str(name)][row_of[str(sym)]] = g

        def masked(mat: np.ndarray) -> np.ndarray:
            return np.where(no_close, np.nan, mat)

        wanted_names = set(names)
        for f in self.fields:
            yield f"f_{f}", masked(value[f])
        if any(n in wanted_names for n in self.ratios):
            price = inp.get("raw_close")
            with np.errstate(invalid="ignore", divide="ignore"):
                per_price = np.where(price > 0, 1.0 / price, np.nan)
            for name, f in self.ratios.items():
                yield name, masked(value[f] * per_price)
        for f in self.growth:
            yield f"g_{f}", masked(growth[f])
        if self.age:
            yield "f_age", masked(self._age(table, cut, row_of, shape))

    def _age(
        self, table: Any, cut: np.ndarray, row_of: Mapping[str, int], shape: tuple[int, int]
    ) -> np.ndarray:
        """Days since the latest period of each symbol (any field) was first known."""
        out = np.full(shape, np.nan)
        # a period's report: the first time any of its fields was known
        firsts = table.groupby(["symbol", "period_end"], sort=False)["known"].min().reset_index()
        for sym, rows in firsts.groupby("symbol", sort=False):
            steps = field_steps(
                rows["period_end"].to_numpy(), rows["known"].to_numpy(), np.zeros(len(rows))
            )
            _, first, _ = steps.at(cut)
            out[row_of[str(sym)]] = (cut - first) / NS_PER_DAY
        return out
