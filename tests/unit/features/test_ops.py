"""Rolling operators against a two-pass float64 computation on each window.

The hard case for running sums is a value far outside the usual range: its rounding residue
stays in the sums after it leaves the window. Each operator sees a spike of 1e10 followed by
5,000 ordinary sessions and must equal numpy on every window, to within a few 1e-12 of the
window's own scale.
"""

from __future__ import annotations

import numpy as np
import pytest

from py_finance.features.ops import (
    rolling_corr,
    rolling_linreg,
    rolling_mean,
    rolling_std,
    rolling_sum,
)

N_ORDINARY = 5_000
WINDOWS = (2, 5, 20, 60)
TOL = 1e-11  # relative to the window's scale (its std, or its sum of absolute values)
EPS = np.finfo(float).eps


def slack(win: np.ndarray) -> np.ndarray:
    """The reference's own rounding: a two-pass sum is off by a few ulps of the window's level."""
    return 8 * EPS * np.abs(win).max(axis=-1)


def windows(x: np.ndarray, w: int) -> np.ndarray:
    return np.lib.stride_tricks.sliding_window_view(x, w, axis=-1)


def spiked(kind: str, spike: float, at: int, seed: int = 0, n: int = 0) -> np.ndarray:
    """``at`` ordinary sessions, the spike, then ``n - at - 1`` (default N_ORDINARY) more."""
    rng = np.random.default_rng(seed)
    n = n or at + 1 + N_ORDINARY
    if kind == "returns":
        x = rng.normal(0.0, 0.01, n)
    elif kind == "prices":
        x = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, n)))
    else:  # volume x |return|: positive, skewed
        x = np.abs(rng.normal(0.0, 0.02, n)) * rng.lognormal(13.0, 0.6, n)
    x[at] = spike
    return x


def cases() -> list[tuple[str, float, int]]:
    return [
        (kind, spike, at)
        for kind in ("returns", "prices", "wv")
        for spike, at in ((1e10, 100), (-1e10, 100), (1e10, 0))
    ]


@pytest.fixture(scope="module", params=cases(), ids=lambda c: f"{c[0]}-{c[1]:g}-at{c[2]}")
def series(request):
    kind, spike, at = request.param
    return spiked(kind, spike, at)


def full(x: np.ndarray, w: int) -> slice:
    return slice(w - 1, x.size)


@pytest.mark.parametrize("w", WINDOWS)
def test_sum_and_mean_equal_numpy_on_every_window_after_a_spike(series, w):
    win = windows(series, w)
    scale = np.abs(win).sum(axis=1)
    got = rolling_sum(series[None, :], w)[0, full(series, w)]
    assert np.all(np.abs(got - win.sum(axis=1)) <= TOL * scale)
    mean = rolling_mean(series[None, :], w)[0, full(series, w)]
    assert np.all(np.abs(mean - win.mean(axis=1)) <= TOL * scale / w)


@pytest.mark.parametrize("w", WINDOWS)
def test_std_equals_numpy_on_every_window_after_a_spike(series, w):
    win = windows(series, w)
    expected = win.std(axis=1, ddof=1)
    got = rolling_std(series[None, :], w)[0, full(series, w)]
    assert np.all(np.abs(got - expected) <= TOL * expected + slack(win))


@pytest.mark.parametrize("w", WINDOWS)
def test_corr_and_its_stds_equal_numpy_on_every_window_after_a_spike(series, w):
    # the partner has its own spike elsewhere, so both sides' sums are stressed
    other = spiked("returns", 3e9, 2_000, seed=1, n=series.size)
    corr, sdx, sdy = (a[0, full(series, w)] for a in rolling_corr(series[None], other[None], w))
    wx, wy = windows(series, w), windows(other, w)
    dx = wx - wx.mean(axis=1, keepdims=True)
    dy = wy - wy.mean(axis=1, keepdims=True)
    expected = (dx * dy).sum(axis=1) / np.sqrt((dx * dx).sum(axis=1) * (dy * dy).sum(axis=1))
    sx, sy = wx.std(axis=1, ddof=1), wy.std(axis=1, ddof=1)
    assert np.all(np.abs(sdx - sx) <= TOL * sx + slack(wx))
    assert np.all(np.abs(sdy - sy) <= TOL * sy + slack(wy))
    assert np.all(np.abs(corr - expected) <= TOL + slack(wx) / sx + slack(wy) / sy)


@pytest.mark.parametrize("w", WINDOWS)
def test_linreg_equals_a_two_pass_fit_on_every_window_after_a_spike(series, w):
    slope, rsq, resi = (a[0, full(series, w)] for a in rolling_linreg(series[None], w))
    win = windows(series, w)
    t = np.arange(w) - (w - 1) / 2.0
    dy = win - win.mean(axis=1, keepdims=True)
    b = (dy * t).sum(axis=1) / (t * t).sum()
    sd_y = win.std(axis=1, ddof=1)
    sd_t = np.sqrt((t * t).sum() / (w - 1))
    # slope and residual in units of the window's own spread
    tol = TOL * sd_y + slack(win)
    assert np.all(np.abs(slope - b) * sd_t <= tol)
    assert np.all(np.abs(resi - (dy[:, -1] - b * t[-1])) <= tol)
    expected_rsq = (dy * t).sum(axis=1) ** 2 / ((t * t).sum() * (dy * dy).sum(axis=1))
    assert np.all(np.abs(rsq - expected_rsq) <= tol / sd_y)


def test_results_do_not_depend_on_where_the_history_starts():
    """The symptom of a residue: the same window gave another value when started later."""
    x = spiked("wv", 7e10, 300)
    late = 500  # well after the spike
    for w in (5, 10, 60):
        a = rolling_std(x[None], w)[0, late + w - 1 :]
        b = rolling_std(x[None, late:], w)[0, w - 1 :]
        np.testing.assert_allclose(a, b, rtol=TOL, atol=0)
        a_sum = rolling_sum(x[None], w)[0, late + w - 1 :]
        b_sum = rolling_sum(x[None, late:], w)[0, w - 1 :]
        np.testing.assert_allclose(a_sum, b_sum, rtol=TOL, atol=0)
        for a_out, b_out in zip(
            rolling_linreg(x[None], w), rolling_linreg(x[None, late:], w), strict=True
        ):
            np.testing.assert_allclose(
                a_out[0, late + w - 1 :], b_out[0, w - 1 :], rtol=1e-9, atol=TOL * x.std()
            )


def test_flat_and_zero_windows_after_a_spike_are_exactly_zero():
    x = spiked("prices", 1e10, 100)
    x[3_000:3_100] = 0.1  # a flat stretch whose mean does not round back to 0.1
    z = spiked("wv", 1e10, 100)
    z[3_000:3_100] = 0.0
    for w in (3, 5, 60):
        assert np.all(rolling_std(x[None], w)[0, 3_000 + w - 1 : 3_100] == 0.0)
        _, sdx, _ = rolling_corr(x[None], z[None], w)
        assert np.all(sdx[0, 3_000 + w - 1 : 3_100] == 0.0)
        slope, _, resi = rolling_linreg(x[None], w)
        assert np.all(slope[0, 3_000 + w - 1 : 3_100] == 0.0)
        assert np.all(resi[0, 3_000 + w - 1 : 3_100] == 0.0)
        assert np.all(rolling_sum(z[None], w)[0, 3_000 + w - 1 : 3_100] == 0.0)


def test_many_rows_in_parallel_give_the_same_values_as_one_row():
    # 50 rows x 5,101 sessions is above the threshold for the threaded kernels
    rows = np.stack([spiked("wv", 1e10, 100 + 7 * i, seed=i)[:5_101] for i in range(50)])
    for w in (5, 60):
        many = rolling_std(rows, w)
        for i in (0, 17, 49):
            np.testing.assert_array_equal(many[i], rolling_std(rows[i : i + 1], w)[0])


def test_an_infinite_value_spoils_only_the_windows_that_hold_it():
    x = spiked("returns", 1e10, 100)
    x[200] = np.inf
    w = 5
    std = rolling_std(x[None], w)[0]
    total = rolling_sum(x[None], w)[0]
    corr, _, _ = rolling_corr(x[None], x[None] ** 2, w)
    slope, _, _ = rolling_linreg(x[None], w)
    assert np.isnan(std[200 : 200 + w]).all()
    assert np.isinf(total[200 : 200 + w]).all()
    after = slice(200 + w, None)
    expected = windows(x, w)[200 + 1 :].std(axis=1, ddof=1)
    np.testing.assert_allclose(std[after], expected, rtol=TOL)
    np.testing.assert_allclose(total[after], windows(x, w).sum(axis=1)[201:], rtol=1e-9)
    assert np.isfinite(corr[after]).all() and np.isfinite(slope[after]).all()


def test_a_window_with_a_missing_value_is_missing():
    x = spiked("prices", 1e10, 100)
    x[1_000] = np.nan
    w = 10
    for out in (
        rolling_sum(x[None], w)[0],
        rolling_std(x[None], w)[0],
        rolling_corr(x[None], x[None], w)[0][0],
        *(a[0] for a in rolling_linreg(x[None], w)),
    ):
        assert np.isnan(out[1_000 : 1_000 + w]).all()
        assert not np.isnan(out[1_000 + w : 1_000 + 2 * w]).any()
    np.testing.assert_allclose(
        rolling_std(x[None], w)[0, 1_000 + w :],
        windows(x, w).std(axis=1, ddof=1)[1_001:],
        rtol=TOL,
    )
