"""The project's job lock: live runs share it, the retrain job holds it alone."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from types import SimpleNamespace

import pytest

from py_finance.errors import PyFinanceError
from py_finance.live.lock import job_lock, lock_path


def _ctx(tmp_path):
    return SimpleNamespace(
        root=tmp_path, settings=SimpleNamespace(live=SimpleNamespace(state_dir="data/live"))
    )


def _hold(tmp_path, shared: bool) -> subprocess.Popen:
    code = textwrap.dedent(
        f"""
        import sys, time
        from types import SimpleNamespace
        from pathlib import Path
        from py_finance.live.lock import job_lock
        ctx = SimpleNamespace(root=Path({str(tmp_path)!r}),
                              settings=SimpleNamespace(live=SimpleNamespace(state_dir="data/live")))
        with job_lock(ctx, "{"live" if shared else "retrain"}", shared={shared}):
            print("held", flush=True)
            time.sleep(30)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_a_retrain_is_refused_while_a_live_run_holds_the_lock(tmp_path):
    live = _hold(tmp_path, shared=True)
    try:
        with pytest.raises(
            PyFinanceError, match=r"a live run is running .* the retrain job did nothing"
        ):
            with job_lock(_ctx(tmp_path), "retrain"):
                pass
        with job_lock(_ctx(tmp_path), "live", shared=True):  # live runs may overlap
            pass
    finally:
        live.kill()
        live.wait()
    with job_lock(_ctx(tmp_path), "retrain"):  # the holder died: the lock went with it
        assert lock_path(_ctx(tmp_path)).read_text().startswith("the retrain job")


def test_a_live_run_waits_for_the_retrain_then_refuses(tmp_path):
    retrain = _hold(tmp_path, shared=False)
    try:
        with pytest.raises(PyFinanceError, match=r"the retrain job \(pid \d+\) is running"):
            with job_lock(_ctx(tmp_path), "live", wait_s=0.3, poll_s=0.1, shared=True):
                pass
    finally:
        retrain.kill()
        retrain.wait()
