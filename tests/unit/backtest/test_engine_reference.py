"""The compiled engine against an independent, order-by-order model of vectorbt.

``reference_backtest`` follows vectorbt's ``simulate_from_orders_nb`` with
``size_type="targetpercent"``, ``cash_sharing=True`` and ``call_seq="auto"`` one order at a
time, as a broker would see them: value the group once, sort the orders by vectorbt's key
``size x value - position x valuation price`` (a stable sort: exact ties keep column
order), then execute each in turn against the cash left. It shares none of the kernel's
arithmetic: no sums of sells or buys, no dropping of buys, no partial-fill shortcut. Of
vectorbt it leaves out only the 1e-9 relative tolerances of its cash checks (the vectorbt
tests cover those).

The drawdown throttle is modelled on top, as the engine documents it: a weight decided at
t is scaled by the multiplier after t's close, and a holding without a new weight whose
multiplier moved is resized by a vectorbt ``targetamount`` order of ``shares x new / old``;
when the resized holdings and the rest of the book would be worth more than the group's
value, the resized targets are all scaled by one factor to fill it exactly (the live loop's
proportional resize), the rest is vectorbt's.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from py_finance.backtest import BacktestConfig, run_backtest
from py_finance.risk import RiskConfig, ThrottleState, throttle_multiplier, throttle_step

# Two buy keys closer than this (relative to the book's value) are a near tie: within what
# the engine's sums and vectorbt's order-by-order cash can differ by.
NEAR = 1e-12


def reference_backtest(
    px: np.ndarray,
    w: np.ndarray,
    *,
    lag: int,
    fee: float,
    cash: float,
    risk: RiskConfig | None = None,
) -> dict:
    """Equity, cash, fees, held weights and throttle states, session by session.

    ``near_tie`` says whether a partly filled buy's key was within ``NEAR`` x V of a
    neighbour's in key order, one of the two names being held (holdings equal in exact
    arithmetic, as equal weights on prices that moved alike give), and ``first_near_tie``
    is the first session where one was (None: never). Which of the two is filled then
    depends on the last bits of the cash and the positions, which vectorbt adds up order by
    order and the engine in sums, so such a session can go either way: the engine's
    documented boundary. Ties between names not held (``w x V - 0``, the equal-weight case)
    are exact in any arithmetic and always keep column order.
    """
    n, m = px.shape
    position = [0.0] * m
    val_price = [math.nan] * m
    sized_with = [1.0] * m
    mult_after = [1.0] * n
    out: dict[str, list] = {"equity": [], "cash": [], "fees": [], "weights": [], "states": []}
    throttle: ThrottleState | None = None
    near_tie = False
    first_near_tie = None
    for s in range(n):
        price = [float(px[s, j]) for j in range(m)]
        for j in range(m):
            if math.isfinite(price[j]) and price[j] > 0:
                val_price[j] = price[j]  # vectorbt forward-fills the valuation price
        value = cash
        for j in range(m):
            if position[j] != 0:
                value += position[j] * val_price[j]
        paid = 0.0
        if s >= lag:
            mult = mult_after[s - lag]
            orders = []  # (key, column, target shares)
            resized = set()
            for j in range(m):
                if not (math.isfinite(price[j]) and price[j] > 0):
                    continue  # vectorbt ignores an order without a price
                size = float(w[s - lag, j])
                if not math.isnan(size):
                    size = size * mult
                    # targetpercent: key size x V - position x price; target size x V / price
                    key = size * value - position[j] * val_price[j]
                    target = size * value / val_price[j]
                elif sized_with[j] > 0 and sized_with[j] != mult:
                    # targetamount: key target x price - position x price
                    target = position[j] * (mult / sized_with[j])
                    key = target * val_price[j] - position[j] * val_price[j]
                    resized.add(j)
                else:
                    continue
                sized_with[j] = mult
                orders.append((key, j, target))
            grown = sum(t * val_price[j] for _, j, t in orders if j in resized)
            ordered = {j for _, j, _ in orders}
            rest = sum(t * val_price[j] for _, j, t in orders if j not in resized) + sum(
                position[j] * val_price[j]
                for j in range(m)
                if j not in ordered and position[j] != 0
            )
            if grown > 0 and grown + rest > value:
                f = max(value - rest, 0.0) / grown
                orders = [
                    (
                        (t * f) * val_price[j] - position[j] * val_price[j] if j in resized else k,
                        j,
                        t * f if j in resized else t,
                    )
                    for k, j, t in orders
                ]
            # call_seq="auto": ascending key; Python's sort is stable, so ties keep column order.
            orders.sort(key=lambda order: order[0])
            held_before = list(position)
            for i, (key, j, target) in enumerate(orders):
                amount = target - position[j]
                if amount > 0:
                    if cash == 0:
                        continue  # rejected: no cash
                    cost = amount * price[j]
                    fees = cost * fee
                    if cost + fees <= cash:
                        cash -= cost + fees
                        position[j] += amount
                        paid += fees
                    else:
                        spend = cash / (1 + fee)
                        position[j] += spend / price[j]
                        paid += cash - spend
                        cash = 0.0
                        # A neighbour in key order as close as rounding, unless both are
                        # names not held (an exact tie in any arithmetic: w x V - 0).
                        for k, jj, _ in orders[max(i - 1, 0) : i + 2]:
                            held_either = held_before[j] != 0 or held_before[jj] != 0
                            if jj != j and held_either and abs(k - key) <= NEAR * abs(value):
                                near_tie = True
                                if first_near_tie is None:
                                    first_near_tie = s
                elif amount < 0:
                    proceeds = -amount * price[j]
                    fees = proceeds * fee
                    cash += proceeds - fees
                    position[j] += amount
                    paid += fees
        held = [position[j] * val_price[j] if position[j] != 0 else 0.0 for j in range(m)]
        eq = cash + sum(held)
        out["equity"].append(eq)
        out["cash"].append(cash)
        out["fees"].append(paid)
        out["weights"].append([h / eq for h in held])
        if risk is not None and risk.drawdown_throttle is not None:
            throttle = throttle_step(throttle, eq, risk)
            mult_after[s] = throttle_multiplier(throttle, risk)
            out["states"].append(throttle.state)
        else:
            out["states"].append("ACTIVE")
    result = {k: (v if k == "states" else np.array(v, dtype=np.float64)) for k, v in out.items()}
    result["near_tie"] = near_tie
    result["first_near_tie"] = first_near_tie
    return result


def _assert_same(res, ref: dict, rtol: float = 1e-12) -> None:  # type: ignore[no-untyped-def]
    np.testing.assert_allclose(res.equity.to_numpy(), ref["equity"], rtol=rtol, atol=0)
    np.testing.assert_allclose(res.weights.to_numpy(), ref["weights"], rtol=0, atol=1e-12)
    scale = float(np.max(ref["equity"]))
    np.testing.assert_allclose(res.cash.to_numpy(), ref["cash"], rtol=0, atol=1e-12 * scale)
    np.testing.assert_allclose(res.fees.to_numpy(), ref["fees"], rtol=0, atol=1e-12 * scale)
    assert list(res.states) == ref["states"]


def _assert_same_until(res, ref: dict, stop: int | None) -> None:  # type: ignore[no-untyped-def]
    """As :func:`_assert_same` through session ``stop`` (the whole run if None).

    At ``stop``, a near tie, the two may fill different names of the tied pair partly:
    equity, cash and fees are still the same there, the weights held only before it.
    """
    if stop is None:
        _assert_same(res, ref)
        return
    end = stop + 1
    np.testing.assert_allclose(res.equity.to_numpy()[:end], ref["equity"][:end], rtol=1e-12)
    np.testing.assert_allclose(res.weights.to_numpy()[:stop], ref["weights"][:stop], atol=1e-12)
    scale = float(np.max(ref["equity"]))
    np.testing.assert_allclose(res.cash.to_numpy()[:end], ref["cash"][:end], atol=1e-12 * scale)
    np.testing.assert_allclose(res.fees.to_numpy()[:end], ref["fees"][:end], atol=1e-12 * scale)
    assert list(res.states)[:end] == ref["states"][:end]


def near_tie_book(seed: int, n: int = 60, m: int = 20, spread: float = 0.0):
    """Equal weights every session on closes 100 x {1, 2, 4, 5} moving by -1%, 0 or +1%.

    Names at the same price that moved alike hold the same value in exact arithmetic, so
    their buy keys are a few ulps apart: near ties, every session. ``spread`` > 0 tilts
    the weights (name j gets ``1 + spread x j`` before normalising) so that no two keys
    are within ``NEAR`` x V.
    """
    rng = np.random.default_rng(seed)
    base = 100.0 * np.array([1.0, 2.0, 4.0, 5.0] * (m // 4))
    steps = rng.choice([-0.01, 0.0, 0.01], size=(n, m))
    steps[0] = 0.0
    px = base * np.cumprod(1.0 + steps, axis=0)
    w = np.tile(1.0 + spread * np.arange(m), (n, 1))
    return px, w / w.sum(axis=1, keepdims=True)


def _random_case(seed: int, n: int = 160, m: int = 12) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    px = 50 * np.exp(np.cumsum(rng.normal(0, 0.03, (n, m)), axis=0))
    # Names listed late, a delisting and missing bars.
    px[: rng.integers(5, 40), 0] = np.nan
    px[rng.integers(100, 150) :, 1] = np.nan
    px[rng.random((n, m)) < 0.03] = np.nan
    w = rng.dirichlet(np.ones(m), n) * rng.uniform(0.7, 1.0, (n, 1))
    w[rng.random((n, m)) < 0.3] = 0.0
    # Rebalance every 3 sessions (NaN rows in between: holdings drift with prices) and
    # a few NaN targets (no order for that name).
    w[np.arange(n) % 3 != 0] = np.nan
    w[rng.random((n, m)) < 0.05] = np.nan
    idx = pd.date_range("2020-01-02", periods=n, freq="B", tz="UTC")
    return pd.DataFrame(px, index=idx), pd.DataFrame(w, index=idx)


def equal_weight_topk(
    n: int, m: int, k: int, every: int, seed: int, *, keep: float = 0.5
) -> np.ndarray:
    """Weights 1/k on k names every ``every`` sessions (NaN rows between), names turning over.

    Each rebalance keeps about ``keep`` of the previous names and draws the rest anew, so
    every rebalance buys names not held, at exactly equal weights.
    """
    rng = np.random.default_rng(seed)
    w = np.full((n, m), np.nan)
    chosen = rng.choice(m, size=k, replace=False)
    for t in range(0, n, every):
        stay = chosen[rng.random(k) < keep]
        rest = np.setdiff1d(np.arange(m), stay)
        chosen = np.concatenate([stay, rng.choice(rest, size=k - len(stay), replace=False)])
        w[t] = 0.0
        w[t, chosen] = 1.0 / k
    return w


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("lag", [1, 2])
def test_engine_equals_reference_loop(seed: int, lag: int) -> None:
    prices, weights = _random_case(seed)
    cfg = BacktestConfig(execution_lag=lag, cost_bps=25.0, initial_cash=100_000.0)
    res = run_backtest(prices, weights, cfg)
    ref = reference_backtest(
        prices.to_numpy(), weights.to_numpy(), lag=lag, fee=0.0025, cash=100_000.0
    )
    _assert_same(res, ref, rtol=1e-10)
    assert (res.cash >= 0).all()


@pytest.mark.parametrize("seed", range(4))
def test_compiled_throttle_and_resize_equal_the_reference(seed: int) -> None:
    prices, weights = _random_case(seed + 10, n=250)
    # A crash in the middle so the throttle engages, recovers or resets; with rebalances
    # every 3 sessions it trips between rebalances too.
    crash = np.ones(len(prices))
    crash[80:95] = 0.97
    crash[150:160] = 1.03
    prices = prices * np.cumprod(crash)[:, None]
    risk = RiskConfig(
        drawdown_throttle=0.1,
        throttle_exposure=0.4,
        halt_drawdown=0.3,
        recovery_drawdown=0.05,
        reset_after_sessions=20,
    )
    cfg = BacktestConfig(cost_bps=10.0, initial_cash=1_000.0)
    res = run_backtest(prices, weights, cfg, risk=risk)
    ref = reference_backtest(
        prices.to_numpy(), weights.to_numpy(), lag=1, fee=0.001, cash=1_000.0, risk=risk
    )
    assert set(ref["states"]) > {"ACTIVE"}
    _assert_same(res, ref, rtol=1e-10)


def test_rows_above_one_with_explicit_leverage_drop_several_buys() -> None:
    # Targets of 1.6x equity, allowed by risk.max_leverage: the cash account cannot pay
    # for them, so buys fill in key order and one is partial.
    rng = np.random.default_rng(3)
    n, m = 30, 8
    px = 20 * np.exp(np.cumsum(rng.normal(0, 0.02, (n, m)), axis=0))
    w = rng.dirichlet(np.ones(m), n) * 1.6
    idx = pd.RangeIndex(n)
    cfg = BacktestConfig(cost_bps=10.0, initial_cash=1_000.0)
    risk = RiskConfig(drawdown_throttle=None, recovery_drawdown=0.0, max_leverage=1.6)
    res = run_backtest(pd.DataFrame(px, index=idx), pd.DataFrame(w, index=idx), cfg, risk=risk)
    ref = reference_backtest(px, w, lag=1, fee=0.001, cash=1_000.0)
    _assert_same(res, ref, rtol=1e-10)
    assert (res.cash >= 0).all()
    assert res.exposure.iloc[1:].max() <= 1.0 + 1e-12


def test_equal_weights_on_new_names_fill_in_column_order() -> None:
    # Three new names at 1/3 each, 10 bps: cash covers two and most of the third. The key
    # w x V is the same for all three, so the last column is the partial one whatever
    # the prices' rounding ((w x V / p) x p differs from w x V by an ulp for these prices).
    prices = pd.DataFrame([[0.07, 0.3, 19.99]] * 2, columns=["A", "B", "C"])
    weights = pd.DataFrame([[1 / 3] * 3] * 2, columns=["A", "B", "C"])
    res = run_backtest(prices, weights, BacktestConfig(cost_bps=10.0, initial_cash=1000.0))
    held = res.weights.iloc[1].to_numpy() * res.equity.iloc[1]
    np.testing.assert_allclose(held[:2], [1000 / 3, 1000 / 3], rtol=1e-14)
    assert held[2] < 1000 / 3 * (1 - 1e-4)
    assert res.cash.iloc[1] == 0.0


# Prices in cents: decimal fractions that binary floating point cannot hold exactly.
_cents = st.integers(min_value=1, max_value=500_000).map(lambda c: c / 100)


@st.composite
def _tied_book(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, float, float, int]:
    n = draw(st.integers(3, 14))
    m = draw(st.integers(2, 9))
    k = draw(st.integers(2, m))
    every = draw(st.integers(1, 4))
    seed = draw(st.integers(0, 2**32 - 1))
    start = np.array(draw(st.lists(_cents, min_size=m, max_size=m)))
    # Prices move by whole cents (or stay), so they stay awkward fractions and repeat.
    moves = np.array(
        draw(st.lists(st.integers(-3, 3), min_size=n * m, max_size=n * m)), dtype=np.float64
    ).reshape(n, m)
    px = np.round(np.maximum(start[None, :] + np.cumsum(moves, axis=0) * 0.07, 0.01) * 100) / 100
    w = equal_weight_topk(n, m, k, every, seed, keep=draw(st.sampled_from([0.0, 0.5, 1.0])))
    fee = draw(st.sampled_from([0.0, 0.0005, 0.001, 0.0025]))
    cash = draw(st.sampled_from([1.0, 1000.0, 1e6, 123_456.78, 1e9 / 3]))
    lag = draw(st.integers(1, 2))
    return px, w, fee, cash, lag


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_tied_book())
def test_tied_equal_weights_pick_the_same_partial_fill_as_the_reference(
    case: tuple[np.ndarray, np.ndarray, float, float, int],
) -> None:
    px, w, fee, cash, lag = case
    idx = pd.RangeIndex(len(px))
    res = run_backtest(
        pd.DataFrame(px, index=idx),
        pd.DataFrame(w, index=idx),
        BacktestConfig(execution_lag=lag, cost_bps=fee * 1e4, initial_cash=cash),
    )
    ref = reference_backtest(px, w, lag=lag, fee=fee, cash=cash)
    _assert_same_until(res, ref, ref["first_near_tie"])
    assert (res.cash >= 0).all()


@settings(max_examples=100, deadline=None)
@given(_tied_book(), st.sampled_from([0.02, 0.05]), st.sampled_from([0.0, 0.5]))
def test_tied_book_with_throttle_equals_the_reference(
    case: tuple[np.ndarray, np.ndarray, float, float, int], trip: float, exposure: float
) -> None:
    px, w, fee, cash, lag = case
    idx = pd.RangeIndex(len(px))
    risk = RiskConfig(
        drawdown_throttle=trip,
        throttle_exposure=exposure,
        recovery_drawdown=trip / 2,
        reset_after_sessions=3,
    )
    res = run_backtest(
        pd.DataFrame(px, index=idx),
        pd.DataFrame(w, index=idx),
        BacktestConfig(execution_lag=lag, cost_bps=fee * 1e4, initial_cash=cash),
        risk=risk,
    )
    ref = reference_backtest(px, w, lag=lag, fee=fee, cash=cash, risk=risk)
    _assert_same_until(res, ref, ref["first_near_tie"])


@pytest.mark.parametrize("seed", range(6))
def test_near_ties_between_held_names_equal_the_reference_up_to_the_first_one(seed: int) -> None:
    # The boundary, near side: keys a few ulps apart. Up to the first session whose partly
    # filled buy is in a near tie (inclusive) the engine is the order-by-order model.
    px, w = near_tie_book(seed)
    idx = pd.RangeIndex(len(px))
    res = run_backtest(
        pd.DataFrame(px, index=idx),
        pd.DataFrame(w, index=idx),
        BacktestConfig(cost_bps=10.0, initial_cash=1e6),
    )
    ref = reference_backtest(px, w, lag=1, fee=0.001, cash=1e6)
    assert ref["first_near_tie"] is not None
    _assert_same_until(res, ref, ref["first_near_tie"])


@pytest.mark.parametrize("spread", [1e-8, 1e-6])
@pytest.mark.parametrize("seed", range(6))
def test_held_names_keys_apart_by_more_than_the_near_bound_equal_the_reference(
    seed: int, spread: float
) -> None:
    # The boundary, far side: the same book with weights tilted just enough that no two
    # buy keys are within NEAR x V (two held names' keys then differ by about spread x
    # their size, ~1e-2 x V / 20): equal all the way.
    px, w = near_tie_book(seed, spread=spread)
    idx = pd.RangeIndex(len(px))
    res = run_backtest(
        pd.DataFrame(px, index=idx),
        pd.DataFrame(w, index=idx),
        BacktestConfig(cost_bps=10.0, initial_cash=1e6),
    )
    ref = reference_backtest(px, w, lag=1, fee=0.001, cash=1e6)
    assert not ref["near_tie"]
    _assert_same(res, ref)
