"""A project root with a promoted champion, built once per session and copied per test."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import uuid
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


ROOT = Path(__file__).resolve().parents[2]
SERVICES = ROOT / "scripts" / "services.sh"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture()
def services(tmp_path):
    tag = uuid.uuid4().hex[:8]
    env = {
        **os.environ,
        "PY_FINANCE_PG_PORT": str(free_port()),
        "PY_FINANCE_MLFLOW_PORT": str(free_port()),
        # Outside pytest's private tmp dirs: the server runs as the `postgres` user under root.
        "PY_FINANCE_PGDATA": f"/var/tmp/py-finance-pg-test-{tag}",
        "PY_FINANCE_SERVICES_DIR": str(tmp_path / "services"),
        "PY_FINANCE_VENV_BIN": str(Path(sys.executable).parent),
    }
    started = subprocess.run(
        ["bash", str(SERVICES), "mlflow"], env=env, capture_output=True, text=True, timeout=900
    )
    try:
        if started.returncode != 0:
            message = f"scripts/services.sh mlflow failed:\n{started.stdout}\n{started.stderr}"
            if os.environ.get("CI"):
                pytest.fail(message)
            pytest.skip(message)
        urls = dict(
            line.removeprefix("export ").split("=", 1)
            for line in started.stdout.splitlines()
            if line.startswith("export ")
        )
        yield env, urls
    finally:
        subprocess.run(["bash", str(SERVICES), "stop"], env=env, capture_output=True, timeout=120)
        shutil.rmtree(env["PY_FINANCE_PGDATA"], ignore_errors=True)
        Path(env["PY_FINANCE_PGDATA"] + ".initdb.log").unlink(missing_ok=True)
