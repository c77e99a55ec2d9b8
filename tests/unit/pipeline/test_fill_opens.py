"""The backtest stage fills at the store's opens when ``backtest.fill`` is next_open."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from py_finance.errors import ConfigError

N_ACTIVE, N_SESSIONS = 8, 200


@pytest.fixture(scope="module")
def synthetic_ctx(tmp_path_factory):
    from py_finance.config import build, compose
    from py_finance.knownanswer import market_overrides
    from py_finance.pipeline import research
    from py_finance.pipeline.context import Context

    overrides = [
        *market_overrides(N_ACTIVE, N_SESSIONS, edge=0.05, seed=0),
        "regimes.min_train_sessions=126",
        "backtest.fill=next_open",
    ]
    ctx = Context(build(compose(overrides)), tmp_path_factory.mktemp("opens"))
    research.ingest(ctx)
    research.regimes(ctx)
    return ctx


@pytest.mark.slow
def test_the_backtest_stage_trades_the_stores_opens(synthetic_ctx):
    from py_finance.backtest import run_backtest
    from py_finance.features.registry import adjusted_panel
    from py_finance.pipeline import evaluation

    ctx = synthetic_ctx
    px = evaluation.prices(ctx)
    m = evaluation.market(ctx, px.index[10])
    assert m.opens is not None and m.opens.index.equals(m.prices.index)
    raw = adjusted_panel(ctx.store, None, None, None, ctx.as_of)["open"]
    expected = raw.reindex(index=m.prices.index, columns=m.prices.columns)
    pd.testing.assert_frame_equal(m.opens, expected)
    listed = m.prices.notna() & m.opens.notna()
    assert listed.to_numpy().sum() > 0.5 * m.prices.notna().to_numpy().sum()
    assert not np.allclose(m.opens.where(listed), m.prices.where(listed), equal_nan=True)
    weights = evaluation.equal_weight_targets(m.prices.where(m.members), 5)
    res = evaluation.variant_backtest(m, ctx.settings, weights, "baseline")
    direct = run_backtest(
        m.prices, weights, ctx.settings.backtest, delistings=m.delistings, opens=m.opens
    )
    pd.testing.assert_series_equal(res.equity, direct.equity)
    at_close = run_backtest(
        m.prices,
        weights,
        type(ctx.settings.backtest)(fill="next_close"),
        delistings=m.delistings,
    )
    assert not np.allclose(res.equity.to_numpy(), at_close.equity.to_numpy(), rtol=1e-6)


def test_closes_only_data_refuse_fills_at_the_open_in_one_line(small_ctx):
    from py_finance.backtest import run_backtest
    from py_finance.config import build, compose
    from py_finance.pipeline import evaluation, research
    from py_finance.pipeline.context import Context
    from tests.conftest import SLICE

    research.ingest(small_ctx)
    px = evaluation.prices(small_ctx)
    assert evaluation.opens_on(small_ctx, px) is None  # fills at the close: no opens read
    ctx = Context(build(compose([*SLICE, "backtest.fill=next_open"])), small_ctx.root)
    opens = evaluation.opens_on(ctx, px)
    assert opens is not None and opens.isna().all().all()
    weights = pd.DataFrame(1.0 / px.shape[1], index=px.index, columns=px.columns)
    with pytest.raises(ConfigError) as refused:
        run_backtest(px, weights, ctx.settings.backtest, opens=opens)
    assert "\n" not in str(refused.value)
    assert "bundled data is closes only" in str(refused.value)
