"""Backtest engine benchmark: py-finance vs vectorbt 1.2 (numba and rust engines) vs numpy.

500 assets x 5040 sessions of synthetic prices and two books: daily random target weights
(about 45% daily two-way turnover) and a daily equal-weight top-50 book (exactly 1/50 per
name, so new buys tie and the last of them in column order is the one cash runs short
for), 10 bps fees, in one run:

* py-finance ``run_backtest`` warm (best of N) and cold (first call in a fresh process with
  an empty numba cache, so compilation is included; also with the on-disk cache warm);
* vectorbt ``Portfolio.from_orders(size_type="targetpercent", cash_sharing=True,
  group_by=True, call_seq="auto", min_size=0)`` + ``.value()``, numba engine and rust
  engine, warm and first call in a fresh process;
* a bare numpy pass over the same arrays (sum of w x r per session and turnover), the floor;
* the compiled kernel alone against the kernel at ffbeaa0 and the floor, interleaved
  (``benchmarks/ab_kernel.py``).

Checks that both books' equity curves equal vectorbt's within 1e-9 relative (both
engines), then writes every figure and the machine to ``benchmarks/results/backtest.md``.

Run: ``.venv/bin/python benchmarks/bench_backtest.py [--sessions N --assets M --repeat R]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from _machine import cpu_name

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "backtest.md"
FEES_BPS = 10.0
INIT_CASH = 1_000_000.0
TOL = 1e-9
# The kernel the A/B compares with (issue 23: today's must be faster).
AB_COMMIT = "ffbeaa0"


def make_data(n: int, m: int, seed: int = 7) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Random-walk closes and daily target weights summing to 1 (about 45% turnover).

    Each session a random 63% of the names redraw their raw weight; rows are normalised
    to sum to 1, so cash never covers every buy and the partial-fill path runs daily.
    """
    rng = np.random.default_rng(seed)
    rets = rng.normal(0.0003, 0.02, (n, m))
    px = 100.0 * np.exp(np.cumsum(rets, axis=0))
    raw = np.empty((n, m))
    raw[0] = rng.random(m)
    redraw = rng.random((n, m)) < 0.63
    fresh = rng.random((n, m))
    for t in range(1, n):
        raw[t] = np.where(redraw[t], fresh[t], raw[t - 1])
    w = raw / raw.sum(axis=1, keepdims=True)
    idx = pd.date_range("2000-01-03", periods=n, freq="B", tz="UTC")
    cols = [f"A{i:03d}" for i in range(m)]
    return pd.DataFrame(px, index=idx, columns=cols), pd.DataFrame(w, index=idx, columns=cols)


def make_topk(n: int, m: int, k: int = 50, seed: int = 5) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Closes in cents and a daily equal-weight top-k book on persistent random scores.

    Weights are exactly 1 / k on the k best scores and 0 elsewhere: every session buys new
    names at tied weights, and with fees the buys need more cash than there is.
    """
    rng = np.random.default_rng(seed)
    px = 100.0 * np.exp(np.cumsum(rng.normal(0.0003, 0.02, (n, m)), axis=0))
    px = np.round(px * 100.0) / 100.0
    scores = np.empty((n, m))
    scores[0] = rng.normal(size=m)
    noise = rng.normal(size=(n, m))
    for t in range(1, n):
        scores[t] = 0.9 * scores[t - 1] + 0.45 * noise[t]
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    w = np.zeros((n, m))
    np.put_along_axis(w, top, 1.0 / k, axis=1)
    idx = pd.date_range("2000-01-03", periods=n, freq="B", tz="UTC")
    cols = [f"A{i:03d}" for i in range(m)]
    return pd.DataFrame(px, index=idx, columns=cols), pd.DataFrame(w, index=idx, columns=cols)


def ours(prices: pd.DataFrame, weights: pd.DataFrame) -> pd.Series:
    """py-finance equity curve."""
    from py_finance.backtest import BacktestConfig, run_backtest

    cfg = BacktestConfig(execution_lag=1, cost_bps=FEES_BPS, initial_cash=INIT_CASH)
    return run_backtest(prices, weights, cfg).equity


def vbt(prices: pd.DataFrame, weights: pd.DataFrame, engine: str) -> pd.Series:
    """Equity curve of vectorbt (``engine`` numba or rust)."""
    import vectorbt as vbt_

    pf = vbt_.Portfolio.from_orders(
        close=prices,
        size=weights.shift(1),
        size_type="targetpercent",
        fees=FEES_BPS / 1e4,
        init_cash=INIT_CASH,
        cash_sharing=True,
        group_by=True,
        call_seq="auto",
        min_size=0.0,
        freq="1D",
        engine=engine,
    )
    return pf.value()


def floor(px: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bare numpy: per-session sum of w x r and turnover over the same arrays."""
    r = px[1:] / px[:-1] - 1.0
    pnl = (w[:-1] * r).sum(axis=1)
    turn = np.abs(np.diff(w, axis=0)).sum(axis=1)
    return pnl, turn


def best_of(fn, repeat: int) -> tuple[float, list[float]]:  # type: ignore[no-untyped-def]
    """Best and all wall times of ``repeat`` calls."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times), times


_CHILD = """
import os, sys, time, json
t0 = time.perf_counter()
sys.path.insert(0, {bench_dir!r})
import numpy as np, pandas as pd
import bench_backtest as b
prices = pd.read_pickle({prices!r}); weights = pd.read_pickle({weights!r})
what = {what!r}
if what == "ours":
    from py_finance.backtest import run_backtest  # noqa: F401
    fn = lambda: b.ours(prices, weights)
else:
    import vectorbt  # noqa: F401
    fn = lambda: b.vbt(prices, weights, what)
t_import = time.perf_counter() - t0
t1 = time.perf_counter(); fn(); first = time.perf_counter() - t1
t2 = time.perf_counter(); fn(); second = time.perf_counter() - t2
print(json.dumps(dict(first=first, second=second, imports=t_import)))
"""


def child(what: str, prices_path: str, weights_path: str, cache_dir: str | None) -> dict:
    """First and second call in a fresh process (empty numba cache if given)."""
    env = dict(os.environ)
    if cache_dir is not None:
        env["NUMBA_CACHE_DIR"] = cache_dir
    code = _CHILD.format(
        bench_dir=str(Path(__file__).resolve().parent),
        prices=prices_path,
        weights=weights_path,
        what=what,
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def machine() -> dict[str, str]:
    """CPU, cores, OS and library versions."""
    cpu = cpu_name()
    import numba

    versions = {"numpy": np.__version__, "pandas": pd.__version__, "numba": numba.__version__}
    try:
        import vectorbt as vbt_

        versions["vectorbt"] = vbt_.__version__
    except ImportError:
        versions["vectorbt"] = "not installed"
    try:
        from importlib.metadata import version

        versions["vectorbt-rust"] = version("vectorbt-rust")
    except Exception:
        versions["vectorbt-rust"] = "not installed"
    try:
        load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        load = "n/a"
    return {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "os": platform.platform(),
        "python": platform.python_version(),
        "load average at start": load,
        **versions,
    }


def main() -> None:
    """Run the benchmark and write the results file."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--sessions", type=int, default=5040)
    p.add_argument("--assets", type=int, default=500)
    p.add_argument("--repeat", type=int, default=7)
    p.add_argument("--out", default=str(RESULTS))
    args = p.parse_args()
    info = machine()
    n, m = args.sessions, args.assets
    prices, weights = make_data(n, m)
    px_arr, w_arr = prices.to_numpy(), weights.to_numpy()
    topk_prices, topk_weights = make_topk(n, m, k=min(50, m))

    # Correctness first (this also warms every engine in this process).
    eq = ours(prices, weights).to_numpy()
    from py_finance.backtest import BacktestConfig, run_backtest

    res = run_backtest(prices, weights, BacktestConfig(cost_bps=FEES_BPS, initial_cash=INIT_CASH))
    turnover = float(res.turnover.iloc[1:].mean())
    diffs = {}
    for engine in ("numba", "rust"):
        ref = vbt(prices, weights, engine).to_numpy()
        diffs[engine] = float(np.max(np.abs(eq / ref - 1.0)))
        assert diffs[engine] <= TOL, f"equity differs from vectorbt ({engine}): {diffs[engine]}"
    final_rel = abs(eq[-1] / vbt(prices, weights, "rust").to_numpy()[-1] - 1.0)
    eq_topk = ours(topk_prices, topk_weights).to_numpy()
    diffs_topk = {}
    for engine in ("numba", "rust"):
        ref = vbt(topk_prices, topk_weights, engine).to_numpy()
        diffs_topk[engine] = float(np.max(np.abs(eq_topk / ref - 1.0)))
        print(f"top-k book vs vectorbt {engine}: {diffs_topk[engine]:.2e}", flush=True)
        assert diffs_topk[engine] <= TOL, f"top-k book differs from vectorbt ({engine})"

    warm: dict[str, float] = {}
    all_times: dict[str, list[float]] = {}
    for name, fn, rep in [
        ("ours", lambda: ours(prices, weights), args.repeat),
        ("ours, top-k book", lambda: ours(topk_prices, topk_weights), args.repeat),
        ("numpy floor", lambda: floor(px_arr, w_arr), args.repeat),
        ("vectorbt numba", lambda: vbt(prices, weights, "numba"), max(3, args.repeat // 2)),
        ("vectorbt rust", lambda: vbt(prices, weights, "rust"), max(3, args.repeat // 2)),
        (
            "vectorbt rust, top-k book",
            lambda: vbt(topk_prices, topk_weights, "rust"),
            max(3, args.repeat // 2),
        ),
    ]:
        warm[name], all_times[name] = best_of(fn, rep)
        print(f"warm {name}: {warm[name] * 1e3:.1f} ms", flush=True)

    # The compiled kernel alone, interleaved call by call with the kernel of ffbeaa0 (before
    # vectorbt's order key, the throttle resize and delistings) and the floor: minimum CPU
    # time, so that load on a shared machine slows all three alike (benchmarks/ab_kernel.py).
    from ab_kernel import measure

    ab = measure(n, m, rounds=max(20, 4 * args.repeat), commit=AB_COMMIT)
    print(f"A/B kernel: {ab}", flush=True)

    cold: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        pp, wp = str(Path(tmp) / "p.pkl"), str(Path(tmp) / "w.pkl")
        prices.to_pickle(pp)
        weights.to_pickle(wp)
        for what, label in [
            ("ours", "ours"),
            ("numba", "vectorbt numba"),
            ("rust", "vectorbt rust"),
        ]:
            empty = tempfile.mkdtemp(dir=tmp)
            cold[label] = child(what, pp, wp, empty)
            cold[label + " (disk cache warm)"] = child(what, pp, wp, empty)
            print(f"cold {label}: {cold[label]}", flush=True)

    ratio_rust = warm["vectorbt rust"] / warm["ours"]
    ratio_floor = warm["ours"] / warm["numpy floor"]
    ab_ratio = ab["kernel"] / ab["floor"]
    cold_ok = cold["ours"]["first"] < min(
        cold["vectorbt numba"]["first"], cold["vectorbt rust"]["first"]
    )
    checks = [
        ("equity curve equals vectorbt numba within 1e-9 rel", diffs["numba"] <= TOL),
        ("equity curve equals vectorbt rust within 1e-9 rel", diffs["rust"] <= TOL),
        ("top-k book equals vectorbt numba within 1e-9 rel", diffs_topk["numba"] <= TOL),
        ("top-k book equals vectorbt rust within 1e-9 rel", diffs_topk["rust"] <= TOL),
        ("warm >= 20x faster than vectorbt rust", ratio_rust >= 20.0),
        ("warm within 2.5x of the numpy floor", ratio_floor <= 2.5),
        ("kernel within 2.0x of the numpy floor (interleaved A/B)", ab_ratio <= 2.0),
        (f"kernel faster than at {AB_COMMIT} (interleaved A/B)", ab["kernel"] < ab["past"]),
        ("first call faster than vectorbt's first call", cold_ok),
    ]
    ms = lambda x: f"{x * 1e3:,.1f} ms"  # noqa: E731
    lines = [
        "# Backtest engine benchmark",
        "",
        f"Measured {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC by `benchmarks/bench_backtest.py` "
        f"(`make bench`). {m} assets x {n} sessions of random-walk closes, daily target weights "
        f"summing to 1 (mean two-way turnover {turnover:.1%} of equity per session), "
        f"{FEES_BPS:g} bps fees, execution lag 1, cash account "
        "(vectorbt `from_orders(size_type='targetpercent', cash_sharing=True, group_by=True, "
        "call_seq='auto', min_size=0)` semantics).",
        "",
        "## Machine",
        "",
        *[f"- {k}: {v}" for k, v in info.items()],
        "",
        "## Agreement",
        "",
        f"- max relative difference of the whole equity curve vs vectorbt numba engine: "
        f"{diffs['numba']:.2e}",
        f"- same vs vectorbt rust engine: {diffs['rust']:.2e}",
        f"- final equity: ours {eq[-1]:,.6f}, relative difference to vectorbt {final_rel:.2e}",
        f"- equal-weight top-{min(50, m)} book (weights exactly 1/{min(50, m)}, daily, closes "
        "in cents: tied buys, cash short by about the fees every session), whole equity "
        f"curve vs vectorbt numba: {diffs_topk['numba']:.2e}, vs rust: {diffs_topk['rust']:.2e}",
        "",
        "## Warm (best of repeated calls in one process)",
        "",
        "| engine | best | all runs (ms) |",
        "|---|---|---|",
        *[
            f"| {k} | {ms(v)} | {', '.join(f'{t * 1e3:.1f}' for t in all_times[k])} |"
            for k, v in warm.items()
        ],
        "",
        "`ours` is the whole `run_backtest` call (frames in, `BacktestResult` frames out: "
        "equity, returns, weights held, turnover, fees, exposure, states, cash). vectorbt is "
        "`from_orders` + `.value()`. The numpy floor is "
        "`r = px[1:]/px[:-1]-1; (w[:-1]*r).sum(1); abs(diff(w)).sum(1)` on the same arrays.",
        "",
        "## Kernel A/B (interleaved, minimum CPU time)",
        "",
        "| kernel | min CPU time | x the floor |",
        "|---|---|---|",
        f"| today's | {ms(ab['kernel'])} | {ab_ratio:.2f} |",
        f"| at {AB_COMMIT} | {ms(ab['past'])} | {ab['past'] / ab['floor']:.2f} |",
        f"| numpy floor | {ms(ab['floor'])} | 1.00 |",
        "",
        "`benchmarks/ab_kernel.py`: the compiled loop with its buffers (no frames), the kernel of "
        f"{AB_COMMIT} loaded from git, and the floor, called in turn in one process, each time "
        "after an untimed call of its own; the minimum of `time.process_time` over "
        f"{max(20, 4 * args.repeat)} rounds. Equity of the two kernels: max relative "
        f"difference {ab['rel']:.1e}.",
        "",
        "## First call in a fresh process",
        "",
        "| engine | first call | second call | imports + data load |",
        "|---|---|---|---|",
        *[
            f"| {k} | {ms(v['first'])} | {ms(v['second'])} | {ms(v['imports'])} |"
            for k, v in cold.items()
        ],
        "",
        "Each row is a new Python process. Plain rows start with an empty `NUMBA_CACHE_DIR`, "
        "so every numba compilation is in the first call; '(disk cache warm)' rows reuse the "
        "cache the previous process wrote.",
        "",
        "## Targets from issue 7",
        "",
        f"- ours vs vectorbt rust (warm): {ratio_rust:.1f}x faster",
        f"- ours vs numpy floor (warm): {ratio_floor:.2f}x the floor's time",
        f"- kernel vs numpy floor (interleaved A/B): {ab_ratio:.2f}x; vs the kernel at "
        f"{AB_COMMIT}: {ab['kernel'] / ab['past']:.2f}x its time",
        "",
        *[f"- [{'x' if ok else ' '}] {label}" for label, ok in checks],
        "",
    ]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = out.with_suffix(".md.tmp")
    tmp_out.write_text("\n".join(lines))
    tmp_out.replace(out)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
