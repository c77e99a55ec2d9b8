"""A run's DVC stage names, as error messages give them to `dvc repro` and `dvc checkout`."""

from __future__ import annotations

from py_finance.config import build, compose
from py_finance.pipeline.context import Context
from py_finance.pipeline.matrix import cell_config


def test_the_default_pipeline_names_its_own_stages(small_ctx):
    assert small_ctx.dvc_stage("features") == "features"
    assert small_ctx.dvc_stage("train") == "train"


def test_a_matrix_cell_names_its_stage_in_the_matrix_pipeline(tmp_path):
    ctx = Context(build(cell_config(compose(), "xgboost", 20)), tmp_path)
    target = "pipelines/matrix/dvc.yaml:m_"
    assert ctx.dvc_stage("features") == f"{target}features"
    assert ctx.dvc_stage("labels") == f"{target}labels@20"
    assert ctx.dvc_stage("train") == f"{target}train@xgboost-20"
    assert ctx.dvc_stage("backtest") == f"{target}backtest@xgboost-20"
