"""``walk_forward.train_every`` trains on every n-th session; test folds stay complete."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pandas as pd
import pytest

from py_finance.errors import ConfigError
from py_finance.models.walk_forward import WalkForwardConfig, walk_forward


class Recorder:
    """Remembers the sessions it was trained on; predicts zeros."""

    seen: ClassVar[list[pd.DatetimeIndex]] = []

    def fit(self, X, y):
        Recorder.seen.append(pd.DatetimeIndex(X.index.get_level_values("session")).unique())
        assert len(X) == len(y)
        return self

    def predict(self, X):
        return np.zeros(len(X))


def _data(n_sessions=800, names=("A", "B", "C")):
    sessions = pd.bdate_range("2000-01-03", periods=n_sessions)
    index = pd.MultiIndex.from_product([sessions, list(names)], names=["session", "symbol"])
    rng = np.random.default_rng(0)
    feats = pd.DataFrame({"x": rng.normal(size=len(index))}, index=index)
    end = pd.Series(sessions, index=sessions).shift(-6)
    labels = pd.DataFrame({"y": rng.normal(size=len(index))}, index=index).assign(
        label_end=end.reindex(index.get_level_values("session")).to_numpy()
    )
    return feats, labels.dropna()


@pytest.mark.parametrize("every", [1, 3])
def test_training_takes_every_nth_session_and_tests_every_session(every):
    feats, labels = _data()
    Recorder.seen = []
    cfg = WalkForwardConfig(refit="yearly", min_train_sessions=252, embargo=5, train_every=every)
    result = walk_forward(feats, labels, "y", Recorder, cfg, progress=False)
    sessions = pd.DatetimeIndex(feats.index.get_level_values("session")).unique()
    for trained in Recorder.seen:
        pos = sessions.get_indexer(trained)
        assert (pos % every == 0).all()
        assert len(trained) > 200 // every
    # every test row is predicted, whatever the thinning
    tested = result.predictions.index
    for fold in result.folds:
        inside = (sessions >= fold.test_start) & (sessions <= fold.test_end)
        got = tested.get_level_values("session")
        assert ((got >= fold.test_start) & (got <= fold.test_end)).sum() == 3 * inside.sum()


def test_train_every_below_one_is_refused():
    with pytest.raises(ConfigError, match="train_every"):
        WalkForwardConfig(train_every=0)


def test_aligned_equals_reindex_with_missing_rows_and_other_levels():
    from py_finance.models.walk_forward import aligned

    feats, labels = _data(n_sessions=50, names=("A", "B", "C", "D"))
    rng = np.random.default_rng(1)
    some = labels.iloc[np.sort(rng.choice(len(labels), size=len(labels) // 2, replace=False))]
    # a label row for a symbol the features never had
    extra = pd.DataFrame(
        {"y": [1.0], "label_end": [pd.Timestamp("2000-01-04")]},
        index=pd.MultiIndex.from_tuples(
            [(pd.Timestamp("2000-01-03"), "Z")], names=["session", "symbol"]
        ),
    )
    src = pd.concat([some, extra]).sort_index()
    got = aligned(src, feats.index, ["y", "label_end"])
    want = src[["y", "label_end"]].reindex(feats.index)
    pd.testing.assert_frame_equal(got, want, check_dtype=False)


@pytest.mark.parametrize("kind", ["lightgbm", "xgboost"])
def test_warm_start_continues_the_previous_folds_trees(kind):
    from py_finance.models.tabular import LightGBMModel, XGBoostModel

    cls = LightGBMModel if kind == "lightgbm" else XGBoostModel
    feats, labels = _data()
    cfg = WalkForwardConfig(refit="yearly", min_train_sessions=252, embargo=5, warm_trees=3)
    result = walk_forward(
        feats, labels, "y", lambda: cls(n_estimators=10, n_jobs=1), cfg, progress=False
    )
    n_folds = len(result.folds)
    assert n_folds >= 2
    booster = result.last_model.booster_
    trees = (
        booster.booster_.num_trees()
        if kind == "lightgbm"
        else booster.get_booster().num_boosted_rounds()
    )
    assert trees == 10 + 3 * (n_folds - 1)
    cold = walk_forward(
        feats,
        labels,
        "y",
        lambda: cls(n_estimators=10, n_jobs=1, patience=0),  # warm starts do not stop early
        WalkForwardConfig(refit="yearly", min_train_sessions=252, embargo=5),
        progress=False,
    )
    assert cold.last_model is None
    # the first fold is the same model either way; later folds differ
    first = result.predictions["fold"] == 0
    np.testing.assert_allclose(
        result.predictions.loc[first, "score"], cold.predictions.loc[first, "score"]
    )
