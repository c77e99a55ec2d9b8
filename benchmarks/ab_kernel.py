"""A/B of the compiled backtest kernel: today's, the one at a past commit, and the numpy floor.

Same data as ``bench_backtest.py`` (500 names x 5,040 sessions of random-walk closes,
daily weights summing to 1, 10 bps), in one process, the three interleaved call by call so
that a busy shared machine slows each of them alike; each figure is the minimum CPU time
(``time.process_time``) over ``--rounds`` calls. A kernel call is what ``run_backtest``
spends in the kernel: its buffers (:func:`_kernel.buffers`) and the compiled loop. The
floor is ``bench_backtest.floor`` on the same arrays.

The past kernel (``--commit``, default ffbeaa0, the kernel before the engine took
vectorbt's order key, the throttle resize and delistings) is read with ``git show`` into a
temporary module, compiled there and called with the arguments it took then.

Also checks that today's kernel, through ``run_backtest``, ends on the same equity as the
past one on this book (both equal vectorbt on it within 1e-9).

Run: ``.venv/bin/python benchmarks/ab_kernel.py [--rounds 60 --commit ffbeaa0]``. Exits
non-zero unless today's kernel is within ``--max-ratio`` (2.0) of the floor and faster than
the past one.
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_backtest import FEES_BPS, INIT_CASH, floor, make_data

ROOT = Path(__file__).resolve().parents[1]
KERNEL = "src/py_finance/backtest/_kernel.py"


def past_kernel(commit: str, where: Path) -> ModuleType:
    """The kernel module as it was at ``commit``, imported from a file under ``where``."""
    source = subprocess.run(
        ["git", "show", f"{commit}:{KERNEL}"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    path = where / f"kernel_{commit}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(f"kernel_{commit}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def caller(kernel: ModuleType, px: np.ndarray, w: np.ndarray) -> Callable[[], np.ndarray]:
    """A call of ``kernel.simulate`` on the book (no throttle), with the arguments it takes."""
    n, m = px.shape
    names = list(inspect.signature(kernel.simulate.py_func).parameters)
    fixed = {
        "px": px,
        "w": w,
        "op": px,  # fills at the close: the opens are not read
        "fill_open": False,
        "lag": 1,
        "fee": FEES_BPS / 1e4,
        "init_cash": INIT_CASH,
        "use_throttle": False,
        "throttle_exposure": 1.0,
        "drawdown_throttle": np.nan,
        "halt_drawdown": np.nan,
        "recovery_drawdown": 0.0,
        "reset_after_sessions": -1,
        "max_gross": 1.0 + 1e-9,
        "delist_at": np.full(m, -1, dtype=np.int64),
        "delist_px": np.zeros(m),
        "delist_cols": np.zeros(0, dtype=np.int64),
    }
    # The buffers come first after ``max_gross`` (or ``reset_after_sessions``), the rest after.
    first = names.index("series")
    head = names[:first]
    tail = names[first + len(kernel.buffers(1, 1)) :]

    def call() -> np.ndarray:
        bufs = kernel.buffers(n, m)
        rc = kernel.simulate(*(fixed[x] for x in head), *bufs, *(fixed[x] for x in tail))
        assert rc == 0, f"kernel stopped at row {rc - 1}"
        return bufs[0][0]

    return call


def measure(
    sessions: int = 5040, assets: int = 500, rounds: int = 60, commit: str = "ffbeaa0"
) -> dict[str, float]:
    """Minimum CPU seconds per call: ``kernel``, ``past`` (the kernel at ``commit``), ``floor``.

    Also ``rel``: the largest relative difference between the two kernels' equity curves.
    """
    prices, weights = make_data(sessions, assets)
    # The arrays run_backtest hands the kernel (name-major) and those the floor reads.
    from py_finance.backtest import BacktestConfig, _kernel, run_backtest
    from py_finance.backtest.engine import _arrays

    px, w = _arrays(prices, weights)
    px_floor, w_floor = prices.to_numpy(), weights.to_numpy()

    with tempfile.TemporaryDirectory() as tmp:
        old = past_kernel(commit, Path(tmp))
        runs: dict[str, Callable[[], object]] = {
            "kernel": caller(_kernel, px, w),
            "past": caller(old, px, w),
            "floor": lambda: floor(px_floor, w_floor),
        }
        eq_new = runs["kernel"]()
        eq_old = runs["past"]()
        assert isinstance(eq_new, np.ndarray) and isinstance(eq_old, np.ndarray)
        eq_engine = run_backtest(
            prices, weights, BacktestConfig(cost_bps=FEES_BPS, initial_cash=INIT_CASH)
        ).equity.to_numpy()
        assert np.array_equal(eq_engine, eq_new)
        best = dict.fromkeys(runs, np.inf)
        for _ in range(rounds):
            for name, fn in runs.items():
                # An untimed call first: the allocator then holds memory of the sizes this
                # one asks for, as it would in a loop of its own calls (the three free and
                # ask for different amounts, and a page fault costs more than an add).
                fn()
                t0 = time.process_time()
                fn()
                best[name] = min(best[name], time.process_time() - t0)
    best["rel"] = float(np.max(np.abs(eq_new / eq_old - 1.0)))
    return best


def main() -> int:
    """Run the A/B and print the table; 0 if the targets hold."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--sessions", type=int, default=5040)
    p.add_argument("--assets", type=int, default=500)
    p.add_argument("--rounds", type=int, default=60)
    p.add_argument("--commit", default="ffbeaa0")
    p.add_argument("--max-ratio", type=float, default=2.0)
    args = p.parse_args()
    best = measure(args.sessions, args.assets, args.rounds, args.commit)
    fl = best["floor"]
    ratio = best["kernel"] / fl
    faster = best["kernel"] < best["past"]
    print(f"{args.assets} names x {args.sessions} sessions, min CPU time of {args.rounds} calls")
    for key, name in [
        ("kernel", "kernel"),
        ("past", f"kernel at {args.commit}"),
        ("floor", "numpy floor"),
    ]:
        print(f"  {name:>20}: {best[key] * 1e3:7.2f} ms  ({best[key] / fl:.2f}x the floor)")
    print(f"  equity, today's vs {args.commit}'s kernel: max relative difference {best['rel']:.1e}")
    ok = ratio <= args.max_ratio and faster
    print(
        f"  kernel / floor {ratio:.2f} (target <= {args.max_ratio:g}); faster than "
        f"{args.commit}: {'yes' if faster else 'NO'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
