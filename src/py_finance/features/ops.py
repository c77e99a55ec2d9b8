"""Trailing-window operators on ``symbol x session`` float64 matrices, compiled with numba.

Every kernel takes ``x`` of shape ``(n_symbols, n_sessions)`` (one contiguous row per
symbol, oldest session first) and returns arrays of the same shape. The value at session t
uses ``x[:, t - w + 1 : t + 1]`` only, so every operator is causal. A window that contains
a NaN gives NaN (no partial windows), so a name's warm-up and any gap in its history are
explicit. Rows are processed in parallel (``numba.prange``); sums are kept running (O(1) per
step) and order statistics use a sorted window buffer (O(w) per step).

Running sums are taken on values minus the row's first finite value, which keeps variances
and regression sums well conditioned for price levels far from zero. Where a running
variance is tiny next to the window's second moment (a flat or nearly flat window, where
cancellation would leave only rounding noise), it is recomputed exactly from the window, so
a constant window gives exactly 0 whatever session the computation started at.
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


# Running variance below this fraction of the mean square is recomputed from the window.
_SUSPECT = 1e-7


@njit(cache=True)
def _window_cov(x: np.ndarray, y: np.ndarray, j: int, w: int) -> float:
    """Two-pass sample covariance of ``x[j-w+1..j]`` and ``y[j-w+1..j]``."""
    mx = 0.0
    my = 0.0
    for m in range(j - w + 1, j + 1):
        mx += x[m]
        my += y[m]
    mx /= w
    my /= w
    acc = 0.0
    for m in range(j - w + 1, j + 1):
        acc += (x[m] - mx) * (y[m] - my)
    return acc / (w - 1)


def _rolling_sum_py(x: np.ndarray, w: int) -> np.ndarray:  # pragma: no cover - compiled
    """Trailing ``w``-session sum (exactly 0 for an all-zero window)."""
    n, t = x.shape
    out = np.full((n, t), np.nan)
    for i in prange(n):
        s = 0.0
        nan = 0
        nonzero = 0
        for j in range(t):
            v = x[i, j]
            if np.isnan(v):
                nan += 1
            else:
                s += v
                nonzero += v != 0.0
            if j >= w:
                o = x[i, j - w]
                if np.isnan(o):
                    nan -= 1
                else:
                    s -= o
                    nonzero -= o != 0.0
            if nonzero == 0:
                s = 0.0  # drop the rounding residue of earlier values
            if j >= w - 1 and nan == 0:
                out[i, j] = s
    return out


def rolling_mean(x: np.ndarray, w: int) -> np.ndarray:
    """Trailing ``w``-session mean."""
    return rolling_sum(x, w) / float(w)


def _rolling_std_py(x: np.ndarray, w: int) -> np.ndarray:  # pragma: no cover - compiled
    """Trailing ``w``-session sample standard deviation (``ddof=1``, as pandas)."""
    n, t = x.shape
    out = np.full((n, t), np.nan)
    for i in prange(n):
        ref = _first_finite(x[i])
        s1 = 0.0
        s2 = 0.0
        nan = 0
        for j in range(t):
            v = x[i, j]
            if np.isnan(v):
                nan += 1
            else:
                d = v - ref
                s1 += d
                s2 += d * d
            if j >= w:
                o = x[i, j - w]
                if np.isnan(o):
                    nan -= 1
                else:
                    d = o - ref
                    s1 -= d
                    s2 -= d * d
            if j >= w - 1 and nan == 0:
                var = (s2 - s1 * s1 / w) / (w - 1)
                if var <= _SUSPECT * s2 / w:
                    var = _window_cov(x[i], x[i], j, w)
                out[i, j] = np.sqrt(var) if var > 0.0 else 0.0
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
        ref = _first_finite(y[i])
        sy = 0.0
        syy = 0.0
        sxy = 0.0
        nan = 0
        for j in range(t):
            v = y[i, j]
            d = 0.0 if np.isnan(v) else v - ref
            if np.isnan(v):
                nan += 1
            if j >= w:
                o = y[i, j - w]
                do = 0.0 if np.isnan(o) else o - ref
                if np.isnan(o):
                    nan -= 1
                # shift every x index down by one, drop the oldest (x = 0), add the newest.
                sxy = sxy - (sy - do) + (w - 1) * d
                sy = sy - do + d
                syy = syy - do * do + d * d
            else:
                sxy += j * d
                sy += d
                syy += d * d
            if j >= w - 1 and nan == 0:
                den_y = w * syy - sy * sy
                if den_y > _SUSPECT * w * syy:
                    num = w * sxy - sx * sy
                    b = num / den_x
                    slope[i, j] = b
                    resi[i, j] = d - (sy / w - b * sx / w + b * (w - 1))
                    rsq[i, j] = num * num / (den_x * den_y)
                else:  # flat window: exact two-pass from the window itself
                    ybar = 0.0
                    for m in range(w):
                        ybar += y[i, j - w + 1 + m]
                    ybar /= w
                    xbar = (w - 1) / 2.0
                    ctt = 0.0
                    cty = 0.0
                    cyy = 0.0
                    for m in range(w):
                        dy = y[i, j - w + 1 + m] - ybar
                        ctt += (m - xbar) * (m - xbar)
                        cty += (m - xbar) * dy
                        cyy += dy * dy
                    b = cty / ctt
                    slope[i, j] = b
                    resi[i, j] = (y[i, j] - ybar) - b * ((w - 1) - xbar)
                    if cyy > 0.0:
                        rsq[i, j] = cty * cty / (ctt * cyy)
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
        rx = _first_finite(x[i])
        ry = _first_finite(y[i])
        s_x = 0.0
        s_y = 0.0
        s_xx = 0.0
        s_yy = 0.0
        s_xy = 0.0
        nan = 0
        for j in range(t):
            a = x[i, j]
            b = y[i, j]
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
            if j >= w:
                a = x[i, j - w]
                b = y[i, j - w]
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
            if j >= w - 1 and nan == 0:
                vx = (s_xx - s_x * s_x / w) / (w - 1)
                vy = (s_yy - s_y * s_y / w) / (w - 1)
                cov = (s_xy - s_x * s_y / w) / (w - 1)
                if vx <= _SUSPECT * s_xx / w or vy <= _SUSPECT * s_yy / w:
                    vx = _window_cov(x[i], x[i], j, w)
                    vy = _window_cov(y[i], y[i], j, w)
                    cov = _window_cov(x[i], y[i], j, w)
                vx = vx if vx > 0.0 else 0.0
                vy = vy if vy > 0.0 else 0.0
                sdx[i, j] = np.sqrt(vx)
                sdy[i, j] = np.sqrt(vy)
                if vx > 0.0 and vy > 0.0:
                    corr[i, j] = cov / np.sqrt(vx * vy)
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


def scatter_column(mat: np.ndarray, out: np.ndarray) -> None:
    """Write a ``symbol x session`` matrix into a session-major column; inf becomes NaN.

    ``out`` is a 1-D view (e.g. one column of the feature matrix, any dtype) of length
    ``n_sessions * n_symbols``: row ``t * n_symbols + i`` gets ``mat[i, t]``.
    """
    mat = np.ascontiguousarray(mat, dtype=np.float64)
    fn = _SCATTER[1] if mat.size >= _PARALLEL_MIN_CELLS else _SCATTER[0]
    fn(mat, out)
