from __future__ import annotations

import re

import pytest

from py_finance.config import GROUPS, build, compose, conf_dir, load_params
from py_finance.config.schema import register, schema_for, validate
from py_finance.errors import ConfigError


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("model.num_leaves=abc", "model.num_leaves"),
        ("labels.horizon=1.5", "labels.horizon"),
        ("risk.max_position=high", "risk.max_position"),
        ("regime_policy.exposure.bull_low_vol=x", "regime_policy.exposure.bull_low_vol"),
        ("portfolio.top_k=[1,2]", "portfolio.top_k"),
        ("promotion.dsr_confidence=sure", "promotion.dsr_confidence"),
        ("backtest.cost_bps=cheap", "backtest.cost_bps"),
        ("models.xgboost.max_depth=deep", "models.xgboost.max_depth"),
        ("matrix.horizons=[one]", "matrix.horizons"),
    ],
)
def test_wrong_type_fails_naming_the_key(override, key):
    with pytest.raises(ConfigError, match=re.escape(f"'{key}")):
        compose([override])


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("+model.num_leafs=7", "model.num_leafs"),
        ("+features.bogus=1", "features.bogus"),
        ("+risk.sector_tilts.unknown=1", "risk"),  # sector_tilts is null by default: any value
        ("+promotion.dsr=0.9", "promotion.dsr"),
    ],
)
def test_unknown_key_fails_naming_it(override, key):
    if key == "risk":
        compose([override])  # a free-form node is left to its target
        return
    with pytest.raises(ConfigError, match=re.escape(f"'{key}'")):
        compose([override])


def test_unknown_top_level_key_and_matrix_model_without_config_fail():
    cfg = compose()
    with pytest.raises(ConfigError, match="'sead'"):
        validate({**dict(cfg), "sead": 1})
    with pytest.raises(ConfigError, match=r"matrix\.models"):
        compose(["matrix.models=[lightgbm,catboost]"])


def test_params_yaml_is_validated_when_built(tmp_path):
    from omegaconf import OmegaConf

    cfg = compose()
    cfg.model.num_leaves = "many"
    path = tmp_path / "params.yaml"
    path.write_text(OmegaConf.to_yaml(cfg))
    with pytest.raises(ConfigError, match=r"'model\.num_leaves'"):
        build(load_params(path))


def test_every_option_of_every_group_has_a_schema_in_the_config_store():
    from hydra.core.config_store import ConfigStore

    stored = register()
    repo = ConfigStore.instance().repo
    for group in GROUPS:
        for option in sorted(p.stem for p in (conf_dir() / group).glob("*.yaml")):
            assert f"schema/{group}/{option}" in stored
            assert f"{option}.yaml" in repo["schema"][group]
    assert schema_for("py_finance.tracking.promotion.PromotionConfig") is not None


def test_correct_configs_pass_unchanged():
    for override in ([], ["model=xgboost", "labels=h20"], ["model=lstm"], ["risk=full"]):
        validate(compose(override))


def test_target_outside_the_package_is_refused():
    with pytest.raises(ConfigError, match="outside"):
        schema_for("os.system")
