"""Training time and rows/s of every model type, on the bundled data and a synthetic set.

Bundled: the `basic` features and the 5-session rank label of all 20 bundled names (what
`make run` trains), one fit on every labelled row. Synthetic: 500 symbols x 1,000 sessions x
16 features. Sequence models train one epoch here (CPU); their GPU/CPU ratio is measured by
`gpu_sequence.py` on a GPU machine (results/models.md). Writes results/models_cpu.md.

    python benchmarks/bench_models.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

warnings.filterwarnings("ignore")
ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "models_cpu.md"

MODELS = {
    "lightgbm": {},
    "xgboost": {},
    "lstm": {"max_epochs": 1, "accelerator": "cpu", "val_fraction": 0.05},
    "tcn": {"max_epochs": 1, "accelerator": "cpu", "val_fraction": 0.05},
}


def bundled() -> tuple[pd.DataFrame, pd.Series]:
    from py_finance.config import build, compose
    from py_finance.data.sources.bundled import BundledSource
    from py_finance.features.labels import forward_returns, target_column
    from py_finance.features.technical import build_features

    s = build(compose())
    src = BundledSource()
    bars = src.bars(src.symbols(), *src.coverage())
    prices = bars.pivot(index="session", columns="symbol", values="adj_close")
    feats = build_features(prices, s.features)
    labels = forward_returns(prices, s.labels)
    y = labels[target_column(s.labels)].reindex(feats.index)
    ok = y.notna()
    return feats[ok.to_numpy()], y[ok]


def synthetic(n_symbols: int, n_sessions: int) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(0)
    idx = pd.MultiIndex.from_product(
        [pd.bdate_range("2005-01-03", periods=n_sessions), [f"S{i:03d}" for i in range(n_symbols)]],
        names=["session", "symbol"],
    )
    X = pd.DataFrame(
        rng.standard_normal((len(idx), 16)).astype(np.float32),
        index=idx,
        columns=[f"f{i}" for i in range(16)],
    )
    y = pd.Series(0.1 * X["f0"].to_numpy() + rng.standard_normal(len(idx)), index=idx)
    return X, y


def fit_time(name: str, X: pd.DataFrame, y: pd.Series) -> float:
    from py_finance.config import compose, instantiate

    node = compose([f"model={name}"]).model
    for key, value in MODELS[name].items():
        node[key] = value
    model = instantiate(node)
    t0 = time.perf_counter()
    model.fit(X, y)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="small synthetic set (smoke test)")
    args = ap.parse_args()
    sets = {"bundled (20 names, basic features, h5)": bundled()}
    n_sym, n_sess = (50, 300) if args.quick else (500, 1000)
    sets[f"synthetic ({n_sym} symbols x {n_sess} sessions x 16 features)"] = synthetic(
        n_sym, n_sess
    )
    rows = []
    for label, (X, y) in sets.items():
        for name in MODELS:
            seconds = fit_time(name, X, y)
            rows.append((label, name, len(X), seconds, len(X) / seconds))
            print(f"{label:45s} {name:9s} {len(X):>9,d} rows {seconds:8.2f} s", flush=True)
    cpu = platform.processor() or platform.machine()
    lines = [
        "# Model training cost (CPU)",
        "",
        f"Measured by `benchmarks/bench_models.py` on {cpu}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}. Tree models: one fit with the shipped "
        "hyper-parameters; sequence models: one epoch (lookback 20).",
        "",
        "| data | model | rows | seconds | rows/s |",
        "|---|---|---|---|---|",
        *(f"| {d} | {m} | {n:,d} | {s:.2f} | {r:,.0f} |" for d, m, n, s, r in rows),
        "",
    ]
    if not args.quick:
        OUT.write_text("\n".join(lines))
        print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
