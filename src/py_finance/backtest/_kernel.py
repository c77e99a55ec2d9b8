"""The compiled session loop of the cash-account backtest (numba, nopython, cached).

Imported lazily by :func:`py_finance.backtest.engine.run_backtest` so that importing the
package does not import numba. The semantics are documented on ``run_backtest``; this
module only implements them in one pass over the sessions.

Layout, for speed: prices and weights come name-major (as pandas stores a frame), so they
are copied ``BLOCK`` sessions at a time into session-major scratch rows that the per-name
loops read contiguously; the next block is prefetched a slice of names per session, since
its columns lie far apart. Each session makes two branch-free passes over the names that
the compiler vectorises (value the book; build the orders, filling every one), then adds up
what the book needs (value, gross exposure, sells, buys) in ``LANES`` interleaved partial
sums of fixed order: the same bits on every machine, whatever its vector width. The order of
the buys is only needed when cash cannot cover them all, and then only for the few largest
keys: the kernel never sorts. The caller allocates every array (:func:`buffers`), so nothing
here allocates, and the code is kept to few functions with few loops because numba's
compile time grows with both.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from py_finance.risk.throttle import throttle_update

# Sessions copied to session-major rows at a time: whole cache lines of each name (4 x 64
# bytes), and the copies (2 x 32 x 8 bytes per name) stay in the L2 cache.
BLOCK = 32

# Rows of ``series`` (one value per session).
EQUITY, CASH, TURNOVER, FEES, EXPOSURE, MULT, STATE = range(7)
N_SERIES = 7

# Rows of ``rows``: BLOCK sessions of closes, one of NaN (no price), BLOCK of weights, and
# with fills at the open, BLOCK of opens.
NO_PRICE = BLOCK
WEIGHTS = BLOCK + 1
OPENS = 2 * BLOCK + 1

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
# Lanes of the sums over names: 8 running partial sums (name j goes to lane j % 8), added
# pairwise at the end. A fixed order, so the same bits on every machine, and independent
# chains, so the adds overlap instead of waiting for each other.
LANES = 8


def buffers(n_sessions: int, n_names: int, opens: bool = False) -> tuple[np.ndarray, ...]:
    """``series``, ``held``, the scratch arrays and ``rows``, in :func:`simulate`'s order.

    ``opens``: room in ``rows`` for the opens (fills at the open).

    The scratch arrays are separate allocations, so the compiled loops may assume that they
    do not overlap. The last vector is the throttle multiplier each name's holding was sized
    with (1 before any trade). ``checks`` holds, for the ``BLOCK`` weight rows copied last,
    their gross total and whether one of their weights is negative or infinite.
    """
    series = np.zeros((N_SERIES, n_sessions))
    series[MULT] = 1.0
    rows = np.zeros((3 * BLOCK + 1 if opens else 2 * BLOCK + 1, n_names))
    rows[NO_PRICE] = np.nan
    held = np.empty((n_sessions, n_names))
    scratch = [np.zeros(n_names) for _ in range(N_SCRATCH)]
    scratch[-1][:] = 1.0
    checks = np.zeros(4)
    # The keys' bits as integers: the same memory as the keys (the vector before last).
    key_bits = scratch[-2].view(np.int64)
    return series, held, *scratch, rows, checks, key_bits


_SUM_OPTIONS = {**_OPTIONS, "no_cpython_wrapper": True}


def _prefetch_typer(typingctx: Any, arr: Any, i: Any, j: Any) -> Any:
    """``_prefetch(arr, i, j)``: ask the CPU to fetch the cache line of ``arr[i, j]``.

    It changes no value; a hint the CPU may ignore.
    """
    sig = types.void(arr, i, j)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        aryty = signature.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        ptr = cgutils.get_item_pointer(
            context, builder, aryty, ary, [args[1], args[2]], wraparound=False
        )
        i8p = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0")
        # A read, kept in the caches closest to the core (2 of 0..3), data (not code).
        builder.call(fn, [builder.bitcast(ptr, i8p), i32(0), i32(2), i32(1)])
        return context.get_dummy_value()

    return sig, codegen


_prefetch: Any = intrinsic(_prefetch_typer)


_PAIR = types.UniTuple(types.float64, 2)


@njit(_PAIR(types.float64[::1], types.float64[::1]), **_SUM_OPTIONS)
def _sums(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """The sums of ``x`` and of ``y``, each in ``LANES`` lanes then the lanes pairwise."""
    m = x.shape[0]
    a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = 0.0
    b0 = b1 = b2 = b3 = b4 = b5 = b6 = b7 = 0.0
    end = m - m % LANES
    for j in range(0, end, LANES):
        a0 += x[j]
        a1 += x[j + 1]
        a2 += x[j + 2]
        a3 += x[j + 3]
        a4 += x[j + 4]
        a5 += x[j + 5]
        a6 += x[j + 6]
        a7 += x[j + 7]
        b0 += y[j]
        b1 += y[j + 1]
        b2 += y[j + 2]
        b3 += y[j + 3]
        b4 += y[j + 4]
        b5 += y[j + 5]
        b6 += y[j + 6]
        b7 += y[j + 7]
    for j in range(end, m):
        a0 += x[j]
        b0 += y[j]
    a = ((a0 + a4) + (a2 + a6)) + ((a1 + a5) + (a3 + a7))
    b = ((b0 + b4) + (b2 + b6)) + ((b1 + b5) + (b3 + b7))
    return a, b


@njit(
    types.void(
        types.float64[::1],
        types.float64[::1],
        *[types.float64[::1]] * 6,
        types.float64,
    ),
    **_SUM_OPTIONS,
)
def _cap_resize(
    w: np.ndarray,
    p: np.ndarray,
    last: np.ndarray,
    before: np.ndarray,
    shares: np.ndarray,
    buy_amt: np.ndarray,
    sell_amt: np.ndarray,
    key: np.ndarray,
    value: float,
) -> None:
    """Scale the holdings the throttle resized so that the book is worth at most ``value``.

    A resize (no weight, the multiplier moved) scales each holding by new / old, drift
    included; when the throttle lifts, the grown book can be worth more than the equity.
    Then every resized holding is scaled by the same factor, so that the book is fully
    invested with the holdings in the proportions they had, as the live loop resizes
    (``py_finance.live.orders.resized_weights``), not filled in key order until cash runs
    out. ``w`` and ``p`` are the session's weights and trade prices, ``last`` the prices
    the book is valued at; the orders are rebuilt as the order pass builds them.
    """
    m = w.shape[0]
    resized = 0.0
    other = 0.0
    for j in range(m):
        v = shares[j] * last[j]
        if (w[j] != w[j]) & (shares[j] != before[j]):
            resized += v
        elif v == v:
            other += v
    if not (resized > 0.0 and resized + other > value):
        return
    f = max(value - other, 0.0) / resized
    for j in range(m):
        if (w[j] != w[j]) & (shares[j] != before[j]):
            pj = p[j]
            sh = before[j]
            tgt = shares[j] * f
            k = tgt * pj - sh * pj
            d = (tgt - sh) * pj
            buy = d > 0.0
            buy_amt[j] = d if buy else 0.0
            sell_amt[j] = 0.0 if buy else -d
            key[j] = k if buy else -np.inf
            shares[j] = tgt


# An int64 whose order is that of the float64 with the same bits (for max reductions the
# compiler vectorises, which it does not for floats): negative floats' other bits flipped.
_FLIP = np.int64(0x7FFFFFFFFFFFFFFF)


# One explicit signature: one compile (at import, or a load from the cache), whatever the
# layout numba would infer for inputs that are both C- and F-contiguous (one name, one
# session) and whether or not they are writable.
_INPUT = types.Array(types.float64, 2, "A", readonly=True)
_MATRIX = types.float64[:, ::1]
_VECTOR = types.float64[::1]
_INTS = types.Array(types.int64, 1, "C", readonly=True)
_SIGNATURE = types.int64(
    _INPUT,
    _INPUT,
    _INPUT,
    types.boolean,
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
    _VECTOR,
    types.int64[::1],
    _INTS,
    _INTS,
    types.Array(types.float64, 1, "C", readonly=True),
)


@njit(_SIGNATURE, **_OPTIONS)
def simulate(
    px: np.ndarray,
    w: np.ndarray,
    op: np.ndarray,
    fill_open: bool,
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
    before: np.ndarray,
    key: np.ndarray,
    held_mult: np.ndarray,
    rows: np.ndarray,
    checks: np.ndarray,
    key_bits: np.ndarray,
    delist_cols: np.ndarray,
    delist_at: np.ndarray,
    delist_px: np.ndarray,
) -> int:
    """Run the whole backtest; fills ``series`` and ``held``.

    ``px`` and ``w`` are ``session x name`` (at least one session), fastest name-major
    (Fortran order, as pandas hands them out). With ``fill_open`` the orders fill at the
    opens ``op`` (same shape and order; ``rows`` from ``buffers(..., opens=True)``): the
    book is valued at the open before trading and at the close after; otherwise ``op`` is
    not read (pass ``px``). ``series`` is ``N_SERIES x session`` (rows
    ``EQUITY`` .. ``STATE``; ``STATE`` gets the throttle state code after each close) and
    ``held`` is ``session x name`` (weights held after trading); both and the scratch that
    follows come from :func:`buffers`. ``delist_cols`` are the columns that delist, in the
    order of their delisting rows ``delist_at[col]``. Returns 0, or 1 + the first row of
    ``w`` that trades and has a negative or infinite weight or whose weights (NaN left
    out), added in column order, sum above ``max_gross``; then nothing is simulated past
    the block of sessions that row trades in, and the caller names the cell.
    """
    n, m = px.shape
    cash = init_cash
    peak = 0.0
    state = 0
    in_state = 0
    next_delist = 0
    over = -1  # the first row of weights that trades and sums above max_gross
    n_delist = delist_cols.shape[0]
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
                # (rows before the first that trades are clamped to row 0 and not
                # checked: they are never read).
                e = n - s
                if e > BLOCK:
                    e = BLOCK
                for j in range(m):
                    for k in range(e):
                        r = s + k - lag
                        rows[k, j] = px[s + k, j]
                        rows[WEIGHTS + k, j] = w[r * (r > 0), j]
                if fill_open:
                    for j in range(m):
                        for k in range(e):
                            rows[OPENS + k, j] = op[s + k, j]
                # Each weight row's gross total, added in column order as check_weights
                # adds it (NaN left out; an infinite weight makes it infinite), four rows
                # side by side so that the running sums do not wait for each other (rows
                # past ``e`` are stale and not looked at). The first row above the limit
                # stops the simulation when it trades; a negative weight is found then.
                for k0 in range(0, e, 4):
                    g0 = g1 = g2 = g3 = 0.0
                    r0 = WEIGHTS + k0
                    for j in range(m):
                        w0 = rows[r0, j]
                        w1 = rows[r0 + 1, j]
                        w2 = rows[r0 + 2, j]
                        w3 = rows[r0 + 3, j]
                        g0 += w0 if w0 > 0.0 else 0.0
                        g1 += w1 if w1 > 0.0 else 0.0
                        g2 += w2 if w2 > 0.0 else 0.0
                        g3 += w3 if w3 > 0.0 else 0.0
                    checks[0] = g0
                    checks[1] = g1
                    checks[2] = g2
                    checks[3] = g3
                    for k in range(k0, min(k0 + 4, e)):
                        g = checks[k - k0]
                        if s + k >= lag and over < 0 and (g > max_gross or g == np.inf):
                            over = s + k - lag
        # The next block's prices and weights are far apart in memory (a column's 32
        # sessions, then the next column's): fetch a 32nd of its names each session, so
        # that the copy finds them in the cache.
        nb = s - kp + BLOCK
        if nb < n:
            chunk = (m + BLOCK - 1) // BLOCK
            j0 = kp * chunk
            # Two lines per column (the CPU fetches each line's neighbour with it).
            mid = min(nb + BLOCK // 2, n - 1)
            rw = max(nb - lag, 0)
            mw = max(mid - lag, 0)
            for j in range(j0, min(j0 + chunk, m)):
                _prefetch(px, nb, j)
                _prefetch(px, mid, j)
                _prefetch(w, rw, j)
                _prefetch(w, mw, j)
            if fill_open:
                for j in range(j0, min(j0 + chunk, m)):
                    _prefetch(op, nb, j)
                    _prefetch(op, mid, j)
        # The row of the prices trades happen at (and the book is valued at before them).
        kt = OPENS + kp if fill_open and s < n else kp
        # Closes the books of the last session (weights held, gross exposure) and values
        # session s before trading (at its trade prices), a name without a price at its
        # last known one.
        for j in range(m):
            sh = shares[j]
            lo = last[j]
            hv = sh * lo
            held[hrow, j] = hv * inv
            gross_part[j] = abs(hv)
            p = rows[kt, j]
            lj = p if (p > 0.0) & (p < np.inf) else lo
            last[j] = lj
            value_part[j] = sh * lj
        # Delistings of this session: the holder is paid in cash at the delisting value.
        while next_delist < n_delist and delist_at[delist_cols[next_delist]] == s:
            j = delist_cols[next_delist]
            cash += shares[j] * delist_px[j]
            shares[j] = 0.0
            value_part[j] = 0.0
            last[j] = delist_px[j]
            next_delist += 1
        held_value, gross = _sums(value_part, gross_part)
        value = cash + held_value
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
            # empty holding, after HALTED, waits for the next weight). Every order is
            # filled here (``shares``: held + (target - held), as vectorbt fills the size
            # target - held); ``before`` keeps the shares held before, for a buy the cash
            # cannot cover. ``key`` is vectorbt's sort key of call_seq="auto", computed as
            # it does, w x V - held x close, for the buys (-inf for anything else): it can
            # differ from the notional by an ulp, and only the key decides which buys cash
            # cannot cover (ties are common: equal weights on names not held give equal
            # keys).
            negative = False
            for j in range(m):
                wj = rows[kw, j]
                p = rows[kt, j]
                sh = shares[j]
                hm = held_mult[j]
                negative |= wj < 0.0
                priced = (p > 0.0) & (p < np.inf)
                has_w = wj == wj
                resize = (not has_w) & (hm > 0.0) & (hm != mult)
                ok = priced & (has_w | resize)
                # One division either way: (w x mult) x V / close, or shares x new / old.
                num = wj * mult * value if has_w else sh * mult
                tgt = num / (p if has_w else hm)
                tgt = tgt if ok else sh
                k = (num if has_w else tgt * p) - sh * p
                dsh = tgt - sh
                d = dsh * p
                d = d if ok else 0.0
                buy = d > 0.0
                buy_amt[j] = d if buy else 0.0
                sell_amt[j] = 0.0 if buy else -d
                key[j] = k if buy else -np.inf
                before[j] = sh
                shares[j] = sh + dsh
                held_mult[j] = mult if ok else hm
            if negative or s - lag == over:
                return s - lag + 1
            if use_throttle:
                _cap_resize(rows[kw], rows[kt], last, before, shares, buy_amt, sell_amt, key, value)
            # vectorbt then executes the orders one by one in ascending key order, ties in
            # column order: sells first, then buys from the smallest key, the first one cash
            # cannot cover filled with what is left (after its fee) and the rest dropped.
            # Equivalently, buys are dropped largest key first (ties: the later column)
            # until the rest is affordable, and the last one dropped is partly filled.
            # Usually there is nothing or one to drop: with weights summing to <= 1 the
            # shortfall is about the fees, so the order of the buys is never needed.
            rest, sold = _sums(buy_amt, sell_amt)
            cash += sold * (1.0 - fee)
            traded = sold
            paid = sold * fee
            last_drop = -1
            if rest * (1.0 + fee) > cash:
                while True:
                    # The largest key (its bits, ordered as integers), then its last column.
                    top_bits = -_FLIP - 1
                    for j in range(m):
                        b = key_bits[j]
                        top_bits = max(top_bits, b ^ ((b >> 63) & _FLIP))
                    top = m - 1
                    while top >= 0:
                        b = key_bits[top]
                        if b ^ ((b >> 63) & _FLIP) == top_bits:
                            break
                        top -= 1
                    if top < 0 or key[top] == -np.inf:
                        rest = 0.0  # every buy dropped
                        break
                    rest -= buy_amt[top]
                    key[top] = -np.inf
                    shares[top] = before[top]
                    last_drop = top
                    if rest * (1.0 + fee) <= cash:
                        break
            cash = max(cash - rest * (1.0 + fee), 0.0)
            traded += rest
            paid += rest * fee
            if last_drop >= 0 and cash > 0.0:
                fill = cash / (1.0 + fee)
                shares[last_drop] += fill / rows[kt, last_drop]
                traded += fill
                paid += cash - fill
                cash = 0.0
            if value > 0.0:
                series[TURNOVER, s] = traded / value
            series[FEES, s] = paid
        if fill_open:
            # Filled at the open: the equity is that of the close.
            for j in range(m):
                p = rows[kp, j]
                lj = p if (p > 0.0) & (p < np.inf) else last[j]
                last[j] = lj
                value_part[j] = shares[j] * lj
            held_value, _ = _sums(value_part, value_part)
            eq = cash + held_value
        else:
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
