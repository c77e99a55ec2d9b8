"""The train stage of the sequence models on the bundled data: CPU here, GPU on a device.

Yearly purged walk-forward (embargo = horizon) and the final model of the shipped TCN, LSTM
and Transformer configs (conf/model/, composed at ``--export`` and carried in the .npz, so a
machine without Hydra trains exactly what ships) on the `basic` features of the 20 bundled
names, as the pipeline's train stage runs them. Needs only numpy, pandas, torch and
pytorch-lightning (``PYTHONPATH=src``). The speed-up of a device is the seconds of the same
plan here (``--threads 1``: one torch thread) over its own.

    python benchmarks/gpu_walk_forward.py --export data/gpu_wf.npz                 # here
    python benchmarks/gpu_walk_forward.py --npz data/gpu_wf.npz --threads 1 --out cpu.json
    PYTHONPATH=src python benchmarks/gpu_walk_forward.py --npz data/gpu_wf.npz --out gpu.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

FAMILIES = ("tcn", "lstm", "transformer")


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
    # The shipped configs, composed here: the device has no Hydra.
    shipped = {}
    for family in FAMILIES:
        params = build(compose([f"model={family}"])).model_factory().get_params()
        shipped[family] = {k: v for k, v in params.items() if k not in ("arch", "val_gap")}
    arrays["model_params"] = np.asarray(json.dumps(shipped))
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
        default="tcn:5,lstm:5,transformer:5",
        help="model:horizon pairs in order (on CPU: a few at a time)",
    )
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    args = ap.parse_args()
    if args.export:
        export(args.export)
        return

    from py_finance.models.sequence import SequenceModel
    from py_finance.models.walk_forward import WalkForwardConfig, skill_summary, walk_forward

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    started = time.perf_counter()
    runs = []
    plan = [(a, int(h)) for a, h in (item.split(":") for item in args.plan.split(","))]
    shipped = json.loads(str(np.load(args.npz)["model_params"]))
    for arch, h in plan:
        if time.perf_counter() - started > args.budget_s:
            runs.append({"model": arch, "horizon": h, "skipped": "time budget"})
            continue
        feats, labels = load(args.npz, h)
        cfg = WalkForwardConfig(refit="yearly", min_train_sessions=756, embargo=h)
        t0, c0 = time.perf_counter(), time.process_time()
        res = walk_forward(
            feats,
            labels,
            f"fwd_rank_{h}",
            lambda arch=arch, h=h: SequenceModel(arch, **shipped[arch], val_gap=h),
            cfg,
            eval_column=f"fwd_ret_{h}",
            progress=False,
            final=True,
        )
        skill = skill_summary(res.predictions, labels, f"fwd_ret_{h}")
        run = {
            "model": arch,
            "horizon": h,
            "seconds": time.perf_counter() - t0,
            "cpu_seconds": time.process_time() - c0,
            "folds": len(res.folds),
            "epochs": [int(e) for e in res.fold_metrics["n_epochs"]],
            **skill,
        }
        runs.append(run)
        print(json.dumps(run), flush=True)
        _write(args.out, runs)  # after every run: a timeout keeps what finished
    _write(args.out, runs)


def _write(path: Path, runs: list[dict]) -> None:
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    record = {"gpu": gpu, "torch": torch.__version__, "threads": torch.get_num_threads()}
    path.write_text(json.dumps({**record, "runs": runs}, indent=2))


if __name__ == "__main__":
    main()
