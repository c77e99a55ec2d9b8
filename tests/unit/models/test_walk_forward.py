from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from py_finance.data.calendar import sessions as xnys_sessions
from py_finance.errors import ConfigError
from py_finance.features.labels import LabelConfig, forward_returns
from py_finance.models.tabular import LightGBMModel
from py_finance.models.walk_forward import (
    WalkForwardConfig,
    information_coefficients,
    make_folds,
    walk_forward,
)


def _label_end(sessions: pd.DatetimeIndex, horizon: int, lag: int = 1) -> pd.Series:
    pos = np.arange(len(sessions)) + lag + horizon
    ok = pos < len(sessions)
    return pd.Series(sessions[pos[ok]], index=sessions[ok])


@pytest.mark.parametrize("horizon", [1, 5, 20])
@pytest.mark.parametrize("refit", ["yearly", "quarterly", "monthly"])
@pytest.mark.parametrize("embargo_extra", [0, 3])
def test_no_training_label_window_reaches_the_test_fold_and_the_embargo_holds(
    horizon, refit, embargo_extra
):
    sessions = xnys_sessions("2015-01-02", "2019-12-31")
    label_end = _label_end(sessions, horizon)
    embargo = horizon + embargo_extra
    cfg = WalkForwardConfig(refit=refit, min_train_sessions=250, embargo=embargo)
    folds = make_folds(sessions, label_end, cfg)
    assert folds
    for fold in folds:
        in_train = (label_end.index >= fold.train_start) & (label_end < fold.train_cutoff)
        train = label_end[in_train]
        start = sessions.get_loc(fold.test_start)
        # purge: no training label window (t+1 .. t+1+h) reaches the test fold
        assert (train < fold.test_start).all()
        # embargo: every training label is known at least `embargo` sessions before the fold
        gaps = start - sessions.get_indexer(train)
        assert gaps.min() >= embargo + 1
        # and nothing more than purge + embargo is dropped
        assert train.index[-1] == sessions[start - embargo - horizon - 2]
        nxt = folds[fold.number + 1].test_start if fold.number + 1 < len(folds) else None
        assert nxt is None or fold.test_end < nxt


def test_rolling_window_starts_within_its_length():
    sessions = xnys_sessions("2010-01-04", "2019-12-31")
    label_end = _label_end(sessions, 5)
    cfg = WalkForwardConfig(window="rolling", rolling_sessions=500, min_train_sessions=250)
    for fold in make_folds(sessions, label_end, cfg):
        n = ((label_end.index >= fold.train_start) & (label_end < fold.test_start)).sum()
        assert n == 500 or fold.train_start == sessions[0]


def _panel(signal: float, seed: int = 0, n_sessions: int = 900, n_names: int = 30):
    rng = np.random.default_rng(seed)
    idx = xnys_sessions("2012-01-03", "2016-12-30")[:n_sessions]
    names = [f"S{i:02d}" for i in range(n_names)]
    x = rng.standard_normal((n_sessions, n_names))
    noise = rng.standard_normal((n_sessions, n_names))
    # The next-session return (the h=1 label with lag 1) depends on today's feature.
    ret = np.zeros_like(x)
    ret[2:] = 0.01 * (signal * x[:-2] + noise[2:])
    prices = pd.DataFrame(100 * np.exp(np.cumsum(ret, axis=0)), index=idx, columns=names)
    feats = pd.DataFrame(x, index=idx, columns=names).stack().to_frame("f")
    feats["g"] = rng.standard_normal(len(feats))
    feats.index.names = ["session", "symbol"]
    labels = forward_returns(prices, LabelConfig(horizon=1, target="raw"))
    return feats.astype("float32"), labels


def _fit(signal: float, seed: int):
    feats, labels = _panel(signal, seed)
    cfg = WalkForwardConfig(refit="quarterly", min_train_sessions=250)
    model = lambda: LightGBMModel(n_estimators=40, num_leaves=7, min_child_samples=50, n_jobs=1)  # noqa: E731
    return walk_forward(feats, labels, "fwd_ret_1", model, cfg, progress=False)


def test_planted_signal_gives_a_clearly_positive_out_of_sample_rank_ic():
    result = _fit(signal=0.5, seed=1)
    assert result.fold_metrics["rank_ic"].mean() > 0.15
    assert (result.fold_metrics["rank_ic"] > 0).all()


def test_pure_noise_gives_a_rank_ic_indistinguishable_from_zero():
    result = _fit(signal=0.0, seed=2)
    ics = result.fold_metrics["rank_ic"]
    t_stat = ics.mean() / (ics.std(ddof=1) / np.sqrt(len(ics)))
    assert abs(t_stat) < 3.0
    assert abs(ics.mean()) < 0.05


def test_every_prediction_is_out_of_sample():
    result = _fit(signal=0.5, seed=3)
    folds = {f.number: f for f in result.folds}
    for number, group in result.predictions.groupby("fold"):
        sessions = group.index.get_level_values("session")
        assert sessions.min() >= folds[number].test_start
        assert sessions.max() <= folds[number].test_end
    fm = result.fold_metrics
    assert (fm["train_label_end_max"] < fm["test_start"]).all()


def test_rows_with_identical_label_values_are_all_trained_on():
    # Regression: rows were once de-duplicated by value, silently dropping training rows
    # of names whose labels happened to be equal (common with prices rounded to 0.001).
    feats, labels = _panel(0.5, 4)
    labels = labels.copy()
    labels["fwd_ret_1"] = labels["fwd_ret_1"].round(2)
    cfg = WalkForwardConfig(refit="yearly", min_train_sessions=250)
    result = walk_forward(
        feats,
        labels,
        "fwd_ret_1",
        lambda: LightGBMModel(n_estimators=5, n_jobs=1),
        cfg,
        progress=False,
    )
    first = result.folds[0]
    expected = int((labels["label_end"] < first.test_start).sum())
    assert result.fold_metrics.loc[0, "n_train"] == expected


def test_processes_executor_gives_the_local_predictions_bit_for_bit():
    feats, labels = _panel(0.5, 5)
    model = lambda: LightGBMModel(n_estimators=20, num_leaves=7, min_child_samples=50, n_jobs=2)  # noqa: E731
    runs = {}
    for executor in ("local", "processes"):
        cfg = WalkForwardConfig(
            refit="quarterly", min_train_sessions=250, executor=executor, workers=2
        )
        runs[executor] = walk_forward(feats, labels, "fwd_ret_1", model, cfg, progress=False)
    local, forked = runs["local"], runs["processes"]
    assert len(local.folds) > 3
    pd.testing.assert_frame_equal(local.predictions, forked.predictions, check_exact=True)
    pd.testing.assert_frame_equal(local.fold_metrics, forked.fold_metrics, check_exact=True)


def test_warm_starts_chain_the_folds_so_they_need_the_local_executor():
    with pytest.raises(ConfigError, match="executor=local"):
        WalkForwardConfig(warm_trees=10, executor="processes")
    with pytest.raises(ConfigError, match="executor must be one of"):
        WalkForwardConfig(executor="threads")


def _reference_ic(scores: pd.Series, labels: pd.Series) -> tuple[pd.Series, pd.Series]:
    # The definition, one session at a time with pandas (what the vectorised version replaced).
    frame = pd.concat({"s": scores, "y": labels}, axis=1).dropna()
    grouped = frame.groupby(level="session")
    ic = grouped.apply(lambda g: g["s"].corr(g["y"]) if len(g) > 2 else np.nan)
    ranked = grouped.rank()
    ric = ranked.groupby(level="session").apply(
        lambda g: g["s"].corr(g["y"]) if len(g) > 2 else np.nan
    )
    return ic.astype("float64"), ric.astype("float64")


def test_vectorised_information_coefficients_match_the_per_session_definition():
    rng = np.random.default_rng(7)
    idx = pd.MultiIndex.from_product(
        [xnys_sessions("2020-01-02", "2020-12-31")[:120], [f"S{i}" for i in range(12)]],
        names=["session", "symbol"],
    )
    scores = pd.Series(rng.normal(size=len(idx)), idx).round(1)  # ties
    labels = pd.Series(rng.normal(size=len(idx)), idx)
    scores[scores.sample(frac=0.2, random_state=0).index] = np.nan
    first, second = idx.levels[0][0], idx.levels[0][1]
    scores.loc[first] = 0.5  # a constant session: NaN
    scores.loc[second] = np.nan
    scores.loc[(second, "S0")], scores.loc[(second, "S1")] = 1.0, 2.0  # two names: NaN
    ic, ric = information_coefficients(scores, labels)
    ref_ic, ref_ric = _reference_ic(scores, labels)
    pd.testing.assert_series_equal(
        ic, ref_ic, check_names=False, check_index_type=False, atol=1e-12
    )
    pd.testing.assert_series_equal(
        ric, ref_ric, check_names=False, check_index_type=False, atol=1e-12
    )
    assert np.isnan(ic.iloc[0]) and np.isnan(ic.iloc[1])


def test_the_final_model_is_the_same_from_either_executor():
    feats, labels = _panel(0.5, 6)
    model = lambda: LightGBMModel(n_estimators=10, num_leaves=7, min_child_samples=50, n_jobs=2)  # noqa: E731
    finals = []
    for executor in ("local", "processes"):
        cfg = WalkForwardConfig(refit="yearly", min_train_sessions=250, executor=executor)
        res = walk_forward(feats, labels, "fwd_ret_1", model, cfg, progress=False, final=True)
        finals.append(res.final_model)
    local, forked = finals
    assert forked.threads == local.threads == 2
    trees = [m.booster_.booster_.dump_model()["tree_info"] for m in (local, forked)]
    assert trees[0] == trees[1]
    np.testing.assert_array_equal(local.predict(feats), forked.predict(feats))


def test_fold_workers_respect_the_cpus_a_ray_task_was_given(monkeypatch):
    from py_finance.models.walk_forward import available_cores

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    cores = available_cores()
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # what Ray sets in a task given 1 CPU
    assert available_cores() == 1
    monkeypatch.setenv("OMP_NUM_THREADS", str(cores + 5))
    assert available_cores() == cores


@pytest.mark.timeout(180, method="thread")  # a hang must fail, not stall the suite
def test_fold_processes_do_not_hang_after_the_parent_used_openmp():
    # Regression: a sweep job ran K-means (regimes) and then forked its fold processes, whose
    # first multi-threaded OpenMP region waited forever for threads the fork did not copy.
    from sklearn.cluster import KMeans

    from py_finance.models.tabular import XGBoostModel

    feats, labels = _panel(0.5, 9)
    KMeans(4, n_init=2, random_state=0).fit(feats.to_numpy()[:5000])
    XGBoostModel(n_estimators=3, n_jobs=2).fit(
        feats.iloc[:5000], labels["fwd_ret_1"].iloc[:5000].fillna(0)
    )
    cfg = WalkForwardConfig(refit="yearly", min_train_sessions=250, executor="processes", workers=2)
    model = lambda: XGBoostModel(n_estimators=10, n_jobs=2)  # noqa: E731
    forked = walk_forward(feats, labels, "fwd_ret_1", model, cfg, progress=False)
    local = walk_forward(
        feats,
        labels,
        "fwd_ret_1",
        model,
        WalkForwardConfig(refit="yearly", min_train_sessions=250),
        progress=False,
    )
    pd.testing.assert_frame_equal(local.predictions, forked.predictions, check_exact=True)
