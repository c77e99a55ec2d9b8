"""``live`` settings: the Alpaca endpoint, retries and circuit breaker."""

from __future__ import annotations

import pytest

from py_finance.errors import ConfigError
from py_finance.live.config import AlpacaSettings, LiveConfig


def test_live_alpaca_defaults_and_overrides():
    assert LiveConfig().alpaca_settings() == AlpacaSettings()
    cfg = LiveConfig(alpaca={"base_url": "http://127.0.0.1:8080", "breaker_failures": 3})
    assert cfg.alpaca_settings().base_url == "http://127.0.0.1:8080"
    assert cfg.alpaca_settings().breaker_failures == 3
    assert LiveConfig(alpaca={"base_url": ""}).alpaca_settings().base_url is None


@pytest.mark.parametrize(
    ("alpaca", "message"),
    [
        ({"bogus": 1}, "unknown keys"),
        ({"max_attempts": 0}, "max_attempts"),
        ({"breaker_failures": 1.5}, "breaker_failures"),
        ({"retry_max_s": -1}, "retry_max_s"),
        ({"max_retry_after_s": float("inf")}, "max_retry_after_s"),
        ({"base_url": 5}, "base_url"),
    ],
)
def test_a_bad_live_alpaca_fails_when_the_config_is_built(alpaca, message):
    with pytest.raises(ConfigError, match=message):
        LiveConfig(alpaca=alpaca)


def test_the_composed_config_carries_live_alpaca():
    from py_finance.config import build, compose

    settings = build(compose(["live.alpaca.base_url=http://127.0.0.1:9"]))
    assert settings.live.alpaca_settings().base_url == "http://127.0.0.1:9"
    with pytest.raises(ConfigError, match="unknown keys"):
        build(compose(["+live.alpaca.bogus=1"]))
