"""Where `make ui` lands: the experiment's runs, in model-training mode, key metrics as columns.

MLflow 3.17's UI opens a fresh browser on its GenAI home (traces, prompts, an assistant
panel; no model registry in the sidebar) and shows a runs table with no metric column. Two
things it reads from the address fix that without touching the browser's storage:

- ``workflowType=machine_learning``: the sidebar of model training (Runs, Models, Model
  registry) instead of GenAI's;
- ``viewStateShareKey=<id>``: a view saved to the experiment, the experiment tag
  ``mlflow.sharedViewState.<id>`` holding ``{"name", "createdAt", "updatedAt", "state"}``
  with ``state`` the JSON of the runs table's columns, column order and sort (the format the
  UI's own "Views" menu writes; the view is listed there by its name).

>>> tracking.setup(cfg.tracking)
>>> experiment = experiment_id(cfg.tracking.experiment)
>>> landing_url("http://127.0.0.1:5000", experiment, save_runs_view(experiment))
'http://127.0.0.1:5000/#/experiments/1/runs?workflowType=machine_learning&viewStateShareKey=key-metrics'
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any
from urllib.parse import urlencode

from py_finance.errors import PyFinanceError
from py_finance.tracking._mlflow import import_mlflow

log = logging.getLogger(__name__)

VIEW_ID = "key-metrics"
VIEW_NAME = "Key metrics"
VIEW_TAG_PREFIX = "mlflow.sharedViewState."
WORKFLOW_TYPE = "machine_learning"
# Columns of the saved view, left to right: what tells two backtests apart at a glance (units
# in docs/platform.md), then the run tags that say which configuration it was.
KEY_METRICS = ("sharpe", "dsr", "cagr", "max_drawdown", "sortino", "turnover", "oos_rank_ic")
KEY_TAGS = ("model", "horizon", "regime_policy", "variant")
SORT_METRIC = "sharpe"


def _column(group: str, key: str) -> str:
    # the UI's column id: group.`key` (backquotes, so that dots in a key stay inside it)
    return f"{group}.`{key}`"


def runs_view_state(
    metrics: tuple[str, ...] = KEY_METRICS, tags: tuple[str, ...] = KEY_TAGS
) -> dict[str, Any]:
    """The runs table's state in the view: metric and tag columns in order, best Sharpe first."""
    columns = [_column("metrics", m) for m in metrics] + [_column("tags", t) for t in tags]
    return {
        "selectedColumns": [*columns, _column("attributes", "Models")],
        "columnOrder": columns,
        "orderByKey": _column("metrics", SORT_METRIC),
        "orderByAsc": False,
    }


def save_runs_view(experiment_id: str) -> str:
    """Save the key-metrics view to an experiment of the current tracking store; return its id.

    The view is rewritten when its columns or sort differ from :func:`runs_view_state` (a
    newer py-finance, or an edit made in the UI and saved over it), and left as it is
    otherwise, so its creation time stays put.
    """
    mlflow = import_mlflow()
    client = mlflow.MlflowClient()
    key = VIEW_TAG_PREFIX + VIEW_ID
    state = json.dumps(runs_view_state(), separators=(",", ":"))
    old = client.get_experiment(experiment_id).tags.get(key)
    envelope = _read_envelope(old)
    if envelope is not None and envelope.get("state") == state and envelope["name"] == VIEW_NAME:
        return VIEW_ID
    now_ms = int(time.time() * 1000)
    created = envelope["createdAt"] if envelope is not None else now_ms
    value = {"name": VIEW_NAME, "createdAt": created, "updatedAt": now_ms, "state": state}
    client.set_experiment_tag(experiment_id, key, json.dumps(value, separators=(",", ":")))
    log.info("saved the view %r of experiment %s", VIEW_NAME, experiment_id)
    return VIEW_ID


def experiment_id(name: str) -> str:
    """Id of the named experiment of the current tracking store."""
    experiment = import_mlflow().MlflowClient().get_experiment_by_name(name)
    if experiment is None:
        raise PyFinanceError(f"no experiment {name!r} in the tracking store")
    return str(experiment.experiment_id)


def landing_url(base_url: str, experiment_id: str, view_id: str = VIEW_ID) -> str:
    """Address of the experiment's runs in model-training mode with the saved view."""
    query = urlencode({"workflowType": WORKFLOW_TYPE, "viewStateShareKey": view_id})
    return f"{base_url.rstrip('/')}/#/experiments/{experiment_id}/runs?{query}"


def registry_url(base_url: str) -> str:
    """Address of the model registry (the Model registry link of the landing's sidebar).

    The registry page does not read ``workflowType``: opened on its own it shows the sidebar
    of the mode last chosen in this browser (GenAI on a first visit).
    """
    return f"{base_url.rstrip('/')}/#/models"


def _read_envelope(value: str | None) -> dict[str, Any] | None:
    if value is None:
        return None
    try:
        envelope = json.loads(value)
    except json.JSONDecodeError:
        return None
    if not isinstance(envelope, dict) or not isinstance(envelope.get("createdAt"), int):
        return None
    return envelope
