"""The compiled session loop of the cash-account backtest (numba, nopython, cached).

Imported lazily by :func:`py_finance.backtest.engine.run_backtest` so that importing the
package does not import numba. The semantics are documented on ``run_backtest``; this
module only implements them in one pass over the sessions.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from py_finance.risk.throttle import throttle_update

OK = 0
NEGATIVE_WEIGHT = 1
INFINITE_WEIGHT = 2

_throttle_update = njit(cache=True, nogil=True)(throttle_update)


@njit(cache=True, nogil=True)
def simulate(
    px: np.ndarray,
    w: np.ndarray,
    lag: int,
    fee: float,
    init_cash: float,
    use_throttle: bool,
    throttle_exposure: float,
    drawdown_throttle: float,
    halt_drawdown: float,
    recovery_drawdown: float,
    reset_after_sessions: int,
    equity: np.ndarray,
    cash_out: np.ndarray,
    turnover: np.ndarray,
    fees_out: np.ndarray,
    exposure: np.ndarray,
    states: np.ndarray,
    held: np.ndarray,
) -> int:
    """Run the whole backtest; fills the output arrays and returns a status code.

    ``px`` and ``w`` are ``session x name``; ``held`` is ``name x session`` (weights held
    after trading). ``states`` gets the throttle state code after each close. Returns
    ``OK``, ``NEGATIVE_WEIGHT`` or ``INFINITE_WEIGHT``.
    """
    n, m = px.shape
    shares = np.zeros(m)
    last = np.zeros(m)
    buy_amt = np.empty(m)
    buy_tgt = np.empty(m)
    price_row = np.ones(m)
    mult = np.ones(n)
    cash = init_cash
    peak = 0.0
    state = 0
    in_state = 0
    status = OK
    for s in range(n + 1):
        # One pass over the names closes the books of session s - 1 (weights held, gross
        # exposure) and values session s before trading.
        value = cash
        gross = 0.0
        prev = s - 1
        eq_prev = equity[prev] if s > 0 else 0.0
        inv_prev = 1.0 / eq_prev if eq_prev > 0.0 else np.nan
        for j in range(m):
            hv = shares[j] * last[j]
            if s > 0:
                held[j, prev] = hv * inv_prev
                gross += abs(hv)
            if s < n:
                p = px[s, j]
                if p > 0.0 and p < np.inf:
                    last[j] = p
                value += shares[j] * last[j]
        if s > 0:
            exposure[prev] = gross * inv_prev
        if s == n:
            break
        turnover[s] = 0.0
        fees_out[s] = 0.0
        paid = 0.0
        if s >= lag:
            r = s - lag
            scale = mult[r] * value
            sold = 0.0
            total_buy = 0.0
            top = -1
            top_amt = 0.0
            bad = False
            # Branch-free pass: sells execute at once (shares only go down here), buys
            # are recorded in ``buy_amt`` (0 for no buy) and ``buy_tgt`` (the target
            # shares; the current ones for a name without an order).
            for j in range(m):
                wj = w[r, j]
                p = px[s, j]
                ok = (wj == wj) and (p > 0.0) and (p < np.inf)
                bad |= (wj < 0.0) or (wj == np.inf)
                tgt = wj * scale / p if ok else shares[j]
                d = (tgt - shares[j]) * p if ok else 0.0
                buy = max(d, 0.0)
                sold += max(-d, 0.0)
                total_buy += buy
                shares[j] = min(shares[j], tgt)
                buy_amt[j] = buy
                buy_tgt[j] = tgt
                price_row[j] = p if ok else 1.0
                if buy > 0.0 and buy >= top_amt:
                    top = j
                    top_amt = buy
            if bad:
                for j in range(m):
                    wj = w[r, j]
                    if wj < 0.0:
                        status = NEGATIVE_WEIGHT
                    elif wj == np.inf:
                        status = INFINITE_WEIGHT
            cash += sold * (1.0 - fee)
            traded = sold
            paid = sold * fee
            if top >= 0:
                if total_buy * (1.0 + fee) <= cash:
                    for j in range(m):
                        shares[j] = buy_tgt[j]
                    cash -= total_buy * (1.0 + fee)
                    traded += total_buy
                    paid += total_buy * fee
                else:
                    # Buys fill smallest first, so the ones cash cannot cover are the
                    # largest: drop them largest first (ties: the later column, as a
                    # stable sort orders them) until the rest is affordable. The last one
                    # dropped is partly filled with the cash left.
                    rest = total_buy - buy_amt[top]
                    last_drop = top
                    buy_amt[top] = -buy_amt[top]  # negative marks a dropped buy
                    # Usually one drop suffices: with weights summing to <= 1 the shortfall
                    # is about the session's fees.
                    while rest * (1.0 + fee) > cash:
                        best = -1
                        best_amt = 0.0
                        for j in range(m):
                            if buy_amt[j] > 0.0 and buy_amt[j] >= best_amt:
                                best = j
                                best_amt = buy_amt[j]
                        if best < 0:
                            break
                        rest -= best_amt
                        buy_amt[best] = -best_amt
                        last_drop = best
                    full = 0.0
                    for j in range(m):
                        if buy_amt[j] >= 0.0:
                            shares[j] = buy_tgt[j]
                            full += buy_amt[j]
                    cash = max(cash - full * (1.0 + fee), 0.0)
                    traded += full
                    paid += full * fee
                    if cash > 0.0:
                        fill = cash / (1.0 + fee)
                        shares[last_drop] += fill / price_row[last_drop]
                        traded += fill
                        paid += cash - fill
                        cash = 0.0
            turnover[s] = traded / value if value > 0.0 else 0.0
            fees_out[s] = paid
        # Trades happen at the prices the book is valued at, so they move value between
        # cash and shares and only the fees leave the account.
        eq = value - paid
        equity[s] = eq
        cash_out[s] = cash
        if use_throttle:
            peak, state, in_state = _throttle_update(
                s > 0,
                peak,
                state,
                in_state,
                eq,
                drawdown_throttle,
                halt_drawdown,
                recovery_drawdown,
                reset_after_sessions,
            )
            if state == 1:
                mult[s] = throttle_exposure
            elif state == 2:
                mult[s] = 0.0
        states[s] = state
    # Rows decided in the last ``lag`` sessions never trade, but are still validated.
    for r in range(max(n - lag, 0), n):
        for j in range(m):
            wj = w[r, j]
            if wj < 0.0:
                status = NEGATIVE_WEIGHT
            elif wj == np.inf:
                status = INFINITE_WEIGHT
    return status
