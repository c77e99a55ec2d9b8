"""Copies of the project for tests that run it as a user would: fresh git repository, the
test's virtualenv linked as ``.venv``, a shell whose PATH does not hold the virtualenv.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

GIT = ["git", "-c", "user.name=test", "-c", "user.email=test@example.invalid"]

# A small slice of the bundled data: conf/test_slice.yaml, last in conf/config.yaml's defaults
# (after `_self_`, so it wins and survives `dvc exp run -S`, which recomposes from conf/).
SMALL_CONF = """# test slice (tests/integration/_clone.py)
data:
  symbols: [AAPL, MSFT, JNJ, XOM, KO, JPM, PFE, WMT]
  start: "1995-01-03"
  end: "2000-12-29"
walk_forward:
  min_train_sessions: 504
regimes:
  min_train_sessions: 252
model:
  n_estimators: 20
  learning_rate: 0.05
models:
  lightgbm:
    n_estimators: 20
    learning_rate: 0.05
  xgboost:
    n_estimators: 20
    learning_rate: 0.05
portfolio:
  top_k: 4
matrix:
  horizons: [1, 5]
promotion:
  dsr_confidence: 0.5
  min_oos_sessions: 500
"""


def user_env(root: Path) -> dict[str, str]:
    """A login-like environment: no virtualenv on PATH, no PYTHONPATH, nothing activated."""
    keep = ("HOME", "LANG", "LC_ALL", "TMPDIR", "CI", "USER")
    env = {k: os.environ[k] for k in keep if k in os.environ}
    venv_bin = str(Path(sys.prefix) / "bin")
    path = [p for p in os.environ.get("PATH", "/usr/bin:/bin").split(os.pathsep) if p != venv_bin]
    env["PATH"] = os.pathsep.join(path)
    env["GIT_PYTHON_REFRESH"] = "quiet"
    env["COLUMNS"] = "120"
    return env


def link_venv(dest: Path) -> None:
    """Link the test's virtualenv as ``dest/.venv`` (what ``make install`` would have made).

    pyproject.toml and constraints.txt (the install stamp's inputs) are dated back so that
    ``make`` finds the install up to date and never reinstalls this copy into the shared
    virtualenv.
    """
    (dest / ".venv").symlink_to(Path(sys.prefix), target_is_directory=True)
    for name in ("pyproject.toml", "constraints.txt"):
        os.utime(dest / name, (0, 0))


def snapshot(dest: Path, *, small: bool = True, slice_conf: str = SMALL_CONF) -> Path:
    """Copy the working tree's files (tracked and untracked, not ignored) to ``dest``.

    With ``small``, the test slice (``slice_conf``) goes into ``conf/config.yaml`` and
    ``params.yaml`` is recomposed; then everything is committed to a fresh repository and the
    virtualenv linked.
    """
    files = subprocess.run(
        ["git", "ls-files", "-z", "-co", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for raw in files:
        if not raw:
            continue
        rel = raw.decode()
        src = ROOT / rel
        if not src.is_file():
            continue
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dest / rel)
    if small:
        from py_finance.config import write_params

        conf = dest / "conf" / "config.yaml"
        text = conf.read_text()
        assert "  - _self_\n" in text
        conf.write_text(text.replace("  - _self_\n", "  - _self_\n  - test_slice\n", 1))
        (dest / "conf" / "test_slice.yaml").write_text(slice_conf)
        write_params(dest / "params.yaml", config_dir=dest / "conf")
    subprocess.run(["git", "init", "-q"], cwd=dest, check=True)
    subprocess.run([*GIT, "add", "-A"], cwd=dest, check=True)
    subprocess.run([*GIT, "commit", "-q", "-m", "snapshot"], cwd=dest, check=True)
    link_venv(dest)
    return dest


def run(
    root: Path, args: list[str] | str, *, check: bool = True, timeout: float = 900
) -> subprocess.CompletedProcess[str]:
    """Run a command (a list, or a bash script) in ``root`` as a user would."""
    cmd = ["bash", "-e", "-o", "pipefail", "-c", args] if isinstance(args, str) else args
    done = subprocess.run(
        cmd, cwd=root, env=user_env(root), capture_output=True, text=True, timeout=timeout
    )
    if check:
        assert done.returncode == 0, f"{args}:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    return done
