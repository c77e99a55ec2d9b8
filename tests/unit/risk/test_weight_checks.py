"""Target weights are checked before any overlay; the throttle's resize rule."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from py_finance.errors import ConfigError, DataError
from py_finance.portfolio.config import PortfolioConfig
from py_finance.risk import (
    RiskConfig,
    apply_overlays,
    apply_static_overlays,
    apply_vol_target,
    cap_positions,
    cap_sectors,
    check_weights,
    gross_bound,
    throttle_resize,
)
from py_finance.risk import targets as targets_module
from py_finance.risk.targets import target_weights

inf, nan = np.inf, np.nan
SESSIONS = pd.date_range("2024-03-01", periods=3, freq="B", tz="UTC")
SYMBOLS = ["AAPL", "MSFT", "XOM"]


def test_cap_positions_rejects_an_infinite_weight_instead_of_capping_it() -> None:
    with pytest.raises(DataError, match=r"column 0 on session row 0 is inf.*finite"):
        cap_positions([inf, 0.5], 0.2)


@pytest.mark.parametrize(
    "call",
    [
        lambda w: cap_positions(w, 0.2),
        lambda w: cap_sectors(w, ["a", "b"], 0.4),
        lambda w: apply_vol_target(w, np.zeros((5, 2)), 0.1),
    ],
)
@pytest.mark.parametrize(
    ("row", "match"), [([0.5, -0.1], "column 1 .* long-only"), ([0.1, inf], "column 1 .* finite")]
)
def test_every_overlay_rejects_negative_and_infinite_weights(call, row, match) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(DataError, match=match):
        call(np.array(row))


def test_check_weights_names_session_and_symbol() -> None:
    w = np.array([[0.2, 0.3, 0.1], [0.2, nan, 0.1], [0.5, -inf, 0.1]])
    with pytest.raises(DataError, match="MSFT on session 2024-03-05 is -inf") as err:
        check_weights(w, sessions=SESSIONS, symbols=SYMBOLS)
    assert "long-only" in str(err.value)
    w[2, 1] = inf
    with pytest.raises(DataError, match="MSFT on session 2024-03-05 is inf"):
        check_weights(w, sessions=SESSIONS, symbols=SYMBOLS)


def test_check_weights_names_the_first_bad_session() -> None:
    w = np.array([[0.2, 0.3, 0.1], [0.8, 0.8, nan], [inf, 0.0, 0.0]])
    with pytest.raises(DataError, match=r"session 2024-03-04 sum to 1\.6") as err:
        check_weights(w, sessions=SESSIONS, symbols=SYMBOLS)
    # The running total passes 1 at the second name.
    assert "at symbol MSFT" in str(err.value)
    assert "risk.max_leverage" in str(err.value)


def test_gross_limit_is_a_setting_and_rounding_is_not_leverage() -> None:
    check_weights([0.8, 0.8], 1.6)
    check_weights([0.1] * 10)  # sums to 1 - 1 ulp
    check_weights([1 / 3] * 3)
    check_weights([0.5, 0.5 + 1e-12])
    with pytest.raises(DataError, match=r"sum to 1\.000001"):
        check_weights([0.5, 0.500001])
    assert gross_bound(1.0) == pytest.approx(1.0 + 1e-9, rel=1e-15)
    with pytest.raises(ConfigError, match="max_leverage"):
        RiskConfig(max_leverage=0.5)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.floats(0.0, 0.5, allow_subnormal=False), min_size=1, max_size=12),
    st.integers(-3, 3),
)
def test_check_weights_accepts_exactly_the_rows_at_or_below_the_bound(
    parts: list[float], ulps: int
) -> None:
    # Rows scaled to land a few ulps around the bound: the sum in column order decides.
    w = np.array(parts)
    if w.sum() == 0.0:
        return
    w = w / w.sum() * gross_bound(1.0)
    top = int(np.argmax(w))
    for _ in range(abs(ulps)):
        w[top] = np.nextafter(w[top], np.inf if ulps > 0 else -np.inf)
    total = 0.0
    for x in w:
        total += x
    if total > gross_bound(1.0):
        with pytest.raises(DataError):
            check_weights(w)
    else:
        check_weights(w)


def test_static_overlays_check_the_gross_limit_before_capping() -> None:
    risk = RiskConfig(max_position=0.2, max_sector=None, drawdown_throttle=None)
    with pytest.raises(DataError, match=r"sum to 1\.6"):
        apply_static_overlays(np.array([[0.8, 0.8]]), None, None, risk, None)
    lever = RiskConfig(max_position=0.2, max_sector=None, drawdown_throttle=None, max_leverage=2)
    out = apply_static_overlays(np.array([[0.8, 0.8]]), None, None, lever, None)
    np.testing.assert_allclose(out, [[0.2, 0.2]])


def test_live_row_overlays_reject_infinite_weights() -> None:
    risk = RiskConfig(max_sector=None)
    with pytest.raises(DataError, match="finite"):
        apply_overlays(
            np.array([inf, 0.5]),
            sectors=None,
            regime="unknown",
            risk=risk,
            policy=None,
            throttle=None,
        )


def test_target_weights_are_checked_before_any_overlay(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    scores = pd.DataFrame(np.arange(9.0).reshape(3, 3), index=SESSIONS, columns=SYMBOLS)

    def broken(scores, cfg, **kwargs):  # type: ignore[no-untyped-def]
        out = pd.DataFrame(0.3, index=scores.index, columns=scores.columns)
        out.iloc[1, 2] = inf
        return out

    monkeypatch.setattr(targets_module, "topk_weights", broken)
    called = []
    monkeypatch.setattr(
        targets_module, "apply_static_overlays", lambda *a, **k: called.append(1) or a[0]
    )
    with pytest.raises(DataError, match="XOM on session 2024-03-04 is inf"):
        target_weights(scores, portfolio=PortfolioConfig(top_k=3), risk=RiskConfig())
    assert not called


def test_throttle_resize_scales_holdings_sized_with_another_multiplier() -> None:
    held = np.array([10.0, 4.0, 0.0, 3.0, 7.0])
    sized = np.array([1.0, 0.5, 1.0, 0.0, 0.5])
    out = throttle_resize(held, sized, 0.5)
    # Halved, as it is, nothing to scale, emptied by a halt, already sized at 0.5.
    np.testing.assert_array_equal(out, [5.0, 4.0, 0.0, 3.0, 7.0])
    np.testing.assert_array_equal(throttle_resize(held, sized, 0.0), [0, 0, 0, 3, 0])
    np.testing.assert_array_equal(throttle_resize(held, 0.5, 1.0), held * 2)
    with pytest.raises(ValueError, match="multiplier"):
        throttle_resize(held, sized, nan)
