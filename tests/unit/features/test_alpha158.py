"""Every Alpha158 column against a direct per-symbol pandas computation on random data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from py_finance.errors import ConfigError
from py_finance.features.alpha158 import KBAR, ROLLING
from py_finance.features.technical import FeatureConfig, build_features

WINDOWS = (5, 10, 20, 30, 60)
N_SESSIONS = 150


def ohlcv(n=N_SESSIONS, symbols=("A", "B", "C"), seed=0, nan_at=None):
    rng = np.random.default_rng(seed)
    idx = pd.bdate_range("2015-01-05", periods=n)
    frames = {}
    close = 50 * np.exp(np.cumsum(rng.normal(0, 0.02, (n, len(symbols))), axis=0))
    open_ = close * np.exp(rng.normal(0, 0.01, close.shape))
    high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0, 0.01, close.shape)))
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0, 0.01, close.shape)))
    volume = np.round(rng.lognormal(12, 0.5, close.shape))
    vwap = (high + low + close) / 3
    for name, arr in dict(
        open=open_, high=high, low=low, close=close, volume=volume, vwap=vwap
    ).items():
        frames[name] = pd.DataFrame(arr, index=idx, columns=list(symbols))
    # ties matter for RANK / IMAX: repeat a value a few times
    frames["close"].iloc[40:43, 0] = frames["close"].iloc[39, 0]
    if nan_at is not None:
        for f in frames.values():
            f.iloc[nan_at, 1] = np.nan
    return frames


def _slope(y):
    return np.polyfit(np.arange(len(y)), y, 1)[0]


def _rsq(y):
    x = np.arange(len(y))
    return np.corrcoef(x, y)[0, 1] ** 2


def _resi(y):
    x = np.arange(len(y))
    b, a = np.polyfit(x, y, 1)
    return y[-1] - (a + b * x[-1])


def reference(frames, symbol):
    """Qlib's Alpha158 expressions for one symbol, written directly with pandas rolling."""
    o, h, lo, c, v, vw = (
        frames[f][symbol] for f in ("open", "high", "low", "close", "volume", "vwap")
    )
    out = {
        "KMID": (c - o) / o,
        "KLEN": (h - lo) / o,
        "KMID2": (c - o) / (h - lo + 1e-12),
        "KUP": (h - np.maximum(o, c)) / o,
        "KUP2": (h - np.maximum(o, c)) / (h - lo + 1e-12),
        "KLOW": (np.minimum(o, c) - lo) / o,
        "KLOW2": (np.minimum(o, c) - lo) / (h - lo + 1e-12),
        "KSFT": (2 * c - h - lo) / o,
        "KSFT2": (2 * c - h - lo) / (h - lo + 1e-12),
        "OPEN0": o / c,
        "HIGH0": h / c,
        "LOW0": lo / c,
        "VWAP0": vw / c,
    }
    dc = c - c.shift(1)
    dv = v - v.shift(1)
    for d in WINDOWS:
        r = lambda s, d=d: s.rolling(d, min_periods=d)  # noqa: E731
        std = r(c).std()
        out[f"ROC{d}"] = c.shift(d) / c
        out[f"MA{d}"] = r(c).mean() / c
        out[f"STD{d}"] = std / c
        out[f"BETA{d}"] = r(c).apply(_slope, raw=True) / c
        out[f"RSQR{d}"] = r(c).apply(_rsq, raw=True).where(std > 2e-5)
        out[f"RESI{d}"] = r(c).apply(_resi, raw=True) / c
        out[f"MAX{d}"] = r(h).max() / c
        out[f"MIN{d}"] = r(lo).min() / c
        out[f"QTLU{d}"] = r(c).quantile(0.8) / c
        out[f"QTLD{d}"] = r(c).quantile(0.2) / c
        out[f"RANK{d}"] = r(c).rank(pct=True)
        out[f"RSV{d}"] = (c - r(lo).min()) / (r(h).max() - r(lo).min() + 1e-12)
        out[f"IMAX{d}"] = r(h).apply(lambda x: x.argmax() + 1, raw=True) / d
        out[f"IMIN{d}"] = r(lo).apply(lambda x: x.argmin() + 1, raw=True) / d
        out[f"IMXD{d}"] = out[f"IMAX{d}"] - out[f"IMIN{d}"]
        out[f"CORR{d}"] = r(c).corr(np.log(v + 1))
        # as Qlib: these element-wise expressions are evaluated in float32
        c32, v32 = c.astype("float32"), v.astype("float32")
        ratio32 = (c32 / c32.shift(1)).astype(float)
        out[f"CORD{d}"] = r(ratio32).corr(np.log(v32 / v32.shift(1) + np.float32(1)).astype(float))
        up = (dc > 0).astype(float).where(dc.notna())
        down = (dc < 0).astype(float).where(dc.notna())
        out[f"CNTP{d}"] = r(up).mean()
        out[f"CNTN{d}"] = r(down).mean()
        out[f"CNTD{d}"] = r(up).mean() - r(down).mean()
        tot = r(dc.abs()).sum() + 1e-12
        out[f"SUMP{d}"] = r(dc.clip(lower=0)).sum() / tot
        out[f"SUMN{d}"] = r((-dc).clip(lower=0)).sum() / tot
        out[f"SUMD{d}"] = (r(dc.clip(lower=0)).sum() - r((-dc).clip(lower=0)).sum()) / tot
        out[f"VMA{d}"] = r(v).mean() / (v + 1e-12)
        out[f"VSTD{d}"] = r(v).std() / (v + 1e-12)
        wv = (c / c.shift(1) - 1).abs() * v
        out[f"WVMA{d}"] = r(wv).std() / (r(wv).mean() + 1e-12)
        vt = r(dv.abs()).sum() + 1e-12
        out[f"VSUMP{d}"] = r(dv.clip(lower=0)).sum() / vt
        out[f"VSUMN{d}"] = r((-dv).clip(lower=0)).sum() / vt
        out[f"VSUMD{d}"] = (r(dv.clip(lower=0)).sum() - r((-dv).clip(lower=0)).sum()) / vt
    return pd.DataFrame(out)


CFG = FeatureConfig(
    name="alpha158",
    momentum_windows=(),
    volatility_windows=(),
    zscore=False,
    dtype="float64",
    groups=({"kind": "alpha158"},),
    dropna="none",
)


@pytest.fixture(scope="module")
def computed():
    frames = ohlcv(nan_at=100)
    return frames, build_features(frames, CFG)


def test_full_ohlcv_gives_qlibs_158_columns_in_qlibs_order(computed):
    _, feats = computed
    assert len(feats.columns) == 158
    assert list(feats.columns[:9]) == list(KBAR)
    assert list(feats.columns[13:18]) == [f"ROC{d}" for d in WINDOWS]
    assert feats.columns[-1] == "VSUMD60"


@pytest.mark.parametrize("op", ["KBAR", "PRICE", *ROLLING])
def test_operator_matches_a_direct_per_symbol_pandas_computation(computed, op):
    frames, feats = computed
    for symbol in ("A", "B"):
        ref = reference(frames, symbol)
        ours = feats.xs(symbol, level="symbol")
        cols = [
            c
            for c in ref.columns
            if c.rstrip("0123456789") == op
            or (op == "KBAR" and c in KBAR)
            or (op == "PRICE" and c in ("OPEN0", "HIGH0", "LOW0", "VWAP0"))
        ]
        assert cols, op
        for col in cols:
            expected = ref[col]
            got = ours[col]
            # NaN exactly where the reference has no full window (incl. the gap in B)
            assert (got.isna() == expected.isna()).all(), (symbol, col)
            np.testing.assert_allclose(
                got, expected, rtol=1e-7, atol=1e-9, err_msg=f"{symbol} {col}"
            )


def test_close_only_data_keeps_the_close_based_operators():
    frames = ohlcv()
    feats = build_features(frames["close"], CFG)
    ops = {c.rstrip("0123456789") for c in feats.columns}
    assert ops == {op for op, fields in ROLLING.items() if fields == ("close",)}
    assert not any(c.startswith(("K", "VMA", "CORR", "MAX")) for c in feats.columns)


def test_include_and_exclude_select_operators():
    cfg = FeatureConfig(
        momentum_windows=(),
        volatility_windows=(),
        groups=({"kind": "alpha158", "include": ["ROC", "MA"], "windows": [5], "kbar": False},),
        zscore=False,
    )
    feats = build_features(ohlcv(), cfg)
    assert set(feats.columns) == {"ROC5", "MA5", "OPEN0", "HIGH0", "LOW0", "VWAP0"}
    with pytest.raises(ConfigError):
        FeatureConfig(groups=({"kind": "alpha158", "exclude": ["NOPE"]},))


def _two_pass_wvma(close: np.ndarray, volume: np.ndarray, d: int) -> np.ndarray:
    """Qlib's ``Std(wv, d) / (Mean(wv, d) + 1e-12)``, ``wv = |close / close[-1] - 1| * volume``,
    two-pass in float64 on every window (sessions x symbols)."""
    from numpy.lib.stride_tricks import sliding_window_view

    wv = np.abs(close[1:] / close[:-1] - 1.0) * volume[1:]
    win = sliding_window_view(wv, d, axis=0)
    mean = win.mean(axis=2)
    std = np.sqrt(((win - mean[..., None]) ** 2).sum(axis=2) / (d - 1))
    out = np.full(close.shape, np.nan)
    out[d:] = std / (mean + 1e-12)
    return out


def test_wvma_equals_its_float64_formula_at_every_window_from_2_to_60():
    # Cent prices (small and zero returns, a flat stretch) and large volumes: in float32,
    # |close / close[-1] - 1| keeps few digits of a small return and std/mean over two
    # sessions amplifies it (3e-6 relative in the median at window 2, 3e-2 at worst here).
    rng = np.random.default_rng(3)
    n, k = 1200, 20
    idx = pd.bdate_range("2010-01-04", periods=n)
    close = np.round(50 * np.exp(np.cumsum(rng.normal(0, 0.02, (n, k)), axis=0)), 2)
    close[300:330, 0] = close[299, 0]
    volume = np.round(rng.lognormal(13, 0.7, (n, k)))
    cols = [f"S{i:02d}" for i in range(k)]
    frames = {"close": pd.DataFrame(close, idx, cols), "volume": pd.DataFrame(volume, idx, cols)}
    windows = list(range(2, 61))
    cfg = FeatureConfig(
        name="wvma",
        momentum_windows=(),
        volatility_windows=(),
        zscore=False,
        dtype="float32",
        groups=(
            {
                "kind": "alpha158",
                "windows": windows,
                "kbar": False,
                "price": [],
                "include": ["WVMA"],
            },
        ),
        dropna="none",
    )
    feats = build_features(frames, cfg)
    for d in windows:
        got = feats[f"WVMA{d}"].unstack("symbol").to_numpy(dtype=np.float64)
        expected = _two_pass_wvma(close, volume, d)
        assert (np.isnan(got) == np.isnan(expected)).all(), d
        # stored as float32: the rounding of the store, nothing more
        np.testing.assert_allclose(got, expected, rtol=2.0**-23, atol=1e-12, err_msg=f"WVMA{d}")
    assert (feats["WVMA2"].unstack("symbol")["S00"].iloc[302:330] == 0.0).all()
