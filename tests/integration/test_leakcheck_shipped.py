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
