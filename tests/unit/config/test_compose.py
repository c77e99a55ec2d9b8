from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from py_finance.config import GROUPS, build, compose, conf_dir, instantiate, write_params
from py_finance.errors import ConfigError

ROOT = Path(__file__).resolve().parents[3]


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (conf_dir() / group).glob("*.yaml"))


@pytest.mark.parametrize(("group", "option"), [(g, o) for g in GROUPS for o in _options(g)])
def test_every_option_of_every_group_composes_and_instantiates(group, option):
    cfg = compose([f"{group}={option}"])
    obj = instantiate(cfg[group])
    assert obj is not None
    if group == "model":
        assert hasattr(obj, "fit") and hasattr(obj, "predict")


def test_every_group_has_an_option():
    for group in GROUPS:
        assert _options(group), f"conf/{group} has no options"


def test_default_settings_carry_the_seed_risk_limits():
    s = build(compose())
    assert s.risk.max_position == 0.20
    assert s.risk.max_sector == 0.40
    assert s.risk.drawdown_throttle == 0.15
    assert s.regime_policy.exposure == {
        "bull_low_vol": 1.0,
        "bull_high_vol": 0.4,
        "bear_low_vol": 0.7,
        "bear_high_vol": 0.25,
    }
    assert s.labels.horizon == 5
    assert s.portfolio.top_k == 10
    assert s.backtest.execution_lag == 1 and s.backtest.cost_bps == 10.0


def test_committed_params_yaml_is_the_composition_of_conf(tmp_path):
    fresh = write_params(tmp_path / "params.yaml")
    committed = yaml.safe_load((ROOT / "params.yaml").read_text())
    assert yaml.safe_load(fresh.read_text()) == committed, "run `make params` and commit"


def test_invalid_value_fails_with_the_key_name():
    with pytest.raises(ConfigError, match="max_position"):
        build(compose(["risk.max_position=1.5"]))
    with pytest.raises(ConfigError, match="execution_lag"):
        build(compose(["backtest.execution_lag=0"]))


def test_unknown_option_is_a_config_error():
    with pytest.raises(ConfigError):
        compose(["model=does_not_exist"])


def test_instantiate_refuses_targets_outside_the_package():
    with pytest.raises(ConfigError):
        instantiate({"_target_": "os.system", "command": "true"})


def test_universe_ids_name_the_universe_not_the_dates(small_settings):
    from dataclasses import replace

    data = small_settings.data
    bundled = replace(data, symbols=None)
    assert bundled.universe_id() == "bundled"
    assert replace(bundled, end="2010-01-04").universe_id() == "bundled"
    sliced = data.universe_id()
    assert sliced.startswith("bundled-") and len(sliced) == len("bundled-") + 6
    assert replace(data, start="1996-01-02", end="1999-12-31").universe_id() == sliced
    assert replace(data, symbols=(*data.symbols, "GE")).universe_id() != sliced
    assert replace(data, symbols=tuple(reversed(data.symbols))).universe_id() == sliced
