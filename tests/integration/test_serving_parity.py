"""Serving parity for every model family, and a TCN through promote and a paper dry run.

Each family runs the pipeline on a small slice (train, backtest, promote), so the model the
registry serves is the one the backtest stage logged. Given the live loop's inputs for a
session (:mod:`py_finance.live.scoring`, as of the session's close), the registry model
returns the in-process final model's scores: bit-identical for trees, within 1e-6 for the
sequence models (eval pass, and the MC-dropout mean and std with the model's seed).
"""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from py_finance import tracking
from py_finance.config import build, compose
from py_finance.errors import DataError
from py_finance.live import scoring
from py_finance.live.loop import run_live_day
from py_finance.pipeline import evaluation, research
from py_finance.pipeline.context import Context
from tests.conftest import OPEN_GATE, SLICE, SMALL_SEQUENCE

pytestmark = [pytest.mark.integration, pytest.mark.slow]

LAST = pd.Timestamp("2000-12-29T23:00Z")
# The gate is open (OPEN_GATE): these tests are about the serving path.
DATA = [o for o in SLICE if not o.startswith("model.")]
FAMILIES = {
    "lightgbm": ["model=lightgbm", "model.n_estimators=30"],
    "xgboost": ["model=xgboost", "model.n_estimators=30"],
    "tcn": ["model=tcn", *SMALL_SEQUENCE],
    "lstm": ["model=lstm", *SMALL_SEQUENCE],
    "transformer": ["model=transformer", *SMALL_SEQUENCE, "model.heads=2"],
}
# The TCN champion trades with uncertainty weighting: its MC-dropout std sizes the book
# (caps wide enough that they do not flatten it).
WEIGHTING = {
    "tcn": ["portfolio.weighting=uncertainty", "risk.max_position=0.5", "risk.max_sector=1.0"]
}


def overrides(family: str) -> list[str]:
    return [*DATA, *FAMILIES[family], *WEIGHTING.get(family, []), *OPEN_GATE]


def ctx_for(root: Path, family: str) -> Context:
    return Context(build(compose(overrides(family))), root)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("parity-data")
    ctx = ctx_for(root, "lightgbm")
    research.ingest(ctx)
    research.features(ctx)
    research.labels(ctx)
    research.regimes(ctx)
    return root


_ROOTS: dict[str, Path] = {}


@pytest.fixture(scope="module")
def promoted(data_root, tmp_path_factory):
    """``promoted(family)``: a project root whose ``@champion`` is that family's model."""

    def get(family: str) -> Path:
        if family not in _ROOTS:
            root = tmp_path_factory.mktemp(f"parity-{family}") / "root"
            shutil.copytree(data_root, root)
            ctx = ctx_for(root, family)
            research.train(ctx, progress=False)
            evaluation.backtest(ctx)
            evaluation.report(ctx)
            decision = evaluation.promote(ctx)
            assert decision["promoted"], decision
            _ROOTS[family] = root
        return _ROOTS[family]

    yield get
    _ROOTS.clear()


def live_inputs(ctx: Context, as_of: pd.Timestamp):
    """The champion, the session and the store's closes as the live loop reads them."""
    from py_finance.live.session import resolve_session

    tracking.setup(ctx.settings.tracking, ctx.root)
    loaded = tracking.load_model(ctx.deployment, tracking.CHAMPION)
    session = resolve_session(as_of, ctx.settings.data.calendar).session
    history = ctx.store.wide("adj_close", list(ctx.settings.data.symbols), None, None, as_of)
    return loaded, session, history.loc[: pd.Timestamp(session)]


@pytest.mark.parametrize("family", list(FAMILIES))
def test_the_registry_model_scores_the_live_inputs_as_the_final_model(family, promoted):
    ctx = ctx_for(promoted(family), family)
    loaded, session, history = live_inputs(ctx, LAST)
    with (ctx.model_dir() / "model.pkl").open("rb") as fh:
        final = pickle.load(fh)
    served = scoring.score_session(ctx, loaded, history, session, LAST)
    assert served.window == int(getattr(final, "context_sessions", 0)) + 1 == loaded.window
    # What the live loop passes: the last `window` sessions of features known at LAST.
    feats = scoring.read_window(ctx, loaded, history, session, LAST)
    level = feats.index.get_level_values("session")
    inputs = feats[level >= level.unique().sort_values()[-served.window]]
    today = inputs.index.get_level_values("session") == pd.Timestamp(session)
    symbols = inputs.index.get_level_values("symbol")[today]
    got = served.scores.loc[pd.Timestamp(session), symbols].to_numpy()
    expected = np.asarray(final.predict(inputs), dtype=np.float64)[today]
    assert np.isfinite(got).all() and len(got) == len(ctx.settings.data.symbols)
    if served.window == 1:
        np.testing.assert_array_equal(got, expected)  # trees: bit-identical
        assert served.std is None
        return
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
    mean, std = final.predict_dist(inputs)
    dist = loaded.score_session(inputs).loc[symbols]
    np.testing.assert_allclose(dist["mean"], mean[today], rtol=0, atol=1e-6)
    np.testing.assert_allclose(dist["std"], std[today], rtol=0, atol=1e-6)
    assert served.std is not None
    np.testing.assert_allclose(
        served.std.loc[pd.Timestamp(session), symbols], std[today], rtol=0, atol=1e-6
    )


def test_a_paper_dry_run_with_a_tcn_champion_holds_the_backtests_weights(promoted):
    ctx = ctx_for(promoted("tcn"), "tcn")
    result = run_live_day(ctx, dry_run=True, as_of=LAST, broker="paper")
    assert result.status == "ok", result.payload.get("errors")
    loaded, session, history = live_inputs(ctx, LAST)
    assert result.payload["model_version"] == loaded.version
    # The backtest's portfolio code on the in-process final model's score and std of the
    # session (its market as the backtest stage reads it).
    with (ctx.model_dir() / "model.pkl").open("rb") as fh:
        final = pickle.load(fh)
    feats = scoring.read_window(ctx, loaded, history, session, LAST)
    level = feats.index.get_level_values("session")
    inputs = feats[level >= level.unique().sort_values()[-loaded.window]]
    today = inputs.index.get_level_values("session") == pd.Timestamp(session)
    keys = inputs.index[today]
    _, std = final.predict_dist(inputs)
    preds = pd.DataFrame(
        {"score": np.asarray(final.predict(inputs))[today], "std": std[today]}, index=keys
    )
    m = evaluation.market(ctx, pd.Timestamp(session))
    scores, std_frame = evaluation.scores_on(m, preds)
    assert std_frame is not None and std_frame.notna().to_numpy().any()
    expected = evaluation.variant_weights(m, ctx.settings, scores, std_frame, "regime_aware")
    row = expected.loc[pd.Timestamp(session)]
    want = {str(k): float(v) for k, v in row.dropna().items() if v > 0}
    got = result.payload["target_weights"]
    assert set(got) == set(want)
    for name, weight in want.items():
        assert got[name] == pytest.approx(weight, rel=1e-6, abs=1e-9)
    # Uncertainty weighting: the weights differ across names (the std sizes them).
    assert len(set(np.round(list(want.values()), 9))) > 1


def test_the_live_loop_refuses_a_store_with_fewer_sessions_than_the_window(promoted):
    ctx = ctx_for(promoted("tcn"), "tcn")
    loaded, _, history = live_inputs(ctx, LAST)
    # Knowledge time a few sessions after the first complete feature row.
    feats = research.feature_frame(ctx, None, history.index[-1].date(), LAST)
    first = feats.index.get_level_values("session").unique().sort_values()[loaded.window - 2]
    early = pd.Timestamp(first.date()).tz_localize("UTC") + pd.Timedelta(hours=23)
    _, session, short = live_inputs(ctx, early)
    with pytest.raises(DataError) as err:
        scoring.score_session(ctx, loaded, short, session, early)
    message = str(err.value)
    assert "\n" not in message
    assert f"fewer than the {loaded.window}" in message and "ingest more history" in message


def test_a_tcn_champion_is_re_simulated_on_new_sessions_with_its_window_and_std(promoted, tmp_path):
    # The store grows by a quarter after the champion's backtest: the gate re-simulates the
    # champion there from its logged model (uncertainty weighting needs its std), scoring
    # the first new session from the window of sessions that ends at it.
    root = tmp_path / "grown"
    shutil.copytree(promoted("tcn"), root)
    ctx = Context(build(compose([*overrides("tcn"), "data.end=2001-03-30"])), root)
    research.ingest(ctx)
    research.features(ctx)
    tracking.setup(ctx.settings.tracking, root)
    version = tracking.get_alias_version(ctx.deployment, tracking.CHAMPION)
    assert version is not None
    sessions = ctx.store.wide("adj_close", None, "2000-06-01", "2001-03-30", ctx.as_of).index
    returns, rescored = evaluation.champion_returns(ctx, ctx.deployment, version, sessions)
    new = sessions[sessions > pd.Timestamp("2000-12-29")]
    assert rescored == len(new) > 50
    assert returns.index.max() == new[-1] and returns.notna().all()


def test_a_tcn_champion_trades_the_data_driven_policy_on_its_out_of_sample_history(promoted):
    # The policy measures the strategy on the walk-forward's scores and std before today.
    ctx = Context(
        build(compose([*overrides("tcn"), "regime_policy=data_driven", "risk=full"])),
        promoted("tcn"),
    )
    loaded, session, history = live_inputs(ctx, LAST)
    served = scoring.score_session(ctx, loaded, history, session, LAST)
    assert served.std is not None and served.std.index.equals(served.scores.index)
    assert len(served.scores) > 500 and served.scores.index[-1] == pd.Timestamp(session)
    assert served.std.iloc[:-1].notna().to_numpy().any()  # the walk-forward's std
    result = run_live_day(ctx, dry_run=True, as_of=LAST, override=True)
    assert result.status == "ok", result.payload.get("errors")
    assert result.payload["regime_policy"] == "data_driven"
    assert result.payload["target_weights"]
