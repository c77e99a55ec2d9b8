"""The documentation's runnable command blocks, run as written.

A fenced ``bash`` block of README.md or docs/*.md preceded by the line ``<!-- runnable -->``
runs, in order with the file's other runnable blocks, in one fresh copy of the project on a
small slice of the data (tests/integration/_clone.py) where `dvc repro` has run and its
dvc.lock is committed (as on a fresh clone after `make run`), from a shell without the
virtualenv on PATH; every command must succeed. ``<!-- runnable: exit 2 -->`` marks a block
of user errors: each command must exit 2 and print exactly one line, starting ``error:``,
and leave no ``outputs/`` folder behind.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration._clone import ROOT, run, snapshot

MARK = re.compile(r"^<!-- runnable(?::\s*exit (\d+))?\s*-->\s*$")
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


@dataclass(frozen=True)
class Block:
    path: Path
    line: int
    script: str
    exit_code: int

    def commands(self) -> list[str]:
        """The block's commands, continuation lines joined, comments and blanks left out."""
        joined = self.script.replace("\\\n", " ")
        return [
            c.strip() for c in joined.splitlines() if c.strip() and not c.strip().startswith("#")
        ]


def blocks(path: Path) -> list[Block]:
    lines = path.read_text().splitlines()
    found: list[Block] = []
    for i, line in enumerate(lines):
        m = MARK.match(line)
        if not m:
            continue
        fence = lines[i + 1] if i + 1 < len(lines) else ""
        assert fence.startswith("```bash"), f"{path}:{i + 1}: a runnable mark must precede ```bash"
        end = next(j for j in range(i + 2, len(lines)) if lines[j].startswith("```"))
        found.append(Block(path, i + 1, "\n".join(lines[i + 2 : end]), int(m.group(1) or 0)))
    return found


def test_runnable_blocks_are_found_in_readme_and_docs():
    files = {b.path.name for p in DOCS for b in blocks(p)}
    assert {"README.md", "platform.md"} <= files, files
    for p in DOCS:
        for b in blocks(p):
            assert b.commands(), f"{p.name}:{b.line}: empty runnable block"


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("git") is None or shutil.which("make") is None, reason="git, make")
@pytest.mark.parametrize("doc", [p for p in DOCS if blocks(p)], ids=lambda p: p.name)
def test_every_runnable_block_runs_as_written(doc, tmp_path):
    repo = snapshot(tmp_path / "repo")
    # What a fresh clone has after `make run`: outputs equal to the committed dvc.lock (here:
    # the slice's), a champion in MLflow.
    run(
        repo,
        ".venv/bin/dvc repro && git add dvc.lock && git -c user.name=t "
        "-c user.email=t@e.invalid commit -qm lock",
        timeout=1800,
    )
    for block in blocks(doc):
        where = f"{doc.name}:{block.line}"
        if block.exit_code == 0:
            done = run(repo, block.script, check=False, timeout=1800)
            assert done.returncode == 0, (
                f"{where} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
            )
            continue
        for command in block.commands():
            shutil.rmtree(repo / "outputs", ignore_errors=True)
            done = run(repo, command, check=False)
            assert done.returncode == block.exit_code, f"{where}: {command}: {done.stderr}"
            lines = done.stderr.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("error: "), f"{where}: {done.stderr}"
            assert done.stdout == "", f"{where}: {done.stdout}"
            assert not (repo / "outputs").exists(), f"{where}: {command} left outputs/"


def test_no_documented_ingest_writes_into_the_pipelines_store():
    # Regression: README's `ingest_bars.py ... AAPL MSFT KO` added universe spells to
    # data/store (a new snapshot: six stages dirty), and docs/data.md's files example merged
    # five made-up names into it (the next live dry run bought them). An example ingests into
    # a store of its own (--store) unless its command says `# into the pipeline's store`.
    fence = re.compile(r"^```(\w*)")
    for path in DOCS:
        inside = False
        lines = path.read_text().replace("\\\n", " ").splitlines()
        for line in lines:
            m = fence.match(line.strip())
            if m:
                inside = not inside and m.group(1) in ("bash", "sh", "")
                continue
            command = line.split(" # ", 1)[0]
            if not inside or "scripts/ingest_" not in command:
                continue
            assert "--store" in command or "into the pipeline's store" in line, (
                f"{path.name}: `{line.strip()}` writes into data/store: give it --store"
            )
