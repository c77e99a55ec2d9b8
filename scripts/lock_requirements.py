"""Write constraints.txt: every package of `.[dev,bench]` pinned to one version (`make lock`).

`make install` (and so `make run`, `make test` and CI) installs with `pip install -c
constraints.txt`, so a fresh machine gets the versions the committed outputs were made with:
dvc.lock's hashes, metrics.json and the README's table do not move when a dependency publishes
a release (a new pandas writes its version into every Parquet file it saves, which changes
each output's hash). pyproject.toml keeps the ranges the code supports; this file is the one
tested point inside them.

Refreshing it is a deliberate step: run `make lock`, then `make run` on a fresh clone and
commit constraints.txt with the dvc.lock (and any results) that the new versions produce.

    python scripts/lock_requirements.py            # resolve in a new virtualenv, write the file
    python scripts/lock_requirements.py --venv V   # freeze an installed virtualenv instead
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "constraints.txt"
EXTRAS = "dev,bench"
# The oldest Python 3.11 a fresh machine brings (Debian 12's): every pinned release must
# install on it, so the lock is resolved with it (a newer 3.11 can pick a release that
# requires a later patch version, which then fails to install there).
MIN_PYTHON = "3.11.2"
PROJECT = "py-finance"
# The project itself, and wheel (a build tool, never a run-time dependency).
SKIP = {"wheel", PROJECT}

HEADER = f"""\
# Every package that `pip install -e ".[{EXTRAS}]"` resolves to, pinned: the versions the
# committed outputs (dvc.lock, metrics, the README's table) were produced and tested with.
# The Makefile installs with `pip install -c constraints.txt`. Regenerate deliberately with
# `make lock` (scripts/lock_requirements.py), then commit it with the dvc.lock of a fresh
# clone's `make run`. Python 3.11, Linux x86_64; local version labels (+cpu) are dropped so
# that a pin matches the same release from any index.
"""

_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;]+)$")


def canonical(name: str) -> str:
    """PEP 503 name: lower case, runs of ``-_.`` as one ``-``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def pins_from_freeze(freeze: str) -> dict[str, str]:
    """``{canonical name: version}`` from ``pip freeze --all`` output, local labels dropped."""
    pins: dict[str, str] = {}
    for line in freeze.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = _PIN.match(line)
        if m is None:
            name = re.split(r"[\s@=<>!~;\[]", line.removeprefix("-e "), maxsplit=1)[0]
            if canonical(name) in SKIP or line.startswith("-e "):
                continue
            raise SystemExit(f"error: cannot pin {line!r} (not name==version)")
        name, version = canonical(m.group(1)), m.group(2).split("+", 1)[0]
        if name not in SKIP:
            pins[name] = version
    return pins


def render(pins: dict[str, str]) -> str:
    """The file's text: the header, then one ``name==version`` per line, sorted."""
    return HEADER + "".join(f"{n}=={pins[n]}\n" for n in sorted(pins))


def freeze(python: Path) -> str:
    """``pip freeze --all`` of the environment of ``python``."""
    done = subprocess.run(
        [str(python), "-m", "pip", "freeze", "--all"], capture_output=True, text=True, check=True
    )
    return done.stdout


# Run inside the resolved environment (which has `packaging`): the installed releases whose
# Requires-Python excludes the version given as argv[1].
_REQUIRES_PYTHON = """
import importlib.metadata as md, sys
from packaging.specifiers import SpecifierSet
for d in md.distributions():
    spec = d.metadata.get("Requires-Python") or ""
    if spec and not SpecifierSet(spec).contains(sys.argv[1], prereleases=True):
        print(f"{d.metadata['Name']}=={d.version} (Requires-Python {spec})")
"""


def too_new(python: Path, oldest: str = MIN_PYTHON) -> list[str]:
    """Releases installed for ``python`` whose Requires-Python excludes ``oldest``."""
    done = subprocess.run(
        [str(python), "-c", _REQUIRES_PYTHON, oldest], capture_output=True, text=True, check=True
    )
    return sorted(done.stdout.splitlines())


def resolve(workdir: Path) -> Path:
    """A new virtualenv in ``workdir`` with ``.[dev,bench]`` installed unconstrained."""
    venv = workdir / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    pip = [str(python), "-m", "pip", "install", "--quiet"]
    print("resolving the newest versions pyproject.toml allows (a few minutes) ...", flush=True)
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    # the requirements, not the project: building it would leave build/ in the source tree
    subprocess.run([*pip, *declared()], check=True)
    return python


def declared() -> list[str]:
    """pyproject.toml's dependencies and those of the locked extras."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    return [*project["dependencies"], *(r for e in EXTRAS.split(",") for r in extras[e])]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--venv", type=Path, help="freeze this installed virtualenv instead")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    if sys.version_info[:2] != (3, 11):
        print("error: the lock is for Python 3.11 (the project's only version)", file=sys.stderr)
        return 2
    newer = sys.version_info[:3] > tuple(int(x) for x in MIN_PYTHON.split("."))
    if newer and args.venv is None:
        print(
            f"warning: resolving with Python {sys.version.split()[0]}; releases that need more "
            f"than {MIN_PYTHON} are refused below (`make lock PY=...` picks the interpreter)",
            file=sys.stderr,
        )
    with tempfile.TemporaryDirectory(prefix="py-finance-lock-") as tmp:
        python = args.venv / "bin" / "python" if args.venv else resolve(Path(tmp))
        text, bad = freeze(python), too_new(python)
    if bad:
        print(f"error: these releases do not install on Python {MIN_PYTHON}:", file=sys.stderr)
        for line in bad:
            print(f"  {line}", file=sys.stderr)
        print("resolve with that interpreter: make lock PY=/path/to/python3.11", file=sys.stderr)
        return 1
    old = pins_from_freeze(args.out.read_text()) if args.out.exists() else {}
    new = pins_from_freeze(text)
    args.out.write_text(render(new))
    changed = sorted(n for n in new.keys() | old.keys() if new.get(n) != old.get(n))
    for n in changed if old else []:
        print(f"  {n}: {old.get(n, '-')} -> {new.get(n, '-')}")
    print(f"wrote {args.out.name}: {len(new)} packages, {len(changed)} changed")
    if changed:
        print("next: `make run` on a fresh clone, then commit constraints.txt with its dvc.lock")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
