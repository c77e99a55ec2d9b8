"""Early stopping of the tree models on a purged validation tail of each fold's window."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from py_finance.data.calendar import sessions as xnys_sessions
from py_finance.features.labels import LabelConfig, forward_returns
from py_finance.models.tabular import LightGBMModel, XGBoostModel
from py_finance.models.walk_forward import (
    WalkForwardConfig,
    validation_tail,
    walk_forward,
)

TREES = {
    "lightgbm": lambda **kw: LightGBMModel(
        **{"num_leaves": 7, "min_child_samples": 50, "n_jobs": 1, **kw}
    ),
    "xgboost": lambda **kw: XGBoostModel(**{"max_depth": 3, "n_jobs": 1, **kw}),
}
STOPPING = {"n_estimators": 300, "learning_rate": 0.05, "patience": 15, "val_fraction": 0.2}


def _closes(signal: float, seed: int, n_sessions: int, n_names: int):
    rng = np.random.default_rng(seed)
    idx = xnys_sessions("2012-01-03", "2017-12-29")[:n_sessions]
    names = [f"S{i:02d}" for i in range(n_names)]
    x = rng.standard_normal((n_sessions, n_names))
    ret = np.zeros_like(x)
    # the next-session return (the h=1 label with lag 1) depends on today's feature
    ret[2:] = 0.01 * (signal * x[:-2] + rng.standard_normal((n_sessions - 2, n_names)))
    prices = pd.DataFrame(100 * np.exp(np.cumsum(ret, axis=0)), index=idx, columns=names)
    return x, prices, idx, names


def _frames(x, prices, idx, names, horizon=1):
    feats = pd.DataFrame(x, index=idx, columns=names).stack().to_frame("f")
    feats["g"] = np.random.default_rng(99).standard_normal(len(feats))
    feats.index.names = ["session", "symbol"]
    labels = forward_returns(prices, LabelConfig(horizon=horizon, target="raw"))
    return feats.astype("float32"), labels


def _panel(signal: float, seed: int = 0, n_sessions: int = 900, n_names: int = 30, horizon=1):
    return _frames(*_closes(signal, seed, n_sessions, n_names), horizon=horizon)


def _walk(name, feats, labels, horizon=1, final=False, **cfg):
    target = f"fwd_ret_{horizon}"
    schedule = WalkForwardConfig(
        **{"refit": "quarterly", "min_train_sessions": 250, "embargo": horizon, **cfg}
    )
    return walk_forward(
        feats,
        labels,
        target,
        lambda: TREES[name](**STOPPING),
        schedule,
        progress=False,
        final=final,
    )


@pytest.mark.parametrize("horizon", [1, 5, 20])
@pytest.mark.parametrize("every", [1, 3])
def test_the_validation_tail_is_the_last_sessions_and_no_fitted_label_reaches_it(horizon, every):
    feats, labels = _panel(0.3, 1, horizon=horizon)
    end = labels["label_end"].reindex(feats.index).to_numpy()
    level = feats.index.get_level_values("session")
    sessions = level.unique().sort_values()
    kept = sessions.get_indexer(level) % every == 0
    rows = np.flatnonzero(~pd.isna(end) & kept & (level < sessions[600]))
    fit, val = validation_tail(rows, level, end, 0.2)
    val_start = level[val].min()
    # the last 20% of the window's sessions validate, all their rows
    used = level[rows].unique().sort_values()
    assert val_start == used[len(used) - round(0.2 * len(used))]
    assert set(val) == set(rows[level[rows] >= val_start])
    # purge: every fitted label is known before the first validation session ...
    assert (end[fit] < val_start.to_datetime64()).all()
    # ... and nothing more than that is dropped (the gap is the label's span, no more)
    assert set(fit) == set(rows[end[rows] < val_start.to_datetime64()])
    gap = sessions.get_loc(val_start) - sessions.get_loc(level[fit].max())
    # the label of t ends at t+1+h: the last fitted session is h+2 before the tail (or up
    # to every-1 earlier when sessions are thinned)
    assert horizon + 2 <= gap <= horizon + 1 + every


def test_a_window_too_short_for_a_tail_is_not_split():
    feats, labels = _panel(0.3, 1, n_sessions=40, n_names=5)
    end = labels["label_end"].reindex(feats.index).to_numpy()
    level = feats.index.get_level_values("session")
    rows = np.flatnonzero(~pd.isna(end) & (level < level.unique()[3]))
    assert validation_tail(rows, level, end, 0.2) is None


@pytest.mark.parametrize("name", list(TREES))
def test_the_stopped_model_predicts_as_the_same_model_grown_to_its_chosen_size(name):
    feats, labels = _panel(0.3, 2)
    y = labels["fwd_ret_1"].reindex(feats.index)
    ok = y.notna().to_numpy()
    X, y = feats[ok], y[ok]
    cut = len(X) * 3 // 4
    stopped = TREES[name](**STOPPING).fit(X.iloc[:cut], y.iloc[:cut], valid=(X[cut:], y[cut:]))
    assert 0 < stopped.n_trees_ < STOPPING["n_estimators"]
    grown = stopped.sized(stopped.n_trees_).fit(X.iloc[:cut], y.iloc[:cut])
    assert grown.n_trees_ == stopped.n_trees_
    np.testing.assert_array_equal(stopped.predict(X), grown.predict(X))


@pytest.mark.parametrize("name", list(TREES))
def test_a_model_without_a_validation_set_or_patience_grows_every_tree(name):
    feats, labels = _panel(0.3, 2, n_sessions=300)
    y = labels["fwd_ret_1"].reindex(feats.index)
    ok = y.notna().to_numpy()
    model = TREES[name](**{**STOPPING, "n_estimators": 40}).fit(feats[ok], y[ok])
    assert model.n_trees_ == 40
    off = TREES[name](**{**STOPPING, "n_estimators": 40, "patience": 0})
    assert off.validation_fraction == 0.0
    half = len(feats[ok]) // 2
    valid = (feats[ok].iloc[half:], y[ok].iloc[half:])
    assert off.fit(feats[ok].iloc[:half], y[ok].iloc[:half], valid=valid).n_trees_ == 40


@pytest.mark.parametrize("name", list(TREES))
def test_each_fold_chooses_and_records_its_trees_and_the_final_model_grows_their_median(name):
    feats, labels = _panel(0.3, 3)
    result = _walk(name, feats, labels, final=True)
    fm = result.fold_metrics
    assert fm["n_trees"].between(1, STOPPING["n_estimators"] - 1).all(), fm["n_trees"].tolist()
    assert fm["n_trees"].nunique() > 1  # chosen per fold, not one number for all
    assert (fm["n_val"] > 0).all() and (fm["n_val"] < fm["n_train"]).all()
    assert result.final_size == round(float(np.median(fm["n_trees"])))
    assert result.final_model.n_trees_ == result.final_size
    assert result.final_model.validation_fraction == 0.0
    assert result.final_rows == int(labels["label_end"].notna().sum())
    assert (fm["rank_ic"] > 0).all()


@pytest.mark.slow
def test_early_stopping_gives_the_same_predictions_and_final_model_from_either_executor():
    feats, labels = _panel(0.3, 4)
    local = _walk("lightgbm", feats, labels, final=True)
    forked = _walk("lightgbm", feats, labels, final=True, executor="processes", workers=2)
    pd.testing.assert_frame_equal(local.predictions, forked.predictions)
    pd.testing.assert_frame_equal(local.fold_metrics, forked.fold_metrics)
    assert local.final_size == forked.final_size
    np.testing.assert_array_equal(
        local.final_model.predict(feats), forked.final_model.predict(feats)
    )


def test_warm_starts_grow_a_fixed_number_of_trees_without_a_validation_tail():
    feats, labels = _panel(0.3, 5)
    result = _walk("lightgbm", feats, labels, final=True, warm_trees=10)
    fm = result.fold_metrics
    assert "n_val" not in fm
    assert fm["n_trees"].iloc[0] == STOPPING["n_estimators"]
    assert (fm["n_trees"].iloc[1:] == 10).all()
    assert result.final_size is None


@pytest.mark.parametrize("name", list(TREES))
def test_perturbing_the_future_changes_no_score_or_choice_before_the_cut(name):
    # The leak probe of leakcheck.py on the fold loop: prices after the cut are changed at
    # random; every score of a session up to the cut, and the trees chosen by every fold
    # that starts by then, must be bit-identical (the validation tail and the final model's
    # size read nothing after a fold starts).
    x, prices, idx, names = _closes(0.3, 6, 900, 30)
    cut = 700
    rng = np.random.default_rng(7)
    moved = prices.copy()
    moved.iloc[cut + 1 :] *= np.exp(np.cumsum(rng.normal(0.0, 0.05, (900 - cut - 1, 30)), axis=0))
    x2 = x.copy()
    x2[cut + 1 :] = rng.standard_normal((900 - cut - 1, 30))
    horizon = 5
    base = _walk(name, *_frames(x, prices, idx, names, horizon), horizon=horizon)
    probe = _walk(name, *_frames(x2, moved, idx, names, horizon), horizon=horizon)
    before = base.predictions.index.get_level_values("session") <= idx[cut]
    assert before.sum() > 0 and (~before).sum() > 0
    pd.testing.assert_frame_equal(
        base.predictions[before], probe.predictions.loc[base.predictions.index[before]]
    )
    started = base.fold_metrics["test_start"] <= idx[cut]
    pd.testing.assert_series_equal(
        base.fold_metrics.loc[started, "n_trees"], probe.fold_metrics.loc[started, "n_trees"]
    )
    # and the probe does move what comes after the cut (it would catch a leak)
    after = base.predictions.index[~before]
    assert not np.array_equal(
        base.predictions.loc[after, "score"], probe.predictions.loc[after, "score"]
    )


@pytest.mark.slow
def test_a_sequence_models_final_model_trains_the_folds_median_epochs():
    from py_finance.models.sequence import SequenceModel

    feats, labels = _panel(0.6, 15, n_sessions=700, n_names=15)
    small = {"max_epochs": 5, "patience": 1, "lookback": 5, "hidden": 8, "levels": 1}
    small |= {"epoch_windows": 2048, "mc_samples": 2, "accelerator": "cpu", "val_gap": 2}
    result = walk_forward(
        feats,
        labels,
        "fwd_ret_1",
        lambda: SequenceModel("tcn", **small),
        WalkForwardConfig(refit="quarterly", min_train_sessions=400, embargo=1),
        final=True,
    )
    epochs = result.fold_metrics["n_epochs"]
    assert len(epochs) >= 2 and epochs.between(1, 5).all()
    assert result.final_size == round(float(np.median(epochs)))
    final = result.final_model
    assert final.params.fixed_epochs == result.final_size and not final.chooses_own_size
    # every window trained on, none held out, for exactly the folds' choice
    assert final.fit_record_ == {"n_epochs": result.final_size, "epochs_run": result.final_size}
