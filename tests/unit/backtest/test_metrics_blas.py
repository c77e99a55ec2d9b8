"""Metrics are bit-identical whatever BLAS kernel the machine picks (dvc.lock stays put).

OpenBLAS chooses its kernels by CPU (``OPENBLAS_CORETYPE`` forces one); a metric computed
through BLAS (``np.cov``, ``@``) can change in its last bit from one to another, and the
pipeline's metrics file, hashed into ``dvc.lock``, with it. Each metric here is computed in
fresh processes under several kernels and must come out with the same bits.
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
import pandas as pd
from py_finance.backtest import compute_metrics, score_ic

rng = np.random.default_rng(3)
n = 2000
bench = pd.Series(rng.normal(0.0003, 0.01, n))
rets = 0.8 * bench + pd.Series(rng.normal(0.0002, 0.008, n))
rets.iloc[5] = np.nan
out = compute_metrics(
    rets,
    turnover=pd.Series(rng.random(n)),
    exposure=pd.Series(rng.random(n)),
    benchmark=bench,
    n_trials=7,
)
scores = pd.DataFrame(rng.normal(size=(60, 40)))
fwd = 0.1 * scores + pd.DataFrame(rng.normal(size=(60, 40)))
out.update({f"ic_{k}": v for k, v in score_ic(scores, fwd).items()})
print(json.dumps({k: float(v).hex() for k, v in out.items()}))
"""


def _run(kernel: str) -> dict[str, str] | None:
    env = {**os.environ, "OPENBLAS_CORETYPE": kernel}
    proc = subprocess.run(
        [sys.executable, "-c", _SCRIPT], env=env, capture_output=True, text=True, check=False
    )
    if proc.returncode < 0:  # a kernel this CPU cannot run (SIGILL)
        return None
    assert proc.returncode == 0, proc.stderr
    result: dict[str, str] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def test_metrics_have_the_same_bits_under_every_blas_kernel() -> None:
    runs = {k: r for k in KERNELS if (r := _run(k)) is not None}
    assert len(runs) >= 2, "fewer than two BLAS kernels ran on this CPU"
    first_kernel, first = next(iter(runs.items()))
    assert first["beta"] != float("nan").hex()
    for kernel, got in runs.items():
        differ = {k: (first[k], v) for k, v in got.items() if v != first[k]}
        assert not differ, f"{kernel} vs {first_kernel}: {differ}"
