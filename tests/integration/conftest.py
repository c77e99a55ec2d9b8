"""A project root with a promoted champion, built once per session and copied per test."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import SLICE

# Three out-of-sample years cannot make a Sharpe of ~0.6 significant at the default 95% DSR;
# the live tests need a champion to trade, so the slice's gate asks for 50%.
LIVE_OVERRIDES = [*SLICE, "promotion.dsr_confidence=0.5"]


@pytest.fixture(scope="session")
def champion_base(tmp_path_factory) -> Path:
    from py_finance.config import build, compose
    from py_finance.pipeline import evaluation, research
    from py_finance.pipeline.context import Context

    root = tmp_path_factory.mktemp("champion")
    ctx = Context(build(compose(LIVE_OVERRIDES)), root)
    research.ingest(ctx)
    research.features(ctx)
    research.labels(ctx)
    research.regimes(ctx)
    research.train(ctx, progress=False)
    evaluation.backtest(ctx)
    evaluation.report(ctx)
    decision = evaluation.promote(ctx)
    assert decision["promoted"], decision
    return root


@pytest.fixture
def live_root(champion_base, tmp_path) -> Path:
    """A private copy of the champion's project root (store, models, MLflow)."""
    root = tmp_path / "root"
    shutil.copytree(champion_base, root)
    return root
