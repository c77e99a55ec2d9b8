"""constraints.txt pins the whole environment, every install goes through it, and it installs.

Regression: the committed dvc.lock stopped matching a fresh machine's `make run` the day
pandas 3.1.2 was published: pandas writes its version into every Parquet file it saves, so
each output's hash moved (CI: `make run changed tracked files: M dvc.lock`). With every
package pinned, a fresh machine installs the versions the outputs were made with.
"""

from __future__ import annotations

import importlib.metadata as md
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from tests.conftest import script

ROOT = Path(__file__).resolve().parents[2]
lock_requirements = script("lock_requirements")

LOCK = ROOT / "constraints.txt"


def _pins() -> dict[str, str]:
    return lock_requirements.pins_from_freeze(LOCK.read_text())


def _declared() -> list[Requirement]:
    return [Requirement(r) for r in lock_requirements.declared()]


def test_every_line_is_one_exact_pin_and_the_file_is_what_the_writer_renders():
    lines = [x for x in LOCK.read_text().splitlines() if x and not x.startswith("#")]
    assert lines, "constraints.txt pins nothing"
    for line in lines:
        assert re.fullmatch(r"[a-z0-9][a-z0-9-]*==[^\s+;]+", line), line
    pins = _pins()
    assert len(pins) == len(lines), "a package is pinned twice"
    assert "py-finance" not in pins
    # sorted, canonical names, the header: exactly what `make lock` writes
    assert LOCK.read_text() == lock_requirements.render(pins)


def test_every_declared_dependency_is_pinned_inside_its_range():
    pins = _pins()
    for req in _declared():
        name = lock_requirements.canonical(req.name)
        assert name in pins, f"{req.name} is declared in pyproject.toml but not pinned"
        assert req.specifier.contains(pins[name], prereleases=True), (
            f"{name}=={pins[name]} is outside pyproject.toml's {req.specifier}"
        )


def test_the_installed_environment_is_the_locked_one_down_to_transitive_dependencies():
    # Every distribution py-finance[dev] pulls in, directly or not, is pinned, and this
    # environment (the one `make` built) holds exactly the pinned version.
    pins = _pins()
    todo = [Requirement("py-finance[dev]")]
    seen: set[str] = set()
    missing, off = [], []
    while todo:
        req = todo.pop()
        name = lock_requirements.canonical(req.name)
        if name in seen:
            continue
        seen.add(name)
        try:
            dist = md.distribution(req.name)
        except md.PackageNotFoundError:
            missing.append(name)
            continue
        if name != "py-finance":
            version = dist.version.split("+", 1)[0]
            if name not in pins:
                off.append(f"{name}=={version} is installed but not pinned")
            elif pins[name] != version:
                off.append(f"{name}=={version} is installed, the lock pins {pins[name]}")
        for text in dist.requires or []:
            dep = Requirement(text)
            extras = req.extras or {""}
            if dep.marker is None or any(dep.marker.evaluate({"extra": e}) for e in extras):
                todo.append(dep)
    assert not missing, f"required but not installed: {missing}"
    assert not off, "\n".join(off) + "\n(run `make install`; `make lock` refreshes the lock)"
    assert {"pandas", "pyarrow", "numpy", "lightgbm", "torch"} <= seen


def test_every_installed_release_installs_on_the_oldest_python_a_fresh_machine_has():
    # Regression: a lock resolved with Python 3.11.7 pinned soupsieve 4.1.4 (Requires-Python
    # >=3.11.5); `make run` on a fresh machine (Python 3.11.2) then failed to install at all.
    assert lock_requirements.too_new(Path(sys.executable)) == []
    assert lock_requirements.too_new(Path(sys.executable), "3.10.12") != []  # the check bites


def test_a_freeze_becomes_pins_without_local_labels_the_project_or_wheel():
    freeze = (
        "torch==2.13.0+cpu\nPandas==3.1.2\npy-finance @ file:///src\n"
        "-e git+file:///src@abc#egg=py_finance\nwheel==0.45.1\nruamel.yaml==0.19.1\n"
    )
    assert lock_requirements.pins_from_freeze(freeze) == {
        "torch": "2.13.0",
        "pandas": "3.1.2",
        "ruamel-yaml": "0.19.1",
    }
    with pytest.raises(SystemExit, match="cannot pin"):
        lock_requirements.pins_from_freeze("somepkg @ https://example.invalid/x.whl\n")


@pytest.mark.skipif(shutil.which("make") is None, reason="make is needed")
@pytest.mark.parametrize("target", ["install", "install-bench"])
def test_every_pip_install_of_the_makefile_goes_through_the_lock(target):
    done = subprocess.run(
        ["make", "--no-print-directory", "-n", "-B", target],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    installs = [x for x in done.stdout.splitlines() if "pip install" in x]
    assert installs, done.stdout
    for line in installs:
        assert "-c constraints.txt" in line, line
