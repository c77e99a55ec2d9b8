"""The ``news`` feature group: article counts (and sentiment) known by each session's close.

Reads :attr:`FeatureInputs.news <py_finance.features.registry.FeatureInputs>` (layout and
time rules in :mod:`py_finance.features.tables`). An article belongs to the first session
of the exchange calendar whose close is at or after its knowledge time (``available_at``,
the publication time for the store's news): one published after the close of t, or on a
weekend or holiday, counts for the next session.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import numpy as np

from py_finance.features.registry import FeatureGroup, FeatureInputs, _windows, register_group
from py_finance.features.tables import news_arrays, session_timeline

log = logging.getLogger(__name__)


@register_group("news")
class News(FeatureGroup):
    """Company news per symbol over trailing windows of sessions.

    * ``news_n_<w>``: number of articles about the symbol known in the last ``w`` sessions,
      i.e. with knowledge time in ``(close of t-w, close of t]`` (sessions of the exchange
      calendar, whatever sessions the bars have);
    * ``news_sent_<w>``: mean ``sentiment`` of those articles (NaN when none), only when the
      table has a ``sentiment`` column (the store's news table has none today).

    Parameters: ``windows`` (sessions, default 1, 5, 20), ``sentiment`` (default true).
    Values are NaN where the symbol has no close at t, 0 counts where it had no news. When
    the inputs have no news table the columns are left out (and logged).
    """

    tables = ("news",)
    PARAMS = frozenset({"windows", "sentiment"})

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.windows = _windows(params, (1, 5, 20))

    def lookback(self) -> int:
        """The longest window (windows are counted on the calendar, not on the bars)."""
        return max(self.windows)

    def _sentiment(self, inp: FeatureInputs) -> bool:
        news = inp.news
        return bool(self.params.get("sentiment", True)) and (
            news is not None and "sentiment" in news.columns
        )

    def names(self, inp: FeatureInputs) -> list[str]:
        """Counts (and sentiment means) per window; none without a news table."""
        if inp.news is None:
            log.info("features: no news in the data, news features left out")
            return []
        out = [f"news_n_{w}" for w in self.windows]
        if self._sentiment(inp):
            out += [f"news_sent_{w}" for w in self.windows]
        return out

    def compute(self, inp: FeatureInputs) -> Iterator[tuple[str, np.ndarray]]:
        """Cumulative counts per symbol read at the calendar's session closes."""
        if inp.news is None:
            return
        table = news_arrays(inp.news)
        table = table[table["symbol"].isin(set(map(str, inp.symbols)))]
        cuts, pos = session_timeline(inp.sessions, inp.calendar, before=max(self.windows))
        shape = inp.shape
        sentiment = self._sentiment(inp)
        # per symbol: articles (and sentiment sums) known at each timeline cut
        count = np.zeros((shape[0], len(cuts)))
        sent_sum = np.zeros((shape[0], len(cuts)))
        sent_n = np.zeros((shape[0], len(cuts)))
        row_of = {str(s): i for i, s in enumerate(inp.symbols)}
        for sym, rows in table.groupby("symbol", sort=False):
            known = rows["known"].to_numpy()  # sorted by news_arrays
            at = np.searchsorted(known, cuts, side="right")
            r = row_of[str(sym)]
            count[r] = at
            if sentiment:
                s = rows["sentiment"].to_numpy()
                has = ~np.isnan(s)
                sent_sum[r] = np.concatenate(([0.0], np.cumsum(np.where(has, s, 0.0))))[at]
                sent_n[r] = np.concatenate(([0.0], np.cumsum(has)))[at]
        no_close = np.isnan(inp.get("close"))

        def trailing(cum: np.ndarray, w: int) -> np.ndarray:
            start = pos - w
            ok = start >= 0
            before = np.where(ok, cum[:, np.where(ok, start, 0)], np.nan)
            return cum[:, pos] - before

        for w in self.windows:
            yield f"news_n_{w}", np.where(no_close, np.nan, trailing(count, w))
        if sentiment:
            for w in self.windows:
                n = trailing(sent_n, w)
                with np.errstate(invalid="ignore", divide="ignore"):
                    mean = np.where(n > 0, trailing(sent_sum, w) / n, np.nan)
                yield f"news_sent_{w}", np.where(no_close, np.nan, mean)
