"""Deployments: one registered model per universe and horizon, carrying its config.

A registered model is a deployment (``py-finance-<universe>-h<horizon>``): the research
question it answers, apart from the data snapshot, which a daily refresh moves on. Each version
carries, as tags, the complete resolved config of the backtest that earned it
(:data:`CONFIG_TAG`), its universe (:data:`UNIVERSE_TAG`) and the names it was trained on
(:data:`SYMBOLS_TAG`). The live loop trades a champion only with the settings it was evaluated
with: :func:`config_differences` lists the trading settings where a local config departs from
the recorded one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from py_finance.config import flatten as flat

__all__ = [
    "CONFIG_TAG",
    "SYMBOLS_TAG",
    "UNIVERSE_TAG",
    "config_differences",
    "deployment_tags",
    "describe_differences",
    "flat",
    "is_trading_setting",
    "recorded_config",
    "recorded_symbols",
]

CONFIG_TAG = "deployment.config"
UNIVERSE_TAG = "deployment.universe"
SYMBOLS_TAG = "deployment.symbols"

# The settings that shape what the live loop trades (weights from scores): features and the
# model's inputs, labels (the horizon and the rebalance rhythm), portfolio construction, risk
# overlays, the regime detector and policy, the execution lag, and what the universe is.
TRADING_PREFIXES = ("features.", "labels.", "portfolio.", "risk.", "regime_policy.", "regimes.")
TRADING_KEYS = (
    "backtest.execution_lag",
    "backtest.fill",
    "backtest.periods_per_year",
    "data.source",
    "data.symbols",
    "data.universe",
    "data.benchmark",
    "data.calendar",
)
# Trading settings added after versions were first recorded, with the value such a version
# was evaluated with: a version recorded without the key compares as that value.
RECORDED_DEFAULTS = {"backtest.fill": "next_close"}


def is_trading_setting(key: str) -> bool:
    """Whether a flattened config key changes the weights the live loop trades."""
    return key.startswith(TRADING_PREFIXES) or key in TRADING_KEYS


def _text(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def config_differences(
    recorded: Mapping[str, Any], local: Mapping[str, Any]
) -> list[tuple[str, str, str]]:
    """Trading settings whose local value differs from the recorded one.

    Parameters
    ----------
    recorded, local
        Flattened configs (``{"portfolio.top_k": 10, ...}``).

    Returns
    -------
    list of (key, recorded value, local value)
        Values as JSON text (``"<absent>"`` for a key one side lacks), sorted by key.
    """
    recorded = {**{k: v for k, v in RECORDED_DEFAULTS.items() if k in local}, **recorded}
    keys = sorted(k for k in {*recorded, *local} if is_trading_setting(k))
    out = []
    for key in keys:
        a = _text(recorded[key]) if key in recorded else "<absent>"
        b = _text(local[key]) if key in local else "<absent>"
        if a != b:
            out.append((key, a, b))
    return out


def describe_differences(diffs: Sequence[tuple[str, str, str]], limit: int = 3) -> str:
    """``portfolio.top_k=5 (local 10), risk.vol_target=null (local 0.15) and 2 more``."""
    shown = [f"{k}={a} (local {b})" for k, a, b in diffs[:limit]]
    more = len(diffs) - limit
    return ", ".join(shown) + (f" and {more} more" if more > 0 else "")


def deployment_tags(config: Mapping[str, Any], universe: str, symbols: Sequence[str]) -> dict:
    """The version tags of a deployment: resolved config (nested JSON), universe, names."""
    return {
        CONFIG_TAG: json.dumps(config, sort_keys=True, default=str),
        UNIVERSE_TAG: universe,
        SYMBOLS_TAG: json.dumps(sorted(str(s) for s in symbols)),
    }


def recorded_config(tags: Mapping[str, str]) -> dict[str, Any] | None:
    """The nested resolved config a version carries, or None for a version without one."""
    text = tags.get(CONFIG_TAG)
    return None if not text else dict(json.loads(text))


def recorded_symbols(tags: Mapping[str, str]) -> list[str] | None:
    """The names a version was trained on, or None when not recorded."""
    text = tags.get(SYMBOLS_TAG)
    return None if not text else list(json.loads(text))
