"""Out-of-sample skill of the sequence models on the bundled data, on a GPU machine.

Yearly purged walk-forward (embargo = horizon) of the shipped LSTM and TCN configs on the
`basic` features of the 20 bundled names, exactly as the tree models run in the pipeline.
Needs only numpy, pandas, torch and pytorch-lightning (``PYTHONPATH=src``); the features and
labels travel as an .npz made by ``--export`` on a machine with the full project.

    python benchmarks/gpu_walk_forward.py --export data/gpu_wf.npz        # here
    PYTHONPATH=src python benchmarks/gpu_walk_forward.py --npz data/gpu_wf.npz --out r.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

SEQ = {
    "lookback": 20,
    "hidden": 32,
    "conv_channels": 16,
    "kernel_size": 3,
    "levels": 3,
    "dropout": 0.2,
    "lr": 0.001,
    "batch_size": 512,
    "max_epochs": 10,
    "patience": 3,
    "val_fraction": 0.15,
    "mc_samples": 30,
    "seed": 42,
}


def export(path: Path) -> None:
    from py_finance.config import build, compose
    from py_finance.data.sources.bundled import BundledSource
    from py_finance.features.labels import LabelConfig, forward_returns
    from py_finance.features.technical import build_features

    s = build(compose())
    src = BundledSource()
    bars = src.bars(src.symbols(), *src.coverage())
    prices = bars.pivot(index="session", columns="symbol", values="adj_close")
    feats = build_features(prices, s.features)
    arrays = {
        "session": feats.index.get_level_values("session")
        .to_numpy("datetime64[ns]")
        .astype("int64"),
        "symbol": feats.index.get_level_values("symbol").to_numpy().astype(str),
        "features": feats.to_numpy(np.float32),
        "columns": np.asarray(feats.columns, dtype=str),
    }
    for h in (1, 5, 20):
        lab = forward_returns(prices, LabelConfig(horizon=h)).reindex(feats.index)
        arrays[f"raw_{h}"] = lab[f"fwd_ret_{h}"].to_numpy(np.float64)
        arrays[f"rank_{h}"] = lab[f"fwd_rank_{h}"].to_numpy(np.float64)
        arrays[f"end_{h}"] = lab["label_end"].to_numpy("datetime64[ns]").astype("int64")
    np.savez_compressed(path, **arrays)


def load(path: Path, h: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    z = np.load(path)
    idx = pd.MultiIndex.from_arrays(
        [pd.to_datetime(z["session"]), z["symbol"]], names=["session", "symbol"]
    )
    feats = pd.DataFrame(z["features"], index=idx, columns=list(z["columns"]))
    end = pd.to_datetime(z[f"end_{h}"].view("datetime64[ns]"))  # NaT survives the int64 trip
    labels = pd.DataFrame(
        {f"fwd_ret_{h}": z[f"raw_{h}"], f"fwd_rank_{h}": z[f"rank_{h}"], "label_end": end},
        index=idx,
    ).dropna()
    return feats, labels


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--export", type=Path)
    ap.add_argument("--npz", type=Path)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--budget-s", type=float, default=420)
    ap.add_argument(
        "--plan",
        default="lstm:5,tcn:5,tcn:1,lstm:1,tcn:20,lstm:20",
        help="model:horizon pairs in order (on CPU: a few at a time)",
    )
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    args = ap.parse_args()
    if args.export:
        export(args.export)
        return

    from py_finance.models.sequence import LSTMModel, TCNModel
    from py_finance.models.walk_forward import WalkForwardConfig, skill_summary, walk_forward

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    started = time.perf_counter()
    runs = []
    plan = [(a, int(h)) for a, h in (item.split(":") for item in args.plan.split(","))]
    for arch, h in plan:
        if time.perf_counter() - started > args.budget_s:
            runs.append({"model": arch, "horizon": h, "skipped": "time budget"})
            continue
        feats, labels = load(args.npz, h)
        cls = LSTMModel if arch == "lstm" else TCNModel
        cfg = WalkForwardConfig(refit="yearly", min_train_sessions=756, embargo=h)
        t0 = time.perf_counter()
        res = walk_forward(
            feats,
            labels,
            f"fwd_rank_{h}",
            lambda cls=cls, h=h: cls(**SEQ, val_gap=h),
            cfg,
            eval_column=f"fwd_ret_{h}",
            progress=False,
        )
        skill = skill_summary(res.predictions, labels, f"fwd_ret_{h}")
        run = {
            "model": arch,
            "horizon": h,
            "seconds": time.perf_counter() - t0,
            "folds": len(res.folds),
            **skill,
        }
        runs.append(run)
        print(json.dumps(run), flush=True)
        _write(args.out, runs)  # after every run: a timeout keeps what finished
    _write(args.out, runs)


def _write(path: Path, runs: list[dict]) -> None:
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    path.write_text(json.dumps({"gpu": gpu, "torch": torch.__version__, "runs": runs}, indent=2))


if __name__ == "__main__":
    main()
