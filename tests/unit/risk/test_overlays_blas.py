"""Overlays give the same bits whatever BLAS kernel the machine picks.

Their output is the backtest's input, whose metrics are hashed into ``dvc.lock``; a matrix
product through BLAS (sector totals, a book's return series) can change in its last bit
with the kernel OpenBLAS picks for the CPU (``OPENBLAS_CORETYPE`` forces one).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

KERNELS = ("Haswell", "Prescott", "SkylakeX", "Zen", "Sandybridge")

_SCRIPT = """
import json
import numpy as np
from py_finance.risk import apply_vol_target, cap_sectors

rng = np.random.default_rng(5)
n, m = 40, 300
w = rng.dirichlet(np.ones(m), n) * 0.9
sectors = [f"S{i % 11}" for i in range(m)]
rets = rng.normal(0.0, 0.02, (n, m))
out = {
    "sectors": cap_sectors(w, sectors, 0.08, 0.02),
    "vol": apply_vol_target(w, rets, 0.1, lookback=20, max_leverage=1.5),
}
print(json.dumps({k: [float(x).hex() for x in v.ravel()] for k, v in out.items()}))
"""


def _run(kernel: str) -> dict[str, list[str]] | None:
    env = {**os.environ, "OPENBLAS_CORETYPE": kernel}
    proc = subprocess.run(
        [sys.executable, "-c", _SCRIPT], env=env, capture_output=True, text=True, check=False
    )
    if proc.returncode < 0:  # a kernel this CPU cannot run (SIGILL)
        return None
    assert proc.returncode == 0, proc.stderr
    result: dict[str, list[str]] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def test_sector_caps_and_vol_target_have_the_same_bits_under_every_blas_kernel() -> None:
    runs = {k: r for k in KERNELS if (r := _run(k)) is not None}
    assert len(runs) >= 2, "fewer than two BLAS kernels ran on this CPU"
    first_kernel, first = next(iter(runs.items()))
    for kernel, got in runs.items():
        for what, values in got.items():
            differ = sum(a != b for a, b in zip(values, first[what], strict=True))
            assert differ == 0, f"{what}: {differ} values differ, {kernel} vs {first_kernel}"
