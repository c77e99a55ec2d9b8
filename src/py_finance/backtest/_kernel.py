"""The compiled session loop of the cash-account backtest (numba, nopython, cached).

Imported lazily by :func:`py_finance.backtest.engine.run_backtest` so that importing the
package does not import numba. The semantics are documented on ``run_backtest``; this
module only implements them in one pass over the sessions.

Layout, for speed: prices and weights come name-major (as pandas stores a frame), so they
are copied ``BLOCK`` sessions at a time into session-major scratch rows that the per-name
loops read contiguously. Each session's per-name work is split into branch-free loops that
the compiler vectorises and short loops that only add up, in name order, the sums the book
needs (value, gross exposure, sells, buys), so every sum is formed in the same order as in
a plain name-by-name loop. The caller allocates every array (:func:`buffers`), so nothing
here allocates, and the code is kept to one function with few loops because numba's compile
time grows with both.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit, types

from py_finance.risk.throttle import throttle_update

# Sessions copied to session-major rows at a time: whole cache lines of each name (4 x 64
# bytes), and the copies (2 x 32 x 8 bytes per name) stay in the L2 cache.
BLOCK = 32

# Rows of ``series`` (one value per session).
EQUITY, CASH, TURNOVER, FEES, EXPOSURE, MULT, STATE = range(7)
N_SERIES = 7

# Rows of ``rows``: BLOCK sessions of prices, one of NaN (no price), BLOCK of weights.
NO_PRICE = BLOCK
WEIGHTS = BLOCK + 1

# Options that keep the compile short: no division-by-zero checks (every division is
# guarded or wants IEEE results), no cfunc wrapper, no array-expression rewrites (there
# are none), and no reference counting (nothing here allocates).
_OPTIONS: dict[str, Any] = {
    "cache": True,
    "nogil": True,
    "error_model": "numpy",
    "no_cfunc_wrapper": True,
    "no_rewrites": True,
    "_nrt": False,
}

# An explicit signature compiles the throttle once, for exactly the types passed below; it
# is only called from compiled code, so it needs no Python entry point either.
_throttle_update = njit(
    "Tuple((float64, int64, int64))"
    "(boolean, float64, int64, int64, float64, float64, float64, float64, int64)",
    **{**_OPTIONS, "no_cpython_wrapper": True},
)(throttle_update)


# Scratch vectors (one value per name) that :func:`simulate` takes after ``held``.
N_SCRATCH = 9


def buffers(n_sessions: int, n_names: int) -> tuple[np.ndarray, ...]:
    """``series``, ``held`` and the scratch arrays, in the order :func:`simulate` takes them.

    The scratch arrays are separate allocations, so the compiled loops may assume that they
    do not overlap. The last vector is the throttle multiplier each name's holding was sized
    with (1 before any trade).
    """
    series = np.zeros((N_SERIES, n_sessions))
    series[MULT] = 1.0
    rows = np.zeros((2 * BLOCK + 1, n_names))
    rows[NO_PRICE] = np.nan
    held = np.empty((n_sessions, n_names))
    scratch = [np.zeros(n_names) for _ in range(N_SCRATCH)]
    scratch[-1][:] = 1.0
    return series, held, *scratch, rows


# One explicit signature: one compile (at import, or a load from the cache), whatever the
# layout numba would infer for inputs that are both C- and F-contiguous (one name, one
# session) and whether or not they are writable.
_INPUT = types.Array(types.float64, 2, "A", readonly=True)
_MATRIX = types.float64[:, ::1]
_VECTOR = types.float64[::1]
_SIGNATURE = types.int64(
    _INPUT,
    _INPUT,
    types.int64,
    types.float64,
    types.float64,
    types.boolean,
    types.float64,
    types.float64,
    types.float64,
    types.float64,
    types.int64,
    types.float64,
    _MATRIX,
    _MATRIX,
    *[_VECTOR] * N_SCRATCH,
    _MATRIX,
    types.Array(types.int64, 1, "C", readonly=True),
    types.Array(types.float64, 1, "C", readonly=True),
)


@njit(_SIGNATURE, **_OPTIONS)
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
    max_gross: float,
    series: np.ndarray,
    held: np.ndarray,
    shares: np.ndarray,
    last: np.ndarray,
    value_part: np.ndarray,
    gross_part: np.ndarray,
    buy_amt: np.ndarray,
    sell_amt: np.ndarray,
    buy_tgt: np.ndarray,
    key: np.ndarray,
    held_mult: np.ndarray,
    rows: np.ndarray,
    delist_at: np.ndarray,
    delist_px: np.ndarray,
) -> int:
    """Run the whole backtest; fills ``series`` and ``held``.

    ``px`` and ``w`` are ``session x name`` (at least one session), fastest name-major
    (Fortran order, as pandas hands them out). ``series`` is ``N_SERIES x session`` (rows
    ``EQUITY`` .. ``STATE``; ``STATE`` gets the throttle state code after each close) and
    ``held`` is ``session x name`` (weights held after trading); both and the scratch that
    follows come from :func:`buffers`. Returns 0, or 1 + the first row of ``w`` that has a
    negative or infinite weight or whose weights (NaN left out) sum above ``max_gross``;
    the simulation stops there and the caller names the cell.
    """
    n, m = px.shape
    cash = init_cash
    peak = 0.0
    state = 0
    in_state = 0
    # The row of ``held`` closed at the top of each session and 1 / its equity (row 0 is
    # written twice: first with NaN, at s = 0).
    hrow = 0
    inv = np.nan
    for s in range(n + 1):
        if s == n:
            # Past the last session: closes the books of session n - 1 at the last prices.
            kp = NO_PRICE
        else:
            kp = s % BLOCK
            if kp == 0:
                # The next BLOCK sessions of prices and the weights that trade at them
                # (rows before the first that trades are clamped to row 0, never read).
                e = n - s
                if e > BLOCK:
                    e = BLOCK
                for j in range(m):
                    for k in range(e):
                        r = s + k - lag
                        rows[k, j] = px[s + k, j]
                        rows[WEIGHTS + k, j] = w[r * (r > 0), j]
        # Closes the books of the last session (weights held, gross exposure) and values
        # session s before trading, a name without a price at its last close.
        for j in range(m):
            sh = shares[j]
            lo = last[j]
            hv = sh * lo
            held[hrow, j] = hv * inv
            gross_part[j] = abs(hv)
            p = rows[kp, j]
            lj = p if (p > 0.0) & (p < np.inf) else lo
            last[j] = lj
            value_part[j] = sh * lj
        if s < n:
            # Delistings of this session: the holder is paid in cash at the delisting value.
            for j in range(m):
                if delist_at[j] == s:
                    cash += shares[j] * delist_px[j]
                    shares[j] = 0.0
                    value_part[j] = 0.0
                    last[j] = delist_px[j]
        value = cash
        gross = 0.0
        for j in range(m):
            value += value_part[j]
            gross += gross_part[j]
        series[EXPOSURE, hrow] = gross * inv
        if s == n:
            break
        paid = 0.0
        if s >= lag:
            mult = series[MULT, s - lag]
            kw = WEIGHTS + kp
            # Orders, as vectorbt's from_orders(size_type="targetpercent") builds them: the
            # target is w x mult x V / close shares and the order's notional is
            # (target - held) x close. A name without a weight (NaN) gets no order, unless
            # the throttle's multiplier moved since its holding was sized: then the holding
            # is resized by new / old multiplier (``py_finance.risk.throttle_resize``; an
            # empty holding, after HALTED, waits for the next weight). Sells execute at once
            # (shares only go down here); buys are recorded in ``buy_amt`` (0 for no buy)
            # and ``buy_tgt`` (the shares held once filled; the current ones for a name
            # without an order). ``key`` is vectorbt's sort key of call_seq="auto",
            # computed as it does: w x V - held x close. It can differ from the notional by
            # an ulp, and only the key decides which buys cash cannot cover (ties are
            # common: equal weights on names not held give equal keys).
            for j in range(m):
                wj = rows[kw, j]
                p = rows[kp, j]
                sh = shares[j]
                hm = held_mult[j]
                priced = (p > 0.0) & (p < np.inf)
                has_w = wj == wj
                resize = (not has_w) & (hm > 0.0) & (hm != mult)
                ok = priced & (has_w | resize)
                # One division either way: (w x mult) x V / close, or shares x new / old.
                num = wj * mult * value if has_w else sh * mult
                tgt = num / (p if has_w else hm)
                tgt = tgt if ok else sh
                k = (num if has_w else tgt * p) - sh * p
                key[j] = k if ok else np.nan
                # vectorbt fills the order's size, target - held, so a filled name holds
                # held + (target - held): an ulp off the target, and near-ties between
                # held names' keys depend on that ulp.
                dsh = tgt - sh
                d = dsh * p
                d = d if ok else 0.0
                buy_amt[j] = max(d, 0.0)
                sell_amt[j] = max(-d, 0.0)
                pos = sh + dsh
                shares[j] = min(sh, pos)
                buy_tgt[j] = pos
                held_mult[j] = mult if ok else hm
            # vectorbt then executes the orders one by one in ascending key order, ties in
            # column order: sells first, then buys from the smallest key, the first one cash
            # cannot cover filled with what is left (after its fee) and the rest dropped.
            # Equivalently, buys are dropped largest key first (ties: the later column)
            # until the rest is affordable, and the last one dropped is partly filled. Each
            # pass sums, in name order, the sells, the buys not dropped (``total``) and
            # those without the one of largest key (``excl``). Usually one pass suffices:
            # with weights summing to <= 1 the shortfall is about the fees. The first pass
            # also checks the row of weights (cheaper here than in a loop of its own).
            first = True
            any_buy = False
            traded = 0.0
            rest = 0.0
            full = 0.0
            last_drop = -1
            while True:
                sold = 0.0
                total = 0.0
                excl = 0.0
                top = -1
                top_key = -np.inf
                gross_w = 0.0
                bad = False
                for j in range(m):
                    b = buy_amt[j]
                    kj = key[j]
                    kept = max(b, 0.0)  # dropped buys are negative
                    sold += sell_amt[j]
                    new = (b > 0.0) & (kj >= top_key)
                    excl = total if new else excl + kept
                    top = j if new else top
                    top_key = kj if new else top_key
                    total += kept
                    wj = rows[kw, j]
                    bad |= (wj < 0.0) | (wj == np.inf)
                    gross_w += wj if wj > 0.0 else 0.0
                full = total
                if first:
                    if bad or gross_w > max_gross:
                        return s - lag + 1
                    first = False
                    any_buy = top >= 0
                    cash += sold * (1.0 - fee)
                    traded = sold
                    paid = sold * fee
                    rest = total
                    if total * (1.0 + fee) <= cash:
                        break
                if top < 0:
                    break
                rest -= buy_amt[top]
                buy_amt[top] = -buy_amt[top]
                last_drop = top
                full = excl
                if rest * (1.0 + fee) <= cash:
                    break
            if any_buy:
                for j in range(m):
                    tgt = buy_tgt[j]
                    sh = shares[j]
                    shares[j] = tgt if buy_amt[j] >= 0.0 else sh
                cash = max(cash - full * (1.0 + fee), 0.0)
                traded += full
                paid += full * fee
                if last_drop >= 0 and cash > 0.0:
                    fill = cash / (1.0 + fee)
                    shares[last_drop] += fill / rows[kp, last_drop]
                    traded += fill
                    paid += cash - fill
                    cash = 0.0
            if value > 0.0:
                series[TURNOVER, s] = traded / value
            series[FEES, s] = paid
        # Trades happen at the prices the book is valued at, so they move value between
        # cash and shares and only the fees leave the account.
        eq = value - paid
        series[EQUITY, s] = eq
        series[CASH, s] = cash
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
                series[MULT, s] = throttle_exposure
            elif state == 2:
                series[MULT, s] = 0.0
            series[STATE, s] = state
        hrow = s
        inv = 1.0 / eq if eq > 0.0 else np.nan
    return 0
