"""DVC experiments side by side in 120 columns: model, horizon, the figures, what changed.

.venv/bin/python scripts/show_exps.py        (make exps)

Reads `dvc exp show --json` and prints one row per revision (the workspace, the commit and
its experiments): the model, the horizon, Sharpe, CAGR, max drawdown, the gate's DSR and its
trial count from the default pipeline's summary.json, then the params that differ between
the rows. `dvc exp show` names a metric `path:metric` as soon as two metric files exist (an
experiment on another horizon writes data/backtest/h20/summary.json), and its table then
drops or cuts these columns; this one reads whichever summary.json a revision has.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from py_finance.errors import PyFinanceError, cli_errors

# The default pipeline's metrics file (dvc.yaml), whatever the horizon.
SUMMARY = re.compile(r"(^|/)data/backtest/h\d+/summary\.json$")
# (header, summary key, format) of the figure columns.
FIGURES = (
    ("Sharpe", "sharpe", "{:.2f}"),
    ("CAGR", "cagr", "{:.1%}"),
    ("MaxDD", "max_dd", "{:.1%}"),
    ("DSR", "dsr", "{:.3f}"),
    ("trials", "n_trials", "{:.0f}"),
)
# Params shown as their own column, or that follow from one (the horizon sets both).
SHOWN = re.compile(
    r"^(model\.|models\.|labels\.horizon$|portfolio\.rebalance_every$|walk_forward\.embargo$)"
)


def flatten(tree: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """``(dotted.key, value)`` of a nested mapping; lists are values."""
    if isinstance(tree, Mapping):
        for key, value in tree.items():
            yield from flatten(value, f"{prefix}{key}.")
    else:
        yield prefix[:-1], tree


def revisions(shown: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(label, data)`` of every revision, each commit followed by its experiments."""
    for rev in shown:
        rev_id = str(rev["rev"])
        label = rev.get("name") or (rev_id[:7] if re.fullmatch("[0-9a-f]{40}", rev_id) else rev_id)
        yield label, rev.get("data") or {}
        exps = [r for exp in rev.get("experiments") or [] for r in exp.get("revs") or []]
        for i, exp in enumerate(exps):
            branch = "└─" if i == len(exps) - 1 else "├─"
            name = exp.get("name") or str(exp["rev"])[:7]
            yield f"{branch} {name}", exp.get("data") or {}


def _summary(data: Mapping[str, Any]) -> tuple[int | None, dict[str, Any]]:
    """The horizon and figures of the revision's default summary.json (None, {}: none)."""
    for path, found in sorted((data.get("metrics") or {}).items()):
        match = SUMMARY.search(path)
        if match and isinstance(found, Mapping) and "data" in found:
            horizon = int(re.findall(r"/h(\d+)/", "/" + path)[-1])
            return horizon, dict(found["data"])
    return None, {}


def _params(data: Mapping[str, Any]) -> dict[str, str]:
    params = (data.get("params") or {}).get("params.yaml", {}).get("data") or {}
    return {k: json.dumps(v) if isinstance(v, list) else str(v) for k, v in flatten(params)}


def _short(value: str) -> str:
    """A float with a dozen digits (an Optuna draw) rounded for display."""
    try:
        number = float(value)
    except ValueError:
        return value
    return value if len(value) <= 8 or "e" in value.lower() else f"{number:.4g}"


def table(shown: list[dict[str, Any]], width: int = 120) -> str:
    """The experiments table of ``dvc exp show --json`` output, no line wider than ``width``."""
    rows = []
    for label, data in revisions(shown):
        horizon, figures = _summary(data)
        rows.append((label, horizon, figures, _params(data)))
    keys = sorted({k for *_, params in rows for k in params})
    changed = [
        k
        for k in keys
        if not SHOWN.match(k)
        and not k.endswith("._target_")
        and len({params.get(k) for *_, params in rows}) > 1
    ]
    header = ["Experiment", "model", "h", *(h for h, _, _ in FIGURES)]
    body = []
    for label, horizon, figures, _ in rows:
        cells = [label, str(figures.get("model", "")), "" if horizon is None else str(horizon)]
        for _, key, fmt in FIGURES:
            value = figures.get(key)
            cells.append("" if value is None else fmt.format(float(value)))
        body.append(cells)
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    widths[0] = min(widths[0], 28)

    def line(cells: list[str], rest: str) -> str:
        left = "  ".join(
            (c if len(c) <= w else c[: w - 1] + "~").ljust(w) if i < 3 else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )
        text = f"{left}  {rest}".rstrip()
        return text if len(text) <= width else text[: width - 1] + "~"

    out = [line(header, "changed params" if changed else "")]
    for cells, (*_, params) in zip(body, rows, strict=True):
        rest = " ".join(f"{k.split('.')[-1]}={_short(params.get(k, '-'))}" for k in changed)
        out.append(line(cells, rest))
    if not any(figures for _, _, figures, _ in rows):
        out.append("(no summary.json yet: run `make run` or `dvc repro`)")
    return "\n".join(out) + "\n"


@cli_errors
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=120, help="widest line (default 120)")
    args = parser.parse_args(argv)
    dvc = Path(sys.executable).parent / "dvc"
    done = subprocess.run(
        [str(dvc), "exp", "show", "--json"], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        said = (done.stderr or done.stdout).strip().splitlines()
        raise PyFinanceError(f"`dvc exp show` failed: {said[0] if said else done.returncode}")
    print(table(json.loads(done.stdout), width=args.width), end="")


if __name__ == "__main__":
    main()
