"""The Alpha158 operator set (Qlib's ``Alpha158DL``), on ``symbol x session`` matrices.

Column names and formulas follow ``qlib.contrib.data.loader.Alpha158DL.get_feature_config``
(kbar shapes, price ratios, and 29 rolling operators over windows 5, 10, 20, 30, 60), so a
model trained on Qlib's set reads ours. Differences, on purpose: a window with a missing value
gives NaN (Qlib averages whatever it has, ``min_periods=1``), and every value is computed from
data up to the close of its session. Columns needing a field the data lacks (open, high,
low, vwap, volume) are left out: on close-only data the set keeps the close-based operators.

The work is organised by window, not by column, so the intermediates shared by several
columns (``Max($high, d)``, the regression sums, the sorted window) are computed once and
freed before the next window.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from py_finance.errors import ConfigError
from py_finance.features.registry import FeatureGroup, FeatureInputs, register_group

WINDOWS = (5, 10, 20, 30, 60)
KBAR = ("KMID", "KLEN", "KMID2", "KUP", "KUP2", "KLOW", "KLOW2", "KSFT", "KSFT2")
PRICE = ("OPEN", "HIGH", "LOW", "VWAP")
# Rolling operators in Qlib's order, with the fields each needs.
ROLLING: dict[str, tuple[str, ...]] = {
    "ROC": ("close",),
    "MA": ("close",),
    "STD": ("close",),
    "BETA": ("close",),
    "RSQR": ("close",),
    "RESI": ("close",),
    "MAX": ("close", "high"),
    "MIN": ("close", "low"),
    "QTLU": ("close",),
    "QTLD": ("close",),
    "RANK": ("close",),
    "RSV": ("close", "high", "low"),
    "IMAX": ("high",),
    "IMIN": ("low",),
    "IMXD": ("high", "low"),
    "CORR": ("close", "volume"),
    "CORD": ("close", "volume"),
    "CNTP": ("close",),
    "CNTN": ("close",),
    "CNTD": ("close",),
    "SUMP": ("close",),
    "SUMN": ("close",),
    "SUMD": ("close",),
    "VMA": ("volume",),
    "VSTD": ("volume",),
    "WVMA": ("close", "volume"),
    "VSUMP": ("volume",),
    "VSUMN": ("volume",),
    "VSUMD": ("volume",),
}
EPS = 1e-12
# Qlib blanks Rsquare and Corr where a window's std is this close to zero.
STD_ZERO = 2e-5


@register_group("alpha158")
class Alpha158(FeatureGroup):
    """Qlib's Alpha158 columns (158 with full OHLCV + vwap).

    Parameters: ``windows`` (default 5, 10, 20, 30, 60), ``kbar`` (default true), ``price``
    (price fields divided by close, default OPEN, HIGH, LOW, VWAP), ``include`` / ``exclude``
    (rolling operator names, default all).
    """

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        unknown = set(params) - {"windows", "kbar", "price", "include", "exclude"}
        if unknown:
            raise ConfigError(f"alpha158: unknown parameters {sorted(unknown)}")
        self.windows = [int(w) for w in params.get("windows", WINDOWS)]
        if any(w < 2 for w in self.windows):
            raise ConfigError(f"alpha158.windows must be >= 2, got {self.windows}")
        self.kbar = bool(params.get("kbar", True))
        self.price = [str(p).upper() for p in params.get("price", PRICE)]
        include = params.get("include")
        exclude = set(params.get("exclude", ()))
        bad = (set(include or ()) | exclude) - set(ROLLING)
        if bad:
            raise ConfigError(f"alpha158: unknown operators {sorted(bad)}")
        self.ops = [
            op for op in ROLLING if op not in exclude and (include is None or op in include)
        ]

    def lookback(self) -> int:
        """Longest window plus one (operators on returns)."""
        return max(self.windows, default=1) + 1

    def columns(self, inp: FeatureInputs) -> list[tuple[str, str, int]]:
        """``(name, operator, window)`` of every column these inputs allow, in Qlib's order."""
        out: list[tuple[str, str, int]] = []
        if self.kbar and inp.has("open", "high", "low", "close"):
            out += [(k, "KBAR", 0) for k in KBAR]
        for p in self.price:
            if inp.has(p.lower(), "close"):
                out.append((f"{p}0", "PRICE", 0))
        for op in self.ops:
            if inp.has(*ROLLING[op]):
                out += [(f"{op}{d}", op, d) for d in self.windows]
        return out

    def names(self, inp: FeatureInputs) -> list[str]:
        """Column names."""
        return [name for name, _, _ in self.columns(inp)]

    def compute(self, inp: FeatureInputs) -> Iterator[tuple[str, np.ndarray]]:
        """Yield columns window by window (not in :meth:`names` order)."""
        cols = self.columns(inp)
        if not cols:
            return
        wanted = {op for _, op, _ in cols}
        yield from _static(inp, wanted, self.price)
        base = _Base(inp)
        for d in self.windows:
            yield from _window(inp, base, d, {op for op in wanted if op in ROLLING})


def _static(
    inp: FeatureInputs, wanted: set[str], price: Sequence[str]
) -> Iterator[tuple[str, np.ndarray]]:
    close = inp.get("close")
    if "KBAR" in wanted:
        o, h, low = inp.get("open"), inp.get("high"), inp.get("low")
        span = h - low + EPS
        top = np.maximum(o, close)
        bottom = np.minimum(o, close)
        yield "KMID", (close - o) / o
        yield "KLEN", (h - low) / o
        yield "KMID2", (close - o) / span
        yield "KUP", (h - top) / o
        yield "KUP2", (h - top) / span
        yield "KLOW", (bottom - low) / o
        yield "KLOW2", (bottom - low) / span
        yield "KSFT", (2 * close - h - low) / o
        yield "KSFT2", (2 * close - h - low) / span
    if "PRICE" in wanted:
        for p in price:
            if inp.has(p.lower()):
                yield f"{p}0", inp.get(p.lower()) / close


class _Base:
    """Window-independent intermediates, computed on first use."""

    def __init__(self, inp: FeatureInputs) -> None:
        self.inp = inp
        self._memo: dict[str, np.ndarray] = {}

    def get(self, key: str) -> np.ndarray:
        if key not in self._memo:
            self._memo[key] = self._make(key)
        return self._memo[key]

    def _make(self, key: str) -> np.ndarray:
        from py_finance.features.ops import shift

        inp = self.inp
        if key == "dclose":
            close = inp.get("close")
            return close - shift(close, 1)
        if key == "dvolume":
            vol = inp.get("volume")
            return vol - shift(vol, 1)
        if key == "up":  # close > previous close, NaN where either is missing
            d = self.get("dclose")
            return np.where(np.isnan(d), np.nan, (d > 0).astype(float))
        if key == "down":
            d = self.get("dclose")
            return np.where(np.isnan(d), np.nan, (d < 0).astype(float))
        if key == "gain":
            return np.maximum(self.get("dclose"), 0.0)
        if key == "loss":
            return np.maximum(-self.get("dclose"), 0.0)
        if key == "absd":
            return np.abs(self.get("dclose"))
        if key == "vgain":
            return np.maximum(self.get("dvolume"), 0.0)
        if key == "vloss":
            return np.maximum(-self.get("dvolume"), 0.0)
        if key == "vabsd":
            return np.abs(self.get("dvolume"))
        if key == "logvol":
            return np.log(inp.get("volume") + 1.0)
        # Qlib evaluates these element-wise expressions on its float32 fields in float32;
        # the 5-session correlations of near-constant ratios are ill-conditioned enough for
        # that rounding to show (up to 5e-5), so they are rounded the same way here.
        if key == "ratio":
            close = inp.get("close").astype(np.float32)
            return (close / shift(close, 1)).astype(np.float64)
        if key == "logvratio":
            vol = inp.get("volume").astype(np.float32)
            with np.errstate(invalid="ignore", divide="ignore"):
                return np.log(vol / shift(vol, 1) + np.float32(1.0)).astype(np.float64)
        if key == "wv":
            # Not rounded like Qlib: |ratio - 1| cancels, and in float32 it keeps one to
            # three digits of a small return; std/mean over a short window then amplifies
            # that (WVMA2 was off its formula by 3e-6 relative in the median, 0.8 at worst).
            close = inp.get("close")
            return np.abs(close / shift(close, 1) - 1.0) * inp.get("volume")
        raise KeyError(key)


def _window(
    inp: FeatureInputs, base: _Base, d: int, ops: set[str]
) -> Iterator[tuple[str, np.ndarray]]:
    from py_finance.features.ops import (
        rolling_corr,
        rolling_linreg,
        rolling_max_argmax,
        rolling_mean,
        rolling_min_argmin,
        rolling_sorted_stats,
        rolling_std,
        rolling_sum,
        shift,
    )

    close = inp.get("close")
    if "ROC" in ops:
        yield f"ROC{d}", shift(close, d) / close
    if "MA" in ops:
        yield f"MA{d}", rolling_mean(close, d) / close
    std = None
    if ops & {"STD", "RSQR"}:
        std = rolling_std(close, d)
        if "STD" in ops:
            yield f"STD{d}", std / close
    if ops & {"BETA", "RSQR", "RESI"}:
        slope, rsq, resi = rolling_linreg(close, d)
        if "BETA" in ops:
            yield f"BETA{d}", slope / close
        if "RSQR" in ops and std is not None:
            rsq[np.abs(std) <= STD_ZERO] = np.nan
            yield f"RSQR{d}", rsq
        if "RESI" in ops:
            yield f"RESI{d}", resi / close
        del slope, rsq, resi
    hmax = imax = lmin = imin = None
    if ops & {"MAX", "RSV", "IMAX", "IMXD"}:
        hmax, imax = rolling_max_argmax(inp.get("high"), d)
    if ops & {"MIN", "RSV", "IMIN", "IMXD"}:
        lmin, imin = rolling_min_argmin(inp.get("low"), d)
    if "MAX" in ops and hmax is not None:
        yield f"MAX{d}", hmax / close
    if "MIN" in ops and lmin is not None:
        yield f"MIN{d}", lmin / close
    if ops & {"QTLU", "QTLD", "RANK"}:
        qlo, qhi, rank = rolling_sorted_stats(close, d, 0.2, 0.8)
        if "QTLU" in ops:
            yield f"QTLU{d}", qhi / close
        if "QTLD" in ops:
            yield f"QTLD{d}", qlo / close
        if "RANK" in ops:
            yield f"RANK{d}", rank
        del qlo, qhi, rank
    if "RSV" in ops and hmax is not None and lmin is not None:
        yield f"RSV{d}", (close - lmin) / (hmax - lmin + EPS)
    if "IMAX" in ops and imax is not None:
        yield f"IMAX{d}", imax / d
    if "IMIN" in ops and imin is not None:
        yield f"IMIN{d}", imin / d
    if "IMXD" in ops and imax is not None and imin is not None:
        yield f"IMXD{d}", (imax - imin) / d
    del hmax, imax, lmin, imin
    if "CORR" in ops:
        yield f"CORR{d}", _qlib_corr(rolling_corr(close, base.get("logvol"), d))
    if "CORD" in ops:
        yield f"CORD{d}", _qlib_corr(rolling_corr(base.get("ratio"), base.get("logvratio"), d))
    cntp = cntn = None
    if ops & {"CNTP", "CNTD"}:
        cntp = rolling_mean(base.get("up"), d)
    if ops & {"CNTN", "CNTD"}:
        cntn = rolling_mean(base.get("down"), d)
    if "CNTP" in ops and cntp is not None:
        yield f"CNTP{d}", cntp
    if "CNTN" in ops and cntn is not None:
        yield f"CNTN{d}", cntn
    if "CNTD" in ops and cntp is not None and cntn is not None:
        yield f"CNTD{d}", cntp - cntn
    if ops & {"SUMP", "SUMN", "SUMD"}:
        yield from _updown(base, d, "gain", "loss", "absd", "SUM", ops, rolling_sum)
    if "VMA" in ops:
        yield f"VMA{d}", rolling_mean(inp.get("volume"), d) / (inp.get("volume") + EPS)
    if "VSTD" in ops:
        yield f"VSTD{d}", rolling_std(inp.get("volume"), d) / (inp.get("volume") + EPS)
    if "WVMA" in ops:
        wv = base.get("wv")
        yield f"WVMA{d}", rolling_std(wv, d) / (rolling_mean(wv, d) + EPS)
    if ops & {"VSUMP", "VSUMN", "VSUMD"}:
        yield from _updown(base, d, "vgain", "vloss", "vabsd", "VSUM", ops, rolling_sum)


def _updown(
    base: _Base, d: int, gain: str, loss: str, absd: str, prefix: str, ops: set[str], rsum: Any
) -> Iterator[tuple[str, np.ndarray]]:
    total = rsum(base.get(absd), d) + EPS
    g = rsum(base.get(gain), d)
    lo = rsum(base.get(loss), d)
    if f"{prefix}P" in ops:
        yield f"{prefix}P{d}", g / total
    if f"{prefix}N" in ops:
        yield f"{prefix}N{d}", lo / total
    if f"{prefix}D" in ops:
        yield f"{prefix}D{d}", (g - lo) / total


def _qlib_corr(result: tuple[np.ndarray, np.ndarray, np.ndarray]) -> np.ndarray:
    corr, sdx, sdy = result
    corr[(np.abs(sdx) <= STD_ZERO) | (np.abs(sdy) <= STD_ZERO)] = np.nan
    return corr
