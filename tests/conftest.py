"""Shared fixtures: a small bundled-data slice and a composed config rooted in tmp_path."""

from __future__ import annotations

import importlib.util
import os
import warnings
from pathlib import Path
from types import ModuleType

import pytest

os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
warnings.filterwarnings("ignore", category=DeprecationWarning)
warnings.filterwarnings("ignore", category=FutureWarning)

ROOT = Path(__file__).resolve().parents[1]


def script(name: str) -> ModuleType:
    """``scripts/<name>.py`` imported as a module (scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# A few names over a few years: enough for three yearly walk-forward folds.
SLICE = [
    "data.symbols=[AAPL,MSFT,JNJ,XOM,KO,JPM,PFE,WMT]",
    "data.start=1995-01-03",
    "data.end=2000-12-29",
    "walk_forward.min_train_sessions=504",
    "regimes.min_train_sessions=252",
    "model.n_estimators=50",
    "model.learning_rate=0.05",  # the slice's models, whatever the defaults (100 at 0.1)
    "portfolio.top_k=4",
]
# A sequence model small enough for the slice (seconds per fold on CPU).
SMALL_SEQUENCE = [
    "model.max_epochs=2",
    "model.epoch_windows=2048",
    "model.hidden=8",
    "model.mc_samples=5",
    "model.accelerator=cpu",
]
# A promotion gate that lets the slice's candidate through (tests of what comes after it).
OPEN_GATE = [
    "promotion.dsr_confidence=0.001",
    "promotion.min_sharpe=-100",
    "promotion.beat_benchmark=false",
    "promotion.max_drawdown=null",
    "promotion.min_oos_sessions=100",
]


@pytest.fixture()
def small_settings():
    from py_finance.config import build, compose

    return build(compose(SLICE))


@pytest.fixture()
def small_ctx(tmp_path, small_settings):
    from py_finance.pipeline.context import Context

    return Context(small_settings, tmp_path)


@pytest.fixture(autouse=True, scope="module")
def _isolated_mlflow_uris():
    """Each test module starts and ends with no process-wide MLflow tracking or registry URI.

    ``mlflow.set_tracking_uri`` / ``set_registry_uri`` write module globals and export
    ``MLFLOW_TRACKING_URI`` / ``MLFLOW_REGISTRY_URI``, so without this one module's store
    would become the next module's registry (and its subprocesses' too). Module scope: a
    module-scoped fixture may set a store for all of its tests.
    """
    import sys

    def reset() -> None:
        for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
            os.environ.pop(name, None)
        if "mlflow" in sys.modules:
            from mlflow.tracking._model_registry import utils as registry_utils
            from mlflow.tracking._tracking_service import utils as tracking_utils

            tracking_utils._tracking_uri = None
            registry_utils._registry_uri = None

    saved = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    reset()
    yield
    reset()
    os.environ.update({k: v for k, v in saved.items() if v is not None})
