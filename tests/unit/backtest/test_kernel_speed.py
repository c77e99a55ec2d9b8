"""The compiled kernel's speed against its past self and the numpy floor (benchmarks/ab_kernel.py).

Interleaved in one process, minimum CPU time of many calls, so a busy machine slows all
three alike. Needs git history (the past kernel is read with ``git show``).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.slow
def test_kernel_is_within_twice_the_numpy_floor_and_faster_than_at_ffbeaa0() -> None:
    probe = subprocess.run(
        ["git", "cat-file", "-e", "ffbeaa0"], cwd=ROOT, capture_output=True, check=False
    )
    if probe.returncode != 0:
        pytest.skip("needs the git history (commit ffbeaa0)")
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import ab_kernel
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    best = ab_kernel.measure(rounds=30)
    assert best["rel"] <= 1e-9
    assert best["kernel"] < best["past"], best
    assert best["kernel"] <= 2.0 * best["floor"], best
