"""Train the same sequence model on CPU and on GPU and report training samples/s.

Runs with only numpy, pandas, torch and pytorch-lightning installed (``PYTHONPATH=src``), so
it works on the GPU machine as well as here. Synthetic panel: 500 symbols x 1,000 sessions x
16 features; the model and batches are identical on both devices; the first steps (CUDA
context, cuDNN autotune) are excluded from the timing.

    PYTHONPATH=src python benchmarks/gpu_sequence.py --out results.json [--steps 200]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd


def panel(n_symbols: int, n_sessions: int, n_features: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    idx = pd.MultiIndex.from_product(
        [pd.bdate_range("2005-01-03", periods=n_sessions), [f"S{i:03d}" for i in range(n_symbols)]],
        names=["session", "symbol"],
    )
    x = rng.standard_normal((len(idx), n_features)).astype(np.float32)
    return pd.DataFrame(x, index=idx, columns=[f"f{i}" for i in range(n_features)])


def throughput(arch: str, accelerator: str, X: pd.DataFrame, steps: int, batch: int) -> dict:
    import pytorch_lightning as pl
    import torch

    from py_finance.models.sequence import (
        Panel,
        SequenceParams,
        _build_net,
        _lightning_module,
        _loader,
        _quiet_lightning,
    )

    _quiet_lightning()
    p = SequenceParams(lookback=20, hidden=64, conv_channels=32, batch_size=batch, seed=0)
    pl.seed_everything(0, verbose=False)
    pan = Panel.from_frame(X, list(X.columns))
    t, n = pan.positions(X)
    ok = pan.window_ok(p.lookback)[t, n]
    t, n = t[ok], n[ok]
    y = np.random.default_rng(1).standard_normal(len(t)).astype(np.float32)
    loader = _loader((t, n, y), p, shuffle=True)
    module = _lightning_module(_build_net(arch, X.shape[1], p), torch.as_tensor(pan.values), p)

    class Timer(pl.Callback):
        warm = 10

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):  # type: ignore[no-untyped-def]
            if trainer.global_step == self.warm and not hasattr(self, "t0"):
                if accelerator == "gpu":
                    torch.cuda.synchronize()
                self.t0 = time.perf_counter()

        def on_train_end(self, trainer, pl_module):  # type: ignore[no-untyped-def]
            if accelerator == "gpu":
                torch.cuda.synchronize()
            self.t1 = time.perf_counter()

    timer = Timer()
    trainer = pl.Trainer(
        accelerator=accelerator,
        devices=1,
        max_steps=steps + timer.warm,
        max_epochs=1000,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[timer],
    )
    trainer.fit(module, train_dataloaders=loader)
    seconds = timer.t1 - timer.t0
    return {
        "arch": arch,
        "accelerator": accelerator,
        "steps": steps,
        "batch_size": batch,
        "seconds": seconds,
        "samples_per_s": steps * batch / seconds,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--cpu-steps", type=int, default=30)
    ap.add_argument("--batch", type=int, default=4096)
    ap.add_argument("--symbols", type=int, default=500)
    ap.add_argument("--sessions", type=int, default=1000)
    args = ap.parse_args()

    import torch

    X = panel(args.symbols, args.sessions, 16)
    results = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "panel": {"symbols": args.symbols, "sessions": args.sessions, "features": 16},
        "runs": [],
    }
    for arch in ("lstm", "tcn"):
        cpu = throughput(arch, "cpu", X, args.cpu_steps, args.batch)
        results["runs"].append(cpu)
        print(json.dumps(cpu), flush=True)
        if torch.cuda.is_available():
            gpu = throughput(arch, "gpu", X, args.steps, args.batch)
            gpu["speedup_vs_cpu"] = gpu["samples_per_s"] / cpu["samples_per_s"]
            results["runs"].append(gpu)
            print(json.dumps(gpu), flush=True)
    args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
