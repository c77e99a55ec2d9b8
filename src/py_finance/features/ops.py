"""Trailing-window operators on ``symbol x session`` float64 matrices, compiled with numba.

Every kernel takes ``x`` of shape ``(n_symbols, n_sessions)`` (one contiguous row per
symbol, oldest session first) and returns arrays of the same shape. The value at session t
uses ``x[:, t - w + 1 : t + 1]`` only, so every operator is causal. A window that contains
a NaN gives NaN (no partial windows), so a name's warm-up and any gap in its history are
explicit. Rows are processed in parallel (``numba.prange``); sums are kept running (O(1) per
step) and order statistics use a sorted window buffer (O(w) per step).

Running sums are exact only up to rounding, and the rounding of a value stays in the sum
after the value has left the window: one spike of 1e10 leaves a residue of order 1e-6 in a
running sum and 1e4 in a running sum of squares, in every later window of its row, which is
large next to the variance of ordinary values. So
each kernel also accumulates a bound on the rounding error its running sums have gathered
since they were last computed from the window (the sum, over steps, of the magnitudes the
running sums passed through, times the unit roundoff). Where that bound exceeds ``_TOL``
of the statistic itself (a spike has left the window, the level has drifted far from the
shift, the window is flat, or the error has simply built up over many steps), the sums are
recomputed from the window in two passes, shifted by the window value nearest the window
mean, and the running continues from there. Every result is therefore within about
``_TOL`` (relative to the window's own scale: its variance, or its sum of absolute values)
of a two-pass computation on that window alone, whatever came before it. On ordinary data
the recomputation runs for 0.2% to 5% of the outputs (most often for short windows on
trending prices, whose level leaves the shift behind); it adds about 6% to the kernels'
time. A constant window is recomputed with the shift equal to its value and gives exactly
0 variance wherever the computation started. A window holding an infinite value gives inf
(sums) or NaN (the other statistics); later windows are not affected.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit, prange

__all__ = [
    "rolling_corr",
    "rolling_linreg",
    "rolling_max_argmax",
    "rolling_mean",
    "rolling_min_argmin",
    "rolling_sorted_stats",
    "rolling_std",
    "rolling_sum",
    "shift",
]


@njit(cache=True)
def _first_finite(row: np.ndarray) -> float:
    for v in row:
        if not np.isnan(v):
            return float(v)
    return 0.0


# Unit roundoff of float64, times a margin for the few roundings of each running update.
_ERR = 8.0 * 2.0**-53
# Largest accepted error bound of a running statistic, relative to the statistic's scale.
_TOL = 1e-12


@njit(cache=True)
def _anchor(x: np.ndarray, j: int, w: int) -> float:
    """Value of ``x[j-w+1..j]`` nearest its mean: the shift for recomputed running sums.

    A window value rather than the mean itself, so a constant window is shifted to exactly 0.
    """
    m = 0.0
    for k in range(j - w + 1, j + 1):
        m += x[k]
    m /= w
    best = x[j]
    gap = abs(best - m)
    for k in range(j - w + 1, j + 1):
        g = abs(x[k] - m)
        if g < gap:
            best = x[k]
            gap = g
    return best


def _rolling_sum_py(x: np.ndarray, w: int) -> np.ndarray:  # pragma: no cover - compiled
    """Trailing ``w``-session sum (exactly 0 for an all-zero window)."""
    n, t = x.shape
    out = np.full((n, t), np.nan)
    for i in prange(n):
        row = x[i]
        s = 0.0  # running sum
        a = 0.0  # running sum of absolute values: the scale the error is measured against
        bound = 0.0  # sum of the |s| passed through since the last recomputation
        nan = 0
        for j in range(t):
            v = row[j]
            if np.isnan(v):
                nan += 1
            else:
                s += v
                a += abs(v)
            mid = abs(s)
            if j >= w:
                o = row[j - w]
                if np.isnan(o):
                    nan -= 1
                else:
                    s -= o
                    a -= abs(o)
            bound += mid + abs(s)
            if j >= w - 1 and nan == 0:
                if not _ERR * bound <= _TOL * a:
                    s = 0.0
                    a = 0.0
                    for k in range(j - w + 1, j + 1):
                        s += row[k]
                        a += abs(row[k])
                    bound = 0.0
                out[i, j] = s
    return out


def rolling_mean(x: np.ndarray, w: int) -> np.ndarray:
    """Trailing ``w``-session mean."""
    return rolling_sum(x, w) / float(w)


@njit(cache=True)
def _centred_sums(x: np.ndarray, j: int, w: int, ref: float) -> tuple[float, float]:
    """Sum and sum of squares of ``x[j-w+1..j] - ref``."""
    s1 = 0.0
    s2 = 0.0
    for k in range(j - w + 1, j + 1):
        d = x[k] - ref
        s1 += d
        s2 += d * d
    return s1, s2


def _rolling_std_py(x: np.ndarray, w: int) -> np.ndarray:  # pragma: no cover - compiled
    """Trailing ``w``-session sample standard deviation (``ddof=1``, as pandas)."""
    n, t = x.shape
    out = np.full((n, t), np.nan)
    for i in prange(n):
        row = x[i]
        ref = _first_finite(row)
        s1 = 0.0
        s2 = 0.0
        b2 = 0.0  # sum of the s2 passed through since the last recomputation
        steps = 0
        nan = 0
        for j in range(t):
            v = row[j]
            if np.isnan(v):
                nan += 1
            else:
                d = v - ref
                s1 += d
                s2 += d * d
            b2 += s2
            if j >= w:
                o = row[j - w]
                if np.isnan(o):
                    nan -= 1
                else:
                    d = o - ref
                    s1 -= d
                    s2 -= d * d
            steps += 1
            if j >= w - 1 and nan == 0:
                m2 = s2 - s1 * s1 / w  # sum of squared deviations from the window mean
                if not _ERR * (b2 + (steps + 1) * s2) <= _TOL * m2:
                    ref = _anchor(row, j, w)
                    s1, s2 = _centred_sums(row, j, w, ref)
                    b2 = 0.0
                    steps = 0
                    m2 = s2 - s1 * s1 / w
                # rounding can leave a flat window slightly negative; NaN (an inf) stays NaN
                out[i, j] = np.sqrt(m2 / (w - 1)) if not m2 < 0.0 else 0.0
    return out


def _rolling_extreme_py(x: np.ndarray, w: int, sign: float) -> tuple[np.ndarray, np.ndarray]:
    n, t = x.shape
    best = np.full((n, t), np.nan)
    pos = np.full((n, t), np.nan)
    for i in prange(n):
        last_nan = -1
        for j in range(t):
            if np.isnan(x[i, j]):
                last_nan = j
            if j < w - 1 or last_nan > j - w:
                continue
            b = sign * x[i, j - w + 1]
            k = 0
            for m in range(1, w):
                v = sign * x[i, j - w + 1 + m]
                if v > b:  # strict: the first occurrence wins, as numpy.argmax
                    b = v
                    k = m
            best[i, j] = sign * b
            pos[i, j] = k + 1
    return best, pos


def rolling_max_argmax(x: np.ndarray, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Trailing max and its 1-based position in the window (1 = oldest session)."""
    out: tuple[np.ndarray, np.ndarray] = _dispatch(_EXTREME, x, w, 1.0)
    return out


def rolling_min_argmin(x: np.ndarray, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Trailing min and its 1-based position in the window (1 = oldest session)."""
    out: tuple[np.ndarray, np.ndarray] = _dispatch(_EXTREME, x, w, -1.0)
    return out


@njit(cache=True)
def _insert(buf: np.ndarray, m: int, v: float) -> None:
    k = np.searchsorted(buf[:m], v)
    for q in range(m, k, -1):
        buf[q] = buf[q - 1]
    buf[k] = v


@njit(cache=True)
def _remove(buf: np.ndarray, m: int, v: float) -> None:
    k = np.searchsorted(buf[:m], v)
    for q in range(k, m - 1):
        buf[q] = buf[q + 1]


@njit(cache=True)
def _quantile(buf: np.ndarray, w: int, q: float) -> float:
    p = q * (w - 1)
    lo = int(np.floor(p))
    hi = min(lo + 1, w - 1)
    frac = p - lo
    return buf[lo] + (buf[hi] - buf[lo]) * frac


def _rolling_sorted_stats_py(  # pragma: no cover - compiled
    x: np.ndarray, w: int, q_low: float, q_high: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Trailing quantiles and percentile rank of the latest value.

    Quantiles ``q_low``, ``q_high`` interpolate linearly (as pandas); the rank is the
    percentile rank of the latest value in its window (average rank of ties / w, as
    ``pandas.Series.rolling(w).rank(pct=True)``).
    """
    n, t = x.shape
    lo_out = np.full((n, t), np.nan)
    hi_out = np.full((n, t), np.nan)
    rank_out = np.full((n, t), np.nan)
    for i in prange(n):
        buf = np.empty(w + 1)
        m = 0
        nan = 0
        for j in range(t):
            v = x[i, j]
            if np.isnan(v):
                nan += 1
            else:
                _insert(buf, m, v)
                m += 1
            if j >= w:
                o = x[i, j - w]
                if np.isnan(o):
                    nan -= 1
                else:
                    _remove(buf, m, o)
                    m -= 1
            if j >= w - 1 and nan == 0:
                lo_out[i, j] = _quantile(buf, w, q_low)
                hi_out[i, j] = _quantile(buf, w, q_high)
                left = np.searchsorted(buf[:m], v)
                right = np.searchsorted(buf[:m], v, side="right")
                rank_out[i, j] = (left + (right - left + 1) / 2.0) / w
    return lo_out, hi_out, rank_out


def _rolling_linreg_py(  # pragma: no cover - compiled
    y: np.ndarray, w: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Least-squares line of each window on time 0..w-1.

    Returns the slope (per session), R² and the residual of the latest value.
    """
    n, t = y.shape
    slope = np.full((n, t), np.nan)
    rsq = np.full((n, t), np.nan)
    resi = np.full((n, t), np.nan)
    sx = w * (w - 1) / 2.0
    sxx = (w - 1) * w * (2 * w - 1) / 6.0
    den_x = w * sxx - sx * sx
    for i in prange(n):
        row = y[i]
        ref = _first_finite(row)
        sy = 0.0
        syy = 0.0
        sxy = 0.0
        b2 = 0.0  # sum of the syy passed through since the last recomputation
        steps = 0
        nan = 0
        for j in range(t):
            v = row[j]
            d = 0.0 if np.isnan(v) else v - ref
            if np.isnan(v):
                nan += 1
            if j >= w:
                o = row[j - w]
                do = 0.0 if np.isnan(o) else o - ref
                if np.isnan(o):
                    nan -= 1
                # shift every x index down by one, drop the oldest (x = 0), add the newest.
                sxy = sxy - (sy - do) + (w - 1) * d
                sy = sy - do + d
                b2 += syy + d * d
                syy = syy - do * do + d * d
            else:
                sxy += j * d
                sy += d
                syy += d * d
                b2 += syy
            steps += 1
            if j >= w - 1 and nan == 0:
                m2 = syy - sy * sy / w
                # the slope's and residual's error bounds are multiples of the variance's
                if not 2.0 * _ERR * (b2 + (steps + 1) * syy) <= _TOL * m2:
                    ref = _anchor(row, j, w)
                    sy = 0.0
                    syy = 0.0
                    sxy = 0.0
                    for m in range(w):
                        dm = row[j - w + 1 + m] - ref
                        sy += dm
                        syy += dm * dm
                        sxy += m * dm
                    b2 = 0.0
                    steps = 0
                    d = v - ref
                    m2 = syy - sy * sy / w
                num = w * sxy - sx * sy
                b = num / den_x
                slope[i, j] = b
                resi[i, j] = d - (sy / w - b * sx / w + b * (w - 1))
                if m2 > 0.0:
                    rsq[i, j] = num * num / (den_x * w * m2)
    return slope, rsq, resi


def _rolling_corr_py(  # pragma: no cover - compiled
    x: np.ndarray, y: np.ndarray, w: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Trailing Pearson correlation of ``x`` and ``y`` and their sample standard deviations.

    The correlation is NaN where either window has zero variance (as pandas).
    """
    n, t = x.shape
    corr = np.full((n, t), np.nan)
    sdx = np.full((n, t), np.nan)
    sdy = np.full((n, t), np.nan)
    for i in prange(n):
        xr = x[i]
        yr = y[i]
        rx = _first_finite(xr)
        ry = _first_finite(yr)
        s_x = 0.0
        s_y = 0.0
        s_xx = 0.0
        s_yy = 0.0
        s_xy = 0.0
        b_xx = 0.0  # sums of the s_xx, s_yy passed through since the last recomputation;
        b_yy = 0.0  # by Cauchy-Schwarz they also bound the error of s_xy
        steps = 0
        nan = 0
        for j in range(t):
            a = xr[j]
            b = yr[j]
            if np.isnan(a) or np.isnan(b):
                nan += 1
            else:
                da = a - rx
                db = b - ry
                s_x += da
                s_y += db
                s_xx += da * da
                s_yy += db * db
                s_xy += da * db
            b_xx += s_xx
            b_yy += s_yy
            if j >= w:
                a = xr[j - w]
                b = yr[j - w]
                if np.isnan(a) or np.isnan(b):
                    nan -= 1
                else:
                    da = a - rx
                    db = b - ry
                    s_x -= da
                    s_y -= db
                    s_xx -= da * da
                    s_yy -= db * db
                    s_xy -= da * db
            steps += 1
            if j >= w - 1 and nan == 0:
                mx = s_xx - s_x * s_x / w
                my = s_yy - s_y * s_y / w
                if not (
                    _ERR * (b_xx + (steps + 1) * s_xx) <= _TOL * mx
                    and _ERR * (b_yy + (steps + 1) * s_yy) <= _TOL * my
                ):
                    rx = _anchor(xr, j, w)
                    ry = _anchor(yr, j, w)
                    s_x = 0.0
                    s_y = 0.0
                    s_xx = 0.0
                    s_yy = 0.0
                    s_xy = 0.0
                    for k in range(j - w + 1, j + 1):
                        da = xr[k] - rx
                        db = yr[k] - ry
                        s_x += da
                        s_y += db
                        s_xx += da * da
                        s_yy += db * db
                        s_xy += da * db
                    b_xx = 0.0
                    b_yy = 0.0
                    steps = 0
                    mx = s_xx - s_x * s_x / w
                    my = s_yy - s_y * s_y / w
                mx = mx if not mx < 0.0 else 0.0
                my = my if not my < 0.0 else 0.0
                sdx[i, j] = np.sqrt(mx / (w - 1))
                sdy[i, j] = np.sqrt(my / (w - 1))
                if mx > 0.0 and my > 0.0:
                    corr[i, j] = (s_xy - s_x * s_y / w) / np.sqrt(mx * my)
    return corr, sdx, sdy


def shift(x: np.ndarray, k: int) -> np.ndarray:
    """Value ``k`` sessions earlier (``k >= 0``); NaN where there is none."""
    out = np.full_like(x, np.nan)
    if k == 0:
        out[:] = x
    elif k < x.shape[1]:
        out[:, k:] = x[:, :-k]
    return out


@njit(cache=True)
def hmm_filter(loglik: np.ndarray, trans: np.ndarray, start: np.ndarray) -> np.ndarray:
    """Most likely HMM state at each step given the steps up to it (forward algorithm).

    ``loglik``: ``(n_steps, k)`` emission log-likelihoods; ``trans``: ``(k, k)`` transition
    matrix; ``start``: initial state probabilities. Never looks at later steps.
    """
    n, k = loglik.shape
    out = np.empty(n, dtype=np.int64)
    alpha = np.empty(k)
    new = np.empty(k)
    for j in range(k):
        alpha[j] = np.log(max(start[j], 1e-300)) + loglik[0, j]
    out[0] = np.argmax(alpha)
    for t in range(1, n):
        m = np.max(alpha)
        p = np.exp(alpha - m)
        for j in range(k):
            acc = 0.0
            for i in range(k):
                acc += p[i] * trans[i, j]
            new[j] = np.log(max(acc, 1e-300)) + m + loglik[t, j]
        alpha[:] = new
        out[t] = np.argmax(alpha)
    return out


# Each kernel is compiled twice: threads pay off on big matrices, but waking the pool costs
# milliseconds, which dominates on the small windows of the live loop and the leak detector.
_PARALLEL_MIN_CELLS = 200_000


def _pair(fn: Any) -> tuple[Any, Any]:
    return njit(cache=True)(fn), njit(parallel=True, cache=True)(fn)


_SUM = _pair(_rolling_sum_py)
_STD = _pair(_rolling_std_py)
_EXTREME = _pair(_rolling_extreme_py)
_SORTED = _pair(_rolling_sorted_stats_py)
_LINREG = _pair(_rolling_linreg_py)
_CORR = _pair(_rolling_corr_py)


def _dispatch(pair: tuple[Any, Any], x: np.ndarray, *args: Any) -> Any:
    x = np.ascontiguousarray(x, dtype=np.float64)
    fn = pair[1] if x.size >= _PARALLEL_MIN_CELLS else pair[0]
    return fn(x, *args)


def rolling_sum(x: np.ndarray, w: int) -> np.ndarray:
    """Trailing ``w``-session sum (exactly 0 for an all-zero window)."""
    out: np.ndarray = _dispatch(_SUM, x, w)
    return out


def rolling_std(x: np.ndarray, w: int) -> np.ndarray:
    """Trailing ``w``-session sample standard deviation (``ddof=1``, as pandas)."""
    out: np.ndarray = _dispatch(_STD, x, w)
    return out


def rolling_sorted_stats(
    x: np.ndarray, w: int, q_low: float, q_high: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Trailing quantiles and percentile rank of the latest value.

    Quantiles ``q_low``, ``q_high`` interpolate linearly (as pandas); the rank is the
    percentile rank of the latest value in its window (average rank of ties / w, as
    ``pandas.Series.rolling(w).rank(pct=True)``).
    """
    out: tuple[np.ndarray, np.ndarray, np.ndarray] = _dispatch(_SORTED, x, w, q_low, q_high)
    return out


def rolling_linreg(y: np.ndarray, w: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Least-squares line of each window on time 0..w-1.

    Returns the slope (per session), R² and the residual of the latest value.
    """
    out: tuple[np.ndarray, np.ndarray, np.ndarray] = _dispatch(_LINREG, y, w)
    return out


def rolling_corr(x: np.ndarray, y: np.ndarray, w: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Trailing Pearson correlation of ``x`` and ``y`` and their sample standard deviations.

    The correlation is NaN where either window has zero variance (as pandas).
    """
    y = np.ascontiguousarray(y, dtype=np.float64)
    out: tuple[np.ndarray, np.ndarray, np.ndarray] = _dispatch(_CORR, x, y, w)
    return out


def _scatter_py(mat: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover - compiled
    n, t = mat.shape
    for j in prange(t):
        base = j * n
        for i in range(n):
            v = mat[i, j]
            out[base + i] = v if np.isfinite(v) else np.nan


_SCATTER = _pair(_scatter_py)


def _scatter_rows_py(
    mat: np.ndarray, dest: np.ndarray, out: np.ndarray
) -> None:  # pragma: no cover
    n, t = mat.shape
    for j in prange(t):
        base = j * n
        for i in range(n):
            d = dest[base + i]
            if d >= 0:
                v = mat[i, j]
                out[d] = v if np.isfinite(v) else np.nan


_SCATTER_ROWS = _pair(_scatter_rows_py)


def scatter_rows(mat: np.ndarray, dest: np.ndarray, out: np.ndarray) -> None:
    """As :func:`scatter_column`, but cell ``t * n_symbols + i`` goes to row ``dest[...]``.

    ``dest`` (int64, one entry per session-major cell) is the output row of each cell, or
    -1 for a cell that is left out: the feature matrix holds only the rows it keeps.
    """
    mat = np.ascontiguousarray(mat, dtype=np.float64)
    fn = _SCATTER_ROWS[1] if mat.size >= _PARALLEL_MIN_CELLS else _SCATTER_ROWS[0]
    fn(mat, dest, out)


def scatter_column(mat: np.ndarray, out: np.ndarray) -> None:
    """Write a ``symbol x session`` matrix into a session-major column; inf becomes NaN.

    ``out`` is a 1-D view (e.g. one column of the feature matrix, any dtype) of length
    ``n_sessions * n_symbols``: row ``t * n_symbols + i`` gets ``mat[i, t]``.
    """
    mat = np.ascontiguousarray(mat, dtype=np.float64)
    fn = _SCATTER[1] if mat.size >= _PARALLEL_MIN_CELLS else _SCATTER[0]
    fn(mat, out)
