"""Print the results table of the last pipeline run (reports/results.md)."""

from __future__ import annotations

import sys
from pathlib import Path

path = Path(sys.argv[1] if len(sys.argv) > 1 else "reports/results.md")
if not path.exists():
    print(f"error: {path} not found: run `make run` first", file=sys.stderr)
    raise SystemExit(2)
print()
print(path.read_text(encoding="utf-8"))
