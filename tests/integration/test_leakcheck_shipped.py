"""CI guard: every shipped feature set, label horizon and regime config is leak-free."""

from __future__ import annotations

import pytest

from py_finance import leakcheck as lc


@pytest.mark.slow
def test_every_shipped_component_passes_over_100_sampled_sessions():
    comps = lc.shipped_components()
    names = {c.name for c in comps}
    for group in ("features", "labels", "regimes"):
        assert {f"{group}={o}" for o in lc.options(group)} <= names
    reports = lc.run(comps, lc.bundled_data(), n_sessions=100)
    bad = [r.summary() for r in reports if not r.ok]
    assert not bad, "\n".join(bad)
    assert all(r.n_sessions == 100 for r in reports)


@pytest.mark.slow
def test_every_feature_set_and_label_passes_on_the_synthetic_ohlcv_market():
    # open/high/low/vwap/volume columns, delistings paid out in labels, membership changes
    comps = lc.shipped_components(regimes=[], policies=[])
    names = {c.name for c in comps}
    for group in ("features", "labels"):
        assert {f"{group}={o}" for o in lc.options(group)} <= names
    data = lc.synthetic_data()
    assert len(data.delistings) > 10 and data.membership["end"].notna().sum() > 10
    reports = lc.run(comps, data, label="synthetic", n_sessions=50)
    bad = [r.summary() for r in reports if not r.ok]
    assert not bad, "\n".join(bad)
    columns = {r.component: len(r.columns) for r in reports}
    assert columns["features=alpha158"] == 158 and columns["features=full"] == 104
