"""Cash-account backtest of target weights, session by session at the close."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from py_finance.backtest.config import BacktestConfig
from py_finance.errors import DataError
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
    """

    equity: pd.Series
    returns: pd.Series
    weights: pd.DataFrame
    turnover: pd.Series
    fees: pd.Series
    exposure: pd.Series
    states: pd.Series
    cash: pd.Series


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


def run_backtest(
    prices: pd.DataFrame,
    target_weights: pd.DataFrame,
    cfg: BacktestConfig,
    *,
    risk: RiskConfig | None = None,
) -> BacktestResult:
    """Simulate a long-only cash account that trades to target weights at the close.

    The semantics are those of vectorbt's ``Portfolio.from_orders(close, size=weights
    shifted by the lag, size_type="targetpercent", fees=cost_bps / 1e4, cash_sharing=True,
    group_by=True, call_seq="auto", min_size=0)``.

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
        Execution lag, costs, initial cash.
    risk
        If given with ``drawdown_throttle`` set, the drawdown throttle runs here: after the
        close of t it is updated with t's equity, and its multiplier scales the weights
        decided at t (those that fill at t + lag). When the multiplier moves on a session
        without new weights (between rebalances), the holdings are resized by new / old
        multiplier at t + lag all the same (:func:`py_finance.risk.throttle_resize`), so
        the throttle acts on the first fill after the close it trips at, not at the next
        rebalance.

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
    """
    from py_finance.backtest import _kernel

    px, w = _arrays(prices, target_weights)
    n_sessions, n_names = px.shape
    lag = int(cfg.execution_lag)
    max_gross = 1.0 if risk is None else float(risk.max_leverage)
    throttle = risk is not None and risk.drawdown_throttle is not None
    dd_thr, halt, recovery, reset = throttle_params(risk if risk is not None else NO_THROTTLE)
    # ``held`` is session-major: the frame below wraps it without a copy.
    series, held, *scratch = _kernel.buffers(n_sessions, n_names)
    bad = 0
    if n_sessions:
        # The kernel checks the rows it trades as it goes and stops at the first bad one.
        bad = _kernel.simulate(
            px,
            w,
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
    )


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
