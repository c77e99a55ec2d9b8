"""Cells of the DVC matrix pipeline (``pipelines/matrix/dvc.yaml``): one model on one horizon.

``params.yaml`` holds every matrix model under ``models.<name>`` and the matrix under
``matrix``. A cell's config is ``params.yaml`` with ``model`` taken from ``models.<name>``,
the horizon set, every key that ``conf/`` ties to ``${labels.horizon}`` (rebalancing, the
walk-forward embargo, a sequence model's validation gap) following it, and its outputs under
``<paths.models>/matrix/<name>/h<h>`` and ``<paths.backtest>/matrix/<name>/h<h>``; the
matrix's shared features, labels and regimes live under ``<paths.features>/matrix``.
"""

from __future__ import annotations

import argparse
import functools
from pathlib import Path
from typing import Any

from py_finance.config import build, conf_dir, load_params
from py_finance.errors import ConfigError, cli_errors
from py_finance.pipeline import evaluation, research
from py_finance.pipeline.context import Context

HORIZON = "${labels.horizon}"
STAGES = ("features", "regimes", "labels", "train", "backtest")
# The pipeline's template (tracked) and where ``init`` puts it (untracked): DVC sees the
# matrix, in ``dvc status`` and ``dvc metrics show``, only once a user asks for it.
TEMPLATE = Path("pipelines/matrix/template.yaml")
PIPELINE = Path("pipelines/matrix/dvc.yaml")


def init(root: Path) -> Path:
    """Copy the matrix pipeline's template to ``pipelines/matrix/dvc.yaml`` under ``root``."""
    src, dest = root / TEMPLATE, root / PIPELINE
    if not src.exists():
        raise ConfigError(f"{src} not found: run this from the project root (or pass --root)")
    text = src.read_text()
    if dest.exists() and dest.read_text() == text:
        return dest
    dest.write_text(text)
    return dest


@functools.lru_cache(maxsize=16)
def horizon_keys(config_dir: str | None = None, model: str | None = None) -> tuple[str, ...]:
    """Dotted keys whose value in ``conf/`` is the interpolation ``${labels.horizon}``.

    With ``model`` (an option of ``conf/model/``), the config is composed with that model, so
    its own keys (a sequence model's ``val_gap``) are found under ``model.``.
    """
    import warnings

    from hydra import compose, initialize_config_dir
    from omegaconf import DictConfig

    directory = str(Path(config_dir or conf_dir()).resolve())
    overrides = (
        [f"model={model}"]
        if model and (Path(directory) / "model" / f"{model}.yaml").exists()
        else []
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with initialize_config_dir(directory, version_base=None):
            cfg = compose(config_name="config", overrides=overrides)
    found: list[str] = []

    def walk(node: DictConfig, prefix: str) -> None:
        for key in node:
            name = str(key)
            child: Any = node._get_node(name)
            if isinstance(child, DictConfig):
                walk(child, f"{prefix}{name}.")
            elif child is not None and child._is_interpolation() and child._value() == HORIZON:
                found.append(f"{prefix}{name}")

    walk(cfg, "")
    return tuple(found)


def cell_config(params: Any, model: str, horizon: int, config_dir: str | None = None) -> Any:
    """The composed config of one matrix cell (see the module docstring)."""
    from omegaconf import OmegaConf

    cfg: Any = OmegaConf.create(OmegaConf.to_container(params, resolve=True))
    models = cfg.get("models") or {}
    if model not in models:
        raise ConfigError(
            f"config key 'models.{model}' is missing: the matrix models are {list(models)}"
        )
    cfg.model = models[model]
    cfg.labels.horizon = int(horizon)
    for key in horizon_keys(config_dir, model):
        if key.startswith("models."):
            continue
        if key.startswith("model."):
            if key.removeprefix("model.") in cfg.model:
                cfg.model[key.removeprefix("model.")] = int(horizon)
            continue
        OmegaConf.update(cfg, key, int(horizon), merge=False)
    cfg.paths.features = f"{cfg.paths.features}/matrix"
    cfg.paths.models = f"{cfg.paths.models}/matrix/{model}"
    cfg.paths.backtest = f"{cfg.paths.backtest}/matrix/{model}"
    return cfg


def run_cell(stage: str, ctx: Context) -> Any:
    """Run one stage of a cell."""
    if stage == "features":
        return research.features(ctx)
    if stage == "regimes":
        return research.regimes(ctx)
    if stage == "labels":
        return research.labels(ctx)
    if stage == "train":
        return research.train(ctx, progress=False)
    if stage == "backtest":
        return evaluation.backtest(ctx)
    raise ConfigError(f"unknown matrix stage {stage!r}; one of {STAGES}")


@cli_errors
def main(argv: list[str] | None = None) -> None:
    """``python pipelines/matrix_stage.py STAGE [--model NAME] [--horizon H]``, or ``init``."""
    from py_finance.pipeline.cli import setup_logging

    parser = argparse.ArgumentParser(description="one stage of a DVC matrix cell")
    parser.add_argument(
        "stage", choices=("init", *STAGES), help="init: write pipelines/matrix/dvc.yaml"
    )
    parser.add_argument("--model", default=None, help="matrix model (default: the first)")
    parser.add_argument("--horizon", type=int, default=None, help="label horizon (sessions)")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--root", default=".")
    args = parser.parse_args(argv)
    setup_logging()
    root = Path(args.root).resolve()
    if args.stage == "init":
        dest = init(root)
        print(f"wrote {dest.relative_to(root)}: `.venv/bin/dvc repro {PIPELINE}` runs it")
        return
    params = load_params(root / args.params)
    model = args.model or str(params.matrix.models[0])
    horizon = args.horizon or int(params.labels.horizon)
    ctx = Context(build(cell_config(params, model, horizon)), root)
    run_cell(args.stage, ctx)
