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
    ACTIVE,
    ThrottleState,
    throttle_multiplier,
    throttle_step,
)

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


def _aligned_weights(prices: pd.DataFrame, target_weights: pd.DataFrame) -> np.ndarray:
    """Target weights as a float64 matrix in the price frame's row and column order."""
    if not prices.index.equals(target_weights.index):
        raise DataError(
            "target_weights and prices must share the same session index "
            f"({len(target_weights)} vs {len(prices)} rows); reindex the weights to the "
            "price sessions first"
        )
    if prices.columns.has_duplicates or target_weights.columns.has_duplicates:
        raise DataError("prices and target_weights must not have duplicate symbols")
    if set(prices.columns) != set(target_weights.columns):
        missing = sorted(map(str, set(prices.columns) ^ set(target_weights.columns)))
        raise DataError(
            f"target_weights and prices must cover the same symbols; differing: {missing[:10]}"
        )
    w = target_weights.loc[:, prices.columns].to_numpy(dtype=np.float64, copy=True)
    if (w[~np.isnan(w)] < 0.0).any():
        raise DataError("the backtest is long-only: target weights must be >= 0")
    if np.isinf(w).any():
        raise DataError("target weights must be finite")
    return w


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
        row of NaN is a session without rebalancing. Static overlays (caps, regime exposure) should
        already be applied (``py_finance.risk.apply_static_overlays``).
    cfg
        Execution lag, costs, initial cash.
    risk
        If given with ``drawdown_throttle`` set, the drawdown throttle runs here: after the
        close of t it is updated with t's equity, and its multiplier scales the weights
        decided at t (those that fill at t + lag).

    Returns
    -------
    BacktestResult

    Notes
    -----
    At each session: the equity ``V = cash + sum(shares x close)`` is taken once, before any
    trade (a name without a price today is valued at its last known close); each tradable
    name's target is ``w x V / close`` shares (fractional). Sells execute first, then buys in
    ascending order of their notional. Fees (``cost_bps / 1e4`` of traded notional) are paid
    from cash, never taken out of the targets; a buy that the remaining cash cannot cover is
    filled with what is left after its fee, so cash never goes negative and later buys get
    nothing. A name with no price at the trade session is not traded: held shares are kept
    (valued at the last price), and a target on a name not held stays in cash.
    """
    w_all = _aligned_weights(prices, target_weights)
    px = prices.to_numpy(dtype=np.float64, copy=True)
    n_sessions, n_names = px.shape
    tradable = np.isfinite(px) & (px > 0.0)
    # Last known close, for valuation only (never for trading).
    last_px = pd.DataFrame(np.where(tradable, px, np.nan)).ffill().to_numpy()
    last_px = np.nan_to_num(last_px, nan=0.0)
    # Price used to size and fill orders; 1.0 where untradable only to keep the maths finite
    # (those names are masked out of every order).
    trade_px = np.where(tradable, px, 1.0)

    fee = cfg.cost_bps / 1e4
    lag = cfg.execution_lag
    throttle_cfg = risk if risk is not None and risk.drawdown_throttle is not None else None

    shares = np.zeros(n_names, dtype=np.float64)
    cash = float(cfg.initial_cash)
    mult = np.ones(n_sessions, dtype=np.float64)
    equity = np.empty(n_sessions, dtype=np.float64)
    cash_out = np.empty(n_sessions, dtype=np.float64)
    turnover = np.zeros(n_sessions, dtype=np.float64)
    fees_out = np.zeros(n_sessions, dtype=np.float64)
    shares_out = np.zeros((n_sessions, n_names), dtype=np.float64)
    states: list[str] = [ACTIVE] * n_sessions
    throttle: ThrottleState | None = None

    for s in range(n_sessions):
        if s >= lag:
            value = cash + float(shares @ last_px[s])
            price = trade_px[s]
            # Untradable names (no price today) and NaN targets keep their shares: no order.
            w_row = w_all[s - lag]
            orderable = tradable[s] & ~np.isnan(w_row)
            target = np.where(orderable, w_row * (mult[s - lag] * value) / price, shares)
            notional = (target - shares) * price
            sells = notional < 0.0
            buys = notional > 0.0
            sold = -float(notional[sells].sum())
            bought = float(notional[buys].sum())
            cash += sold * (1.0 - fee)
            traded = sold
            paid = sold * fee
            if bought * (1.0 + fee) <= cash:
                # Cash covers every buy: all targets fill.
                shares = target
                cash -= bought * (1.0 + fee)
                traded += bought
                paid += bought * fee
            else:
                shares = np.where(buys, shares, target)
                idx = np.flatnonzero(buys)
                amount = notional[idx]
                order = np.argsort(amount, kind="stable")
                idx, amount = idx[order], amount[order]
                cum = np.cumsum(amount * (1.0 + fee))
                k = int(np.searchsorted(cum, cash, side="right"))
                if k:
                    shares[idx[:k]] = target[idx[:k]]
                    full = float(amount[:k].sum())
                    traded += full
                    paid += full * fee
                    cash = max(cash - float(cum[k - 1]), 0.0)
                if k < idx.size and cash > 0.0:
                    # Partial fill: the cash left pays this order and its fee exactly.
                    fill = cash / (1.0 + fee)
                    shares[idx[k]] += fill / price[idx[k]]
                    traded += fill
                    paid += cash - fill
                    cash = 0.0
            turnover[s] = traded / value if value > 0.0 else 0.0
            fees_out[s] = paid

        shares_out[s] = shares
        equity[s] = cash + float(shares @ last_px[s])
        cash_out[s] = cash
        if throttle_cfg is not None:
            throttle = throttle_step(throttle, equity[s], throttle_cfg)
            mult[s] = throttle_multiplier(throttle, throttle_cfg)
            states[s] = throttle.state

    index = prices.index
    held_value = shares_out * last_px
    with np.errstate(divide="ignore", invalid="ignore"):
        weights = np.where(equity[:, None] > 0.0, held_value / equity[:, None], np.nan)
        exposure = np.where(equity > 0.0, np.abs(held_value).sum(axis=1) / equity, np.nan)
        rets = np.zeros(n_sessions, dtype=np.float64)
        if n_sessions > 1:
            rets[1:] = equity[1:] / equity[:-1] - 1.0
    if n_sessions:
        log.info(
            "backtest: %d sessions x %d names, final equity %.2f, fees %.2f",
            n_sessions,
            n_names,
            equity[-1],
            fees_out.sum(),
        )
    return BacktestResult(
        equity=pd.Series(equity, index=index, name="equity"),
        returns=pd.Series(rets, index=index, name="returns"),
        weights=pd.DataFrame(weights, index=index, columns=prices.columns),
        turnover=pd.Series(turnover, index=index, name="turnover"),
        fees=pd.Series(fees_out, index=index, name="fees"),
        exposure=pd.Series(exposure, index=index, name="exposure"),
        states=pd.Series(states, index=index, name="state", dtype=object),
        cash=pd.Series(cash_out, index=index, name="cash"),
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
