"""The MLflow UI landing: the saved key-metrics view and the address `make ui` prints."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

from py_finance.backtest.metrics import METRIC_KEYS
from py_finance.tracking import ui


def _client():
    import mlflow

    return mlflow.MlflowClient()


def test_view_shows_key_metrics_then_tags_in_order_best_sharpe_first() -> None:
    state = ui.runs_view_state()

    order = state["columnOrder"]
    assert order[:4] == [
        "metrics.`sharpe`",
        "metrics.`dsr`",
        "metrics.`cagr`",
        "metrics.`max_drawdown`",
    ]
    assert order[len(ui.KEY_METRICS)] == "tags.`model`"
    assert set(order) <= set(state["selectedColumns"])
    assert state["orderByKey"] == "metrics.`sharpe`"
    assert state["orderByAsc"] is False


def test_view_metrics_are_metrics_the_runs_log() -> None:
    # a column named after a metric no run logs would stay empty in every row
    logged = set(METRIC_KEYS) | {"oos_rank_ic"}
    assert set(ui.KEY_METRICS) <= logged


def test_landing_url_opens_runs_in_model_training_mode_with_the_view() -> None:
    url = ui.landing_url("http://127.0.0.1:5000/", "7")

    base, fragment = url.split("#", 1)
    assert base == "http://127.0.0.1:5000/"
    route = urlsplit(fragment)
    assert route.path == "/experiments/7/runs"
    assert parse_qs(route.query) == {
        "workflowType": ["machine_learning"],
        "viewStateShareKey": [ui.VIEW_ID],
    }
    assert ui.registry_url("http://h:1/") == "http://h:1/#/models"


def test_saved_view_is_an_experiment_tag_in_the_ui_format(store) -> None:
    experiment = ui.experiment_id(store.cfg.experiment)
    key = ui.VIEW_TAG_PREFIX + ui.VIEW_ID
    if key in _tags(experiment):  # another test of this session saved it first
        _client().delete_experiment_tag(experiment, key)

    assert ui.save_runs_view(experiment) == ui.VIEW_ID

    envelope = json.loads(_tags(experiment)[key])
    assert envelope["name"] == ui.VIEW_NAME
    assert isinstance(envelope["createdAt"], int)
    assert envelope["updatedAt"] >= envelope["createdAt"]
    # the UI parses `state` a second time: a JSON string inside the JSON envelope
    assert json.loads(envelope["state"]) == ui.runs_view_state()


def test_saving_the_view_again_keeps_it_and_repairs_an_edited_one(store) -> None:
    experiment = ui.experiment_id(store.cfg.experiment)
    key = ui.VIEW_TAG_PREFIX + ui.VIEW_ID
    ui.save_runs_view(experiment)
    first = _tags(experiment)[key]

    ui.save_runs_view(experiment)
    assert _tags(experiment)[key] == first

    edited = json.loads(first)
    edited["state"] = json.dumps({"selectedColumns": [], "orderByKey": "attributes.start_time"})
    _client().set_experiment_tag(experiment, key, json.dumps(edited))
    ui.save_runs_view(experiment)
    repaired = json.loads(_tags(experiment)[key])
    assert json.loads(repaired["state"]) == ui.runs_view_state()
    assert repaired["createdAt"] == json.loads(first)["createdAt"]


def _tags(experiment_id: str) -> dict[str, str]:
    return dict(_client().get_experiment(experiment_id).tags)
