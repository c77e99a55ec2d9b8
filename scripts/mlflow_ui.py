"""Serve the MLflow UI on the project's tracking store and print the address to open.

.venv/bin/python scripts/mlflow_ui.py               # `make ui`: port 5000
.venv/bin/python scripts/mlflow_ui.py --port 5001

The printed address opens the experiment's runs in the UI's model-training mode (Model
registry in the sidebar) with the saved view "Key metrics": sharpe, dsr, cagr, max_drawdown,
... as columns, best Sharpe first. The bare http://127.0.0.1:5000 opens MLflow 3's GenAI home
instead. When the configured store is a tracking server (http://...), that server is the UI:
the view is saved there and its address printed, nothing is started.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
from pathlib import Path

from py_finance.errors import PyFinanceError, cli_errors


@cli_errors
def main(argv: list[str] | None = None) -> None:
    from py_finance import tracking
    from py_finance.config import instantiate, load_params
    from py_finance.pipeline.cli import setup_logging
    from py_finance.tracking import ui

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="address the UI listens on")
    parser.add_argument("--port", type=int, default=5000, help="port the UI listens on")
    parser.add_argument("--params", default="params.yaml", help="composed config (params.yaml)")
    parser.add_argument("--root", default=".", help="project root the paths are relative to")
    args = parser.parse_args(argv)
    setup_logging(logging.WARNING)

    root = Path(args.root).resolve()
    params = Path(args.params)
    # only the tracking settings: the UI needs no other section to be valid
    cfg = instantiate(load_params(params if params.is_absolute() else root / params).tracking)
    uri = tracking.resolve_tracking_uri(cfg.tracking_uri, root)
    tracking.setup(cfg, root)  # creates the experiment on a fresh store, as the pipeline would
    experiment = ui.experiment_id(cfg.experiment)
    view = ui.save_runs_view(experiment)

    server = tracking.is_server(uri)
    base = uri if server else f"http://{args.host}:{args.port}"
    print(f"MLflow UI of {uri}, experiment {cfg.experiment!r}")
    print(f"open {ui.landing_url(base, experiment, view)}")
    print(f"model registry: {ui.registry_url(base)}", flush=True)
    if server:
        return
    mlflow = Path(sys.executable).with_name("mlflow")
    executable = str(mlflow) if mlflow.exists() else shutil.which("mlflow")
    if executable is None:
        raise PyFinanceError("no `mlflow` executable next to this Python: run `make install`")
    # The server's job runner (huey workers) serves nothing the UI of this project uses.
    os.environ.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    os.chdir(root)
    os.execv(
        executable,
        [
            executable,
            "ui",
            "--backend-store-uri",
            uri,
            "--workers",
            "1",
            "--host",
            args.host,
            "--port",
            str(args.port),
        ],
    )


if __name__ == "__main__":
    main()
