"""Cash-account backtest of target weights, session by session at the close."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from py_finance.backtest.config import BacktestConfig
from py_finance.errors import ConfigError, DataError
from py_finance.risk.config import RiskConfig
from py_finance.risk.overlays import (
    THROTTLE_STATES,
    check_weights,
    gross_bound,
    throttle_params,
)

# Throttle settings passed to the compiled loop when no risk config is given (unused there).
NO_THROTTLE = RiskConfig(drawdown_throttle=None, recovery_drawdown=0.0)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BacktestResult:
    """Everything a backtest produces, one value per session (index = the price index).

    Parameters
    ----------
    equity
        Account equity at the close, after trading (cash + shares x close).
    returns
        Simple returns of ``equity``; the first is 0.
    weights
        ``session x symbol`` weights held at each close, after trading (value / equity).
    turnover
        Traded notional (buys + sells) that session divided by the equity the targets were
        computed on (equity before trading).
    fees
        Fees paid that session (account currency).
    exposure
        Gross invested fraction of equity at the close, after trading.
    states
        Drawdown-throttle state after the close (``ACTIVE``/``REDUCING``/``HALTED``); it
        scales the weights decided at that close. Always ``ACTIVE`` without a throttle.
    cash
        Cash at the close, after trading.
    delisted
        One row per delisting of a name held when it was delisted: ``symbol, date,
        delisting_return, value`` (the holding at its last close, account currency) and
        ``cost`` (``value x delisting_return``: what the delisting took, negative for a loss).
    """

    equity: pd.Series
    returns: pd.Series
    weights: pd.DataFrame
    turnover: pd.Series
    fees: pd.Series
    exposure: pd.Series
    states: pd.Series
    cash: pd.Series
    delisted: pd.DataFrame = dataclasses.field(default_factory=lambda: _no_delistings())


DELISTED_COLUMNS = ("symbol", "date", "delisting_return", "value", "cost")


def _no_delistings() -> pd.DataFrame:
    return pd.DataFrame(
        {c: pd.Series(dtype=object if c == "symbol" else "float64") for c in DELISTED_COLUMNS}
    ).astype({"date": "datetime64[ns]"})


def delisting_arrays(
    prices: pd.DataFrame, delistings: pd.DataFrame | None
) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """Per column: the row of its delisting session (-1: none) and the cash paid per share.

    ``delistings`` has ``symbol, date, delisting_return`` (``date``: the first session the
    name no longer trades). The payout per share is the name's last close before ``date``
    times ``1 + delisting_return``. A delisting outside the price index, or of a name
    without a price before it, is left out. Returns the arrays and the delistings used
    (with the column position ``col``, the session row ``row`` and ``last_close``).
    """
    n, m = prices.shape
    at = np.full(m, -1, dtype=np.int64)
    pay = np.zeros(m, dtype=np.float64)
    used = pd.DataFrame(columns=["symbol", "date", "delisting_return", "col", "row", "last_close"])
    if delistings is None or delistings.empty or n == 0:
        return at, pay, used
    cols = {str(c): j for j, c in enumerate(prices.columns)}
    index = pd.DatetimeIndex(prices.index)
    values = prices.to_numpy(dtype=np.float64)
    syms = delistings["symbol"].astype(str).to_numpy()
    days = pd.DatetimeIndex(pd.to_datetime(delistings["date"])).normalize()
    rets = delistings["delisting_return"].to_numpy(dtype=np.float64)
    rows = []
    for sym, day, ret in zip(syms, days, rets, strict=True):
        j = cols.get(str(sym))
        if j is None:
            continue
        r = int(index.searchsorted(day))
        if r <= 0 or r >= n:
            continue  # delisted before the first session or after the last
        before = values[:r, j]
        ok = np.flatnonzero(np.isfinite(before) & (before > 0.0))
        if not len(ok):
            continue
        if not ret >= -1.0:
            raise DataError(f"delisting return of {sym} on {day.date()} is {ret}: >= -1")
        if 0 <= at[j] <= r:
            continue  # the first delisting of a name counts
        last_close = float(before[ok[-1]])
        at[j] = r
        pay[j] = last_close * (1.0 + float(ret))
        rows.append((str(sym), day, float(ret), j, r, last_close))
    if rows:
        used = pd.DataFrame(rows, columns=list(used.columns))
    return at, pay, used


def _arrays(prices: pd.DataFrame, target_weights: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Prices and target weights as float64 name-major matrices in the price frame's order.

    No copy when the frames are already float64 and aligned (pandas stores a frame's
    single block name-major).
    """
    if not prices.index.equals(target_weights.index):
        raise DataError(
            "target_weights and prices must share the same session index "
            f"({len(target_weights)} vs {len(prices)} rows); reindex the weights to the "
            "price sessions first"
        )
    if prices.columns.has_duplicates or target_weights.columns.has_duplicates:
        raise DataError("prices and target_weights must not have duplicate symbols")
    if not prices.columns.equals(target_weights.columns):
        if set(prices.columns) != set(target_weights.columns):
            missing = sorted(map(str, set(prices.columns) ^ set(target_weights.columns)))
            raise DataError(
                f"target_weights and prices must cover the same symbols; differing: {missing[:10]}"
            )
        target_weights = target_weights.loc[:, prices.columns]
    px = prices.to_numpy(dtype=np.float64)
    w = target_weights.to_numpy(dtype=np.float64)
    # The compiled loop copies them a block of sessions at a time, name by name.
    return np.asfortranarray(px), np.asfortranarray(w)


def _opens(prices: pd.DataFrame, opens: pd.DataFrame | None) -> np.ndarray:
    """The opens as a name-major float64 matrix aligned to ``prices``, or a one-line error."""
    none = ConfigError(
        "backtest.fill=next_open needs open prices and the data has none (the bundled "
        "data is closes only): set backtest.fill=next_close or ingest a source with opens"
    )
    if opens is None:
        raise none
    if not opens.index.equals(prices.index) or set(opens.columns) != set(prices.columns):
        raise DataError(
            "opens and prices must share the same sessions and symbols; reindex the opens "
            "to the price frame first"
        )
    if not opens.columns.equals(prices.columns):
        opens = opens.loc[:, prices.columns]
    # No copy when the frame is float64 already (pandas stores it name-major).
    op = np.asfortranarray(opens.to_numpy(dtype=np.float64))
    if not np.isfinite(op).any():
        raise none
    return op


def run_backtest(
    prices: pd.DataFrame,
    target_weights: pd.DataFrame,
    cfg: BacktestConfig,
    *,
    risk: RiskConfig | None = None,
    delistings: pd.DataFrame | None = None,
    opens: pd.DataFrame | None = None,
) -> BacktestResult:
    """Simulate a long-only cash account that trades to target weights at the close or open.

    The semantics are those of vectorbt's ``Portfolio.from_orders(close, size=weights
    shifted by the lag, size_type="targetpercent", fees=cost_bps / 1e4, cash_sharing=True,
    group_by=True, call_seq="auto", min_size=0)``, with ``price=opens`` when
    ``cfg.fill`` is ``next_open``.

    Parameters
    ----------
    prices
        ``session x symbol`` adjusted closes; NaN before a name exists (or on a missing bar).
    target_weights
        Same sessions and symbols: weights decided at the close of session t, traded at the
        close of t + ``cfg.execution_lag``. Rows ``0 .. lag-1`` trade nothing. NaN means
        "no order" for that name (as a NaN size in vectorbt): its shares are kept, so a
        row of NaN is a session without rebalancing. Static overlays (caps, regime exposure)
        should already be applied (``py_finance.risk.apply_static_overlays``). Every weight
        must be finite and >= 0 and every row's non-NaN weights must sum to at most the
        gross limit (``risk.max_leverage``, 1.0 without ``risk``): anything else is a
        :class:`~py_finance.errors.DataError` naming the session and symbol.
    cfg
        Execution lag, fill model, costs, initial cash.
    risk
        If given with ``drawdown_throttle`` set, the drawdown throttle runs here: after the
        close of t it is updated with t's equity, and its multiplier scales the weights
        decided at t (those that fill at t + lag). When the multiplier moves on a session
        without new weights (between rebalances), the holdings are resized by new / old
        multiplier at t + lag all the same (:func:`py_finance.risk.throttle_resize`), so
        the throttle acts on the first fill after the close it trips at, not at the next
        rebalance.
    delistings
        ``symbol, date, delisting_return`` (``date``: the first session the name no longer
        trades). At the top of that session, before anything trades, a held name is paid out
        in cash at its last close times ``1 + delisting_return``, without fees (a -100%
        delisting pays nothing); it has no price from then on, so it is never valued at a
        stale close or bought again. The result's ``delisted`` lists the delistings that hit
        the book and what each cost.
    opens
        ``session x symbol`` opens on the basis of ``prices`` (adjusted alike), needed when
        ``cfg.fill`` is ``next_open``: the weights decided at t then fill at the open of
        t + lag, the book valued at that open before trading (``V``, the targets' base and
        turnover's denominator) and at the close after it (``equity``, ``weights``). A name
        without an open that session is not traded and is valued at its last price. Opens
        without a single finite value are a :class:`~py_finance.errors.ConfigError`.

    Returns
    -------
    BacktestResult

    Notes
    -----
    At each session: the equity ``V = cash + sum(shares x close)`` is taken once, before any
    trade (a name without a price today is valued at its last known close); each tradable
    name's target is ``w x V / close`` shares (fractional). Orders execute in ascending
    order of ``w x V - shares x close`` (vectorbt's ``call_seq="auto"`` key, computed as
    vectorbt computes it), exact ties in column order: sells first, then buys from the
    smallest key. Fees (``cost_bps / 1e4`` of traded notional) are paid from cash, never
    taken out of the targets; the first buy that the remaining cash cannot cover is filled
    with what is left after its fee, so cash never goes negative and the buys after it get
    nothing (with equal weights among new names, the last of them in column order is the
    partial one). A name with no price at the trade session is not traded: held shares are
    kept (valued at the last price), and a target on a name not held stays in cash.

    When the drawdown throttle lifts between rebalances and the holdings, grown by new /
    old multiplier, would be worth more than ``V`` (they drifted up while throttled),
    they are all scaled by one factor to be worth ``V``: fully invested, in the
    proportions they had, as the live loop resizes (``live.orders.resized_weights``);
    then, as on any session, the fees leave the largest buy partly filled.

    Equality with vectorbt, and its one boundary: the engine adds a session's sells and
    buys as sums where vectorbt adds the cash order by order, so its cash, equity and
    targets can differ from vectorbt's in the last bits (the equity curves agree within
    1e-12 relative). That changes which buy is partly filled only when that buy's key is
    within ``1e-12 x V`` of another buy's key and one of the two names is held: a near tie,
    keys a few ulps apart, as equal weights on held names whose prices moved alike give.
    At such a session the two may fill different names of the pair partly; its equity
    is still equal, the later ones differ by the two names' return on the partial amount
    (about the fees: ~1e-6 relative). Keys further apart than that, and exact ties between
    names not held (``w x V`` for each), give vectorbt's fills (tests on both sides in
    ``tests/unit/backtest/test_engine_reference.py`` and ``test_engine_vectorbt.py``).
    """
    from py_finance.backtest import _kernel

    px, w = _arrays(prices, target_weights)
    fill_open = cfg.fill == "next_open"
    op = _opens(prices, opens) if fill_open else px
    n_sessions, n_names = px.shape
    delist_at, delist_px, delisted = delisting_arrays(prices, delistings)
    if (delist_at >= 0).any():
        px = px.copy(order="F")
        op = op.copy(order="F") if fill_open else px
        for j in np.flatnonzero(delist_at >= 0):
            px[delist_at[j] :, j] = np.nan  # gone: never valued or traded again
            op[delist_at[j] :, j] = np.nan
    lag = int(cfg.execution_lag)
    max_gross = 1.0 if risk is None else float(risk.max_leverage)
    throttle = risk is not None and risk.drawdown_throttle is not None
    dd_thr, halt, recovery, reset = throttle_params(risk if risk is not None else NO_THROTTLE)
    # ``held`` is session-major: the frame below wraps it without a copy.
    series, held, *scratch = _kernel.buffers(n_sessions, n_names, opens=fill_open)
    bad = 0
    if n_sessions:
        # The kernel checks the rows it trades as it goes and stops at the first bad one.
        simulate: Any = _kernel.simulate  # a numba dispatcher
        bad = simulate(
            px,
            w,
            op,
            fill_open,
            lag,
            float(cfg.cost_bps) / 1e4,
            float(cfg.initial_cash),
            throttle,
            float(risk.throttle_exposure) if risk is not None else 1.0,
            dd_thr,
            halt,
            recovery,
            reset,
            gross_bound(max_gross),
            series,
            held,
            *scratch,
            # The delisting columns in the order of their sessions (the kernel walks them).
            np.flatnonzero(delist_at >= 0)[np.argsort(delist_at[delist_at >= 0], kind="stable")],
            delist_at,
            delist_px,
        )
    # The row the kernel stopped at (it sums as check_weights does, so that raises), or the
    # rows decided in the last ``lag`` sessions: they never trade but are checked all the same.
    first = bad - 1 if bad else max(n_sessions - lag, 0)
    stop = first + 1 if bad else n_sessions
    check_weights(
        w[first:stop], max_gross, sessions=prices.index[first:stop], symbols=prices.columns
    )
    if bad:  # unreachable while both sum alike; never return a half-run backtest
        raise DataError(
            f"target weights of session {prices.index[first]} are not finite, negative or "
            f"sum above the gross limit {max_gross:g} (risk.max_leverage)"
        )
    equity = series[_kernel.EQUITY]
    rets = np.zeros(n_sessions)
    if n_sessions > 1:
        with np.errstate(divide="ignore", invalid="ignore"):
            rets[1:] = equity[1:] / equity[:-1] - 1.0
    index = prices.index
    if n_sessions:
        log.info(
            "backtest: %d sessions x %d names, final equity %.2f, fees %.2f",
            n_sessions,
            n_names,
            equity[-1],
            series[_kernel.FEES].sum(),
        )

    def column(row: int, name: str) -> pd.Series:
        return pd.Series(series[row], index=index, name=name, copy=False)

    return BacktestResult(
        equity=column(_kernel.EQUITY, "equity"),
        returns=pd.Series(rets, index=index, name="returns", copy=False),
        weights=pd.DataFrame(held, index=index, columns=prices.columns, copy=False),
        turnover=column(_kernel.TURNOVER, "turnover"),
        fees=column(_kernel.FEES, "fees"),
        exposure=column(_kernel.EXPOSURE, "exposure"),
        states=pd.Series(
            np.asarray(THROTTLE_STATES, dtype=object)[series[_kernel.STATE].astype(np.intp)],
            index=index,
            name="state",
            dtype=object,
        ),
        cash=column(_kernel.CASH, "cash"),
        delisted=_delisted_costs(delisted, held, series[_kernel.EQUITY]),
    )


def _delisted_costs(used: pd.DataFrame, held: np.ndarray, equity: np.ndarray) -> pd.DataFrame:
    """The delistings that hit the book: the holding at the last close and what it cost."""
    if used.empty:
        return _no_delistings()
    rows = used["row"].to_numpy(dtype=np.int64)
    cols = used["col"].to_numpy(dtype=np.int64)
    # Held value at the close before the delisting session: weight x equity of that close.
    value = held[rows - 1, cols] * equity[rows - 1]
    value = np.where(np.isfinite(value), value, 0.0)
    out = pd.DataFrame(
        {
            "symbol": used["symbol"].astype(object).to_numpy(),
            "date": pd.to_datetime(used["date"]).to_numpy(),
            "delisting_return": used["delisting_return"].astype("float64").to_numpy(),
            "value": value,
        }
    )
    out["cost"] = out["value"] * out["delisting_return"]
    out = out[out["value"] > 0.0].reset_index(drop=True)
    return out[list(DELISTED_COLUMNS)]


def buy_and_hold(prices: pd.Series, start: Any) -> pd.Series:
    """Equity curve of buying ``prices`` at the close of ``start`` and holding (benchmark).

    Parameters
    ----------
    prices
        Adjusted closes of one instrument, indexed by session.
    start
        First session of the curve (label in ``prices.index``; the first session on or after
        it is used).

    Returns
    -------
    pd.Series
        Equity normalised to 1.0 at the first valid close on or after ``start``; sessions
        before the first valid close stay at 1.0 (cash) and missing closes carry the last one.
    """
    px = prices.loc[start:].astype(np.float64)
    valid = px.dropna()
    valid = valid[valid > 0.0]
    if valid.empty:
        raise DataError(
            f"benchmark {prices.name!r} has no valid price on or after {start}; "
            "choose another benchmark or start date"
        )
    curve = (px.ffill() / float(valid.iloc[0])).fillna(1.0)
    curve.name = prices.name if prices.name is not None else "benchmark"
    return curve
