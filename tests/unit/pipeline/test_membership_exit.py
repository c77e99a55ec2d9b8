"""A name leaving the index is not bought on its last member session (the exit is known then)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

N_ACTIVE, N_SESSIONS = 10, 300


@pytest.fixture(scope="module")
def synthetic_ctx(tmp_path_factory):
    from py_finance.config import build, compose
    from py_finance.knownanswer import market_overrides
    from py_finance.pipeline import research
    from py_finance.pipeline.context import Context

    overrides = [
        *market_overrides(N_ACTIVE, N_SESSIONS, edge=0.05, seed=0),
        "portfolio.top_k=3",
        "portfolio.rebalance_every=1",
        "regimes.min_train_sessions=126",
    ]
    ctx = Context(build(compose(overrides)), tmp_path_factory.mktemp("exit"))
    research.ingest(ctx)
    research.regimes(ctx)
    return ctx


def _last_member_sessions(ctx, sessions):
    spells = ctx.store.membership(ctx.as_of)
    ends = spells.dropna(subset=["end"])
    ends = ends[pd.to_datetime(ends["end"]).isin(sessions)]
    assert len(ends) >= 5, "the slice must have names leaving the index"
    return [(pd.Timestamp(e), str(s)) for s, e in zip(ends["symbol"], ends["end"], strict=True)]


@pytest.mark.slow
def test_names_on_their_last_member_session_get_no_weight(synthetic_ctx):
    from py_finance.pipeline import evaluation

    ctx = synthetic_ctx
    px = evaluation.prices(ctx)
    start = px.index[21]
    m = evaluation.market(ctx, start)
    exits = _last_member_sessions(ctx, m.prices.index)
    # A model that likes exactly the names about to leave: without the exit they would be
    # the top of every such session.
    rng = np.random.default_rng(0)
    scores = pd.DataFrame(
        rng.normal(size=m.prices.shape), index=m.prices.index, columns=m.prices.columns
    ).where(m.members)
    for day, sym in exits:
        scores.loc[day, sym] = 10.0
    preds = scores.stack().rename("score").to_frame()
    preds.index.names = ["session", "symbol"]
    masked, std = evaluation.scores_on(m, preds)
    for variant in evaluation.VARIANTS:
        weights = evaluation.variant_weights(m, ctx.settings, masked, std, variant)
        bought = [(d.date(), s) for d, s in exits if weights.loc[d, s] > 0]
        assert not bought, (variant, bought)
        # the other members are still bought: the mask took out only the exits
        assert (weights.fillna(0.0).sum(axis=1) > 0).mean() > 0.9, variant
    # the equal-weight benchmark holds the tradable members only
    ew = evaluation.equal_weight_targets(m.prices.where(m.tradable), 1)
    assert all(ew.loc[d, s] == 0 for d, s in exits)
    # a name is tradable only as a member, and only its last member sessions are left out
    assert (m.tradable <= m.members).all().all()
    dropped = m.members & ~m.tradable
    assert sorted((d, str(s)) for d, s in dropped.stack().loc[lambda x: x].index) == sorted(exits)
