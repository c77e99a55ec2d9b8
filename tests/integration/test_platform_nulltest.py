"""The null test: a sweep on zero-drift random walks promotes nothing; the same sweep on
prices with a planted signal is promoted. The report shows the best raw Sharpe and its DSR."""

from __future__ import annotations

import numpy as np
import pytest

from py_finance.nulltest import SIZES, run_null_test, synthetic_prices


def test_synthetic_prices_have_the_bundled_shape_and_no_drift():
    prices, index = synthetic_prices("null", 10, "1994-01-03", "2002-12-31", seed=1)
    from py_finance.data.sources.bundled import _wide

    real = _wide("sp500_dataset.csv.gz").loc["1994-01-03":"2002-12-31"]
    real = real[sorted(real.columns)[:10]]
    assert prices.shape == real.shape and (prices.index == real.index).all()
    assert (prices.isna() == real.isna()).all().all()
    r = prices.pct_change(fill_method=None).stack()
    assert abs(r.mean()) < 3 * r.std() / np.sqrt(len(r))  # no drift beyond noise
    assert index.notna().all()


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["null", "planted"])
def test_gate_promotes_nothing_on_noise_and_promotes_a_planted_signal(kind, tmp_path):
    result = run_null_test(kind, "ci", root=tmp_path)
    assert len(result.trials) == SIZES["ci"].n_trials == 24
    assert result.n_trials_recorded >= 24
    report = (tmp_path / "reports" / f"null_test_{kind}.md").read_text()
    assert "raw Sharpe" in report and "DSR" in report
    assert f"{result.best['dsr']:.4f}" in report
    if kind == "null":
        assert not result.promoted, result.report
        assert any(r.startswith("dsr") and r.endswith("fail") for r in result.best["reasons"])
    else:
        assert result.promoted, result.report


@pytest.mark.slow
def test_a_sequence_model_runs_through_the_null_sweep_and_nothing_is_promoted(tmp_path):
    # The backtest logs the TCN as a window pyfunc, so the sweep takes it like the trees.
    result = run_null_test("null", "ci", root=tmp_path, models=["tcn"])
    assert len(result.trials) == len(SIZES["ci"].horizons) * len(SIZES["ci"].variants) == 12
    assert result.n_trials_recorded >= 12
    assert not result.promoted, result.report
