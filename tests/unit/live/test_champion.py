"""The champion the loop trades must carry the local trading settings and universe."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from omegaconf import OmegaConf

from py_finance import tracking
from py_finance.config import resolved_config
from py_finance.live import champion as champion_mod
from py_finance.live.champion import ChampionMismatch, check_champion
from py_finance.tracking.deployment import config_differences, deployment_tags, flat

MODEL = SimpleNamespace(name="py-finance-bundled-h5", version="3")


def _ctx(small_settings, tmp_path, **changes):
    raw = OmegaConf.to_container(small_settings.raw, resolve=True)
    for key, value in changes.items():
        group, field = key.split(".")
        raw[group][field] = value
    settings = SimpleNamespace(raw=OmegaConf.create(raw))
    return SimpleNamespace(settings=settings, root=tmp_path)


def _tags(monkeypatch, small_settings, symbols=("AAPL", "MSFT"), config=True):
    tags = deployment_tags(resolved_config(small_settings.raw), "bundled", list(symbols))
    if not config:
        tags.pop(tracking.deployment.CONFIG_TAG)
    monkeypatch.setattr(champion_mod.tracking, "get_version_tags", lambda name, version: tags)


def test_the_same_settings_pass(monkeypatch, small_settings, tmp_path):
    _tags(monkeypatch, small_settings)
    assert check_champion(_ctx(small_settings, tmp_path), MODEL, ["AAPL", "MSFT"]) == []


def test_a_different_top_k_is_refused_naming_both_values(monkeypatch, small_settings, tmp_path):
    _tags(monkeypatch, small_settings)
    ctx = _ctx(small_settings, tmp_path, **{"portfolio.top_k": 7})
    with pytest.raises(ChampionMismatch) as refused:
        check_champion(ctx, MODEL, ["AAPL"])
    text = str(refused.value)
    assert "py-finance-bundled-h5 v3 was evaluated with portfolio.top_k=4 (local 7)" in text
    assert "\n" not in text
    overridden = check_champion(ctx, MODEL, ["AAPL"], override=True)
    assert overridden == [{"key": "portfolio.top_k", "champion": "4", "local": "7"}]


def test_where_outputs_go_and_how_runs_execute_are_not_trading_settings(
    monkeypatch, small_settings, tmp_path
):
    _tags(monkeypatch, small_settings)
    ctx = _ctx(
        small_settings,
        tmp_path,
        **{"live.slippage_bps": 25.0, "tracking.experiment": "x", "walk_forward.executor": "local"},
    )
    assert check_champion(ctx, MODEL, ["AAPL"]) == []


def test_names_outside_the_champions_universe_are_refused(monkeypatch, small_settings, tmp_path):
    _tags(monkeypatch, small_settings, symbols=("AAPL", "MSFT"))
    with pytest.raises(ChampionMismatch, match=r"1 name\(s\) outside the universe .* \(AAA\)"):
        check_champion(_ctx(small_settings, tmp_path), MODEL, ["AAPL", "AAA"])


def test_a_version_without_a_recorded_config_is_refused(monkeypatch, small_settings, tmp_path):
    _tags(monkeypatch, small_settings, config=False)
    with pytest.raises(ChampionMismatch, match="carries no recorded config"):
        check_champion(_ctx(small_settings, tmp_path), MODEL, ["AAPL"])


def test_config_differences_list_absent_keys_and_sort():
    diffs = config_differences(
        flat({"risk": {"vol_target": None}, "portfolio": {"top_k": 5}}),
        flat({"portfolio": {"top_k": 5}, "risk": {"vol_target": 0.15, "max_sector": 0.4}}),
    )
    assert diffs == [
        ("risk.max_sector", "<absent>", "0.4"),
        ("risk.vol_target", "null", "0.15"),
    ]


def test_an_open_universe_may_gain_members(monkeypatch, small_settings, tmp_path):
    # A membership-driven universe (here the synthetic index) lists new names as they join.
    config = resolved_config(small_settings.raw)
    config["data"] = {**config["data"], "source": "synthetic", "symbols": None}
    tags = deployment_tags(config, "synthetic-abc123", ["S0001", "S0002"])
    monkeypatch.setattr(champion_mod.tracking, "get_version_tags", lambda name, version: tags)
    ctx = _ctx(small_settings, tmp_path, **{"data.source": "synthetic", "data.symbols": None})
    assert check_champion(ctx, MODEL, ["S0001", "S0002", "S0060"]) == []


def test_the_fill_model_is_a_trading_setting(monkeypatch, small_settings, tmp_path):
    # The loop trades the champion's fill model (paper fills, Alpaca's order type): a local
    # backtest.fill that differs is refused like any trading setting.
    _tags(monkeypatch, small_settings)
    ctx = _ctx(small_settings, tmp_path, **{"backtest.fill": "next_open"})
    with pytest.raises(ChampionMismatch, match=r'backtest.fill="next_close" \(local "next_open"\)'):
        check_champion(ctx, MODEL, ["AAPL"])


def test_a_version_recorded_before_the_fill_model_was_evaluated_at_the_next_close():
    recorded = {"backtest": {"execution_lag": 1}}
    assert (
        config_differences(
            flat(recorded), flat({"backtest": {"execution_lag": 1, "fill": "next_close"}})
        )
        == []
    )
    assert config_differences(
        flat(recorded), flat({"backtest": {"execution_lag": 1, "fill": "next_open"}})
    ) == [("backtest.fill", '"next_close"', '"next_open"')]
