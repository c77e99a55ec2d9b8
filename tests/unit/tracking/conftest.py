"""Shared MLflow store for the tracking tests: one SQLite database per test session.

Creating a fresh MLflow SQLite database runs every schema migration (a few seconds), so the
mlflow-backed tests share one store; each test uses its own run and registered-model names.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from py_finance.tracking.config import TrackingConfig


@dataclass(frozen=True)
class Store:
    root: Path
    cfg: TrackingConfig
    uri: str


@pytest.fixture(scope="session")
def tracking_store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    from py_finance import tracking

    root = tmp_path_factory.mktemp("mlflow-store")
    cfg = TrackingConfig(experiment="py-finance-tests")
    tracking.setup(cfg, root=root)
    return Store(root=root, cfg=cfg, uri=f"sqlite:///{root.resolve() / 'mlflow.db'}")


@pytest.fixture
def store(tracking_store: Store) -> Iterator[Store]:
    """The shared store, made current again (a test may have pointed mlflow elsewhere)."""
    from py_finance import tracking

    tracking.setup(tracking_store.cfg, root=tracking_store.root)
    yield tracking_store
    import mlflow

    # A test that failed inside a run must not leave it open for the next one.
    while mlflow.active_run() is not None:
        mlflow.end_run("FAILED")
