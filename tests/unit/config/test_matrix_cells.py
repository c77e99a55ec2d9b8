"""Cells of the DVC matrix: model and horizon swapped in, horizon-bound keys following."""

from __future__ import annotations

import pytest
import yaml

from py_finance.config import build, compose
from py_finance.errors import ConfigError
from py_finance.pipeline.matrix import cell_config, horizon_keys

ROOT_DVC = "pipelines/matrix/template.yaml"


def test_horizon_bound_keys_come_from_conf():
    keys = horizon_keys()
    assert "portfolio.rebalance_every" in keys and "walk_forward.embargo" in keys


def test_cell_swaps_model_and_horizon_and_moves_outputs():
    cfg = cell_config(compose(), "xgboost", 20)
    s = build(cfg)
    assert s.model_name == "xgboost"
    assert s.labels.horizon == 20 == s.portfolio.rebalance_every == s.walk_forward.embargo
    assert s.paths["models"] == "data/models/matrix/xgboost"
    assert s.paths["backtest"] == "data/backtest/matrix/xgboost"
    # The default pipeline's config is untouched.
    assert build(compose()).paths["models"] == "data/models"


def test_cell_of_an_unconfigured_model_names_the_key():
    with pytest.raises(ConfigError, match=r"models\.catboost"):
        cell_config(compose(), "catboost", 5)


def test_matrix_train_stages_depend_on_their_own_model_params_only():
    from py_finance.config import project_root

    stages = yaml.safe_load((project_root() / ROOT_DVC).read_text())["stages"]
    assert "models.${item.model}" in stages["m_train"]["params"]
    assert "model" not in stages["m_train"]["params"]
    assert "models" not in stages["m_backtest"]["params"]


@pytest.mark.parametrize("model", ["tcn", "lstm", "transformer"])
def test_a_sequence_model_is_a_matrix_cell_with_its_purge_following_the_horizon(model):
    # What conf/config.yaml's defaults gain when a sequence model joins the matrix.
    cfg = cell_config(compose([f"+model@models.{model}={model}"]), model, 20)
    s = build(cfg)
    assert s.model_name == model
    fitted = s.model_factory()
    assert fitted.params.val_gap == 20 == s.labels.horizon
    assert s.paths["models"] == f"data/models/matrix/{model}"
