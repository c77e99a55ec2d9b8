"""Out-of-sample IC / rank IC per model and horizon on the bundled data (docs/models.md).

Yearly purged walk-forward with the shipped configs (embargo = horizon), the same path as
the `train` stage. Tree models by default; sequence models are slow on CPU (see
benchmarks/gpu_walk_forward.py for the GPU run).

    python scripts/model_skill_table.py [--models lightgbm xgboost] [--horizons 1 5 20]
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from py_finance.errors import cli_errors


@cli_errors
def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--models", nargs="+", default=["lightgbm", "xgboost"])
    p.add_argument("--horizons", type=int, nargs="+", default=[1, 5, 20])
    args = p.parse_args(argv)

    from py_finance.config import build, compose
    from py_finance.data.sources.bundled import BundledSource
    from py_finance.features.labels import forward_returns, target_column
    from py_finance.features.technical import build_features
    from py_finance.models.walk_forward import skill_summary, walk_forward

    src = BundledSource()
    bars = src.bars(src.symbols(), *src.coverage())
    prices = bars.pivot(index="session", columns="symbol", values="adj_close")
    for model in args.models:
        for h in args.horizons:
            s = build(compose([f"model={model}", f"labels=h{h}"]))
            feats = build_features(prices, s.features)
            labels = forward_returns(prices, s.labels)
            t0 = time.perf_counter()
            res = walk_forward(
                feats,
                labels,
                target_column(s.labels),
                s.model_factory,
                s.walk_forward,
                eval_column=s.labels.column,
                progress=False,
            )
            skill = skill_summary(res.predictions, labels, s.labels.column)
            row = {
                "model": model,
                "horizon": h,
                "folds": len(res.folds),
                "seconds": round(time.perf_counter() - t0, 1),
                **skill,
            }
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
