"""Every model type behind one contract: planted signal, noise, MC dropout, seeds, pyfunc."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from py_finance.config import compose, instantiate
from py_finance.features.labels import LabelConfig, forward_returns
from py_finance.models.walk_forward import WalkForwardConfig, walk_forward

FAST = {
    "lightgbm": {"n_estimators": 60, "num_leaves": 7, "min_child_samples": 50, "n_jobs": 1},
    "xgboost": {"n_estimators": 60, "max_depth": 3, "n_jobs": 1},
    "lstm": {
        "max_epochs": 5,
        "lookback": 5,
        "hidden": 16,
        "batch_size": 128,
        "lr": 0.005,
        "accelerator": "cpu",
    },
    "tcn": {
        "max_epochs": 5,
        "lookback": 5,
        "hidden": 16,
        "levels": 2,
        "batch_size": 128,
        "lr": 0.005,
        "accelerator": "cpu",
    },
    "transformer": {
        "max_epochs": 5,
        "lookback": 5,
        "hidden": 16,
        "heads": 2,
        "levels": 1,
        "batch_size": 128,
        "lr": 0.005,
        "accelerator": "cpu",
    },
}
MODELS = list(FAST)
TREES = ["lightgbm", "xgboost"]
# Sequence models train for tens of seconds on 2 cores: they run in CI (slow marker).
SEQUENCES = ["lstm", "tcn", "transformer"]
ALL = [*TREES, *(pytest.param(m, marks=pytest.mark.slow) for m in SEQUENCES)]


def make_model(name: str, **extra):
    node = compose([f"model={name}"]).model
    for key, value in {**FAST[name], **extra}.items():
        node[key] = value
    return instantiate(node)


def _panel(signal: float, seed: int, n_sessions: int = 560, n_names: int = 24):
    rng = np.random.default_rng(seed)
    idx = pd.bdate_range("2012-01-03", periods=n_sessions)
    names = [f"S{i:02d}" for i in range(n_names)]
    x = rng.standard_normal((n_sessions, n_names))
    ret = np.zeros_like(x)
    ret[2:] = 0.01 * (signal * x[:-2] + rng.standard_normal((n_sessions - 2, n_names)))
    prices = pd.DataFrame(100 * np.exp(np.cumsum(ret, axis=0)), index=idx, columns=names)
    feats = pd.DataFrame(x, index=idx, columns=names).stack().to_frame("f")
    feats["g"] = rng.standard_normal(len(feats))
    feats.index.names = ["session", "symbol"]
    labels = forward_returns(prices, LabelConfig(horizon=1, target="raw"))
    return feats.astype("float32"), labels


def _walk(name: str, signal: float, seed: int):
    feats, labels = _panel(signal, seed)
    cfg = WalkForwardConfig(refit="quarterly", min_train_sessions=250, embargo=1)
    return walk_forward(feats, labels, "fwd_ret_1", lambda: make_model(name), cfg, progress=False)


@pytest.mark.parametrize("name", ALL)
def test_planted_signal_gives_a_clearly_positive_rank_ic(name):
    result = _walk(name, signal=0.6, seed=11)
    ics = result.fold_metrics["rank_ic"]
    assert ics.mean() > 0.15, ics.tolist()
    assert (ics > 0).all()
    assert result.predictions["score"].notna().all()


@pytest.mark.parametrize("name", ALL)
def test_pure_noise_gives_an_ic_indistinguishable_from_zero(name):
    result = _walk(name, signal=0.0, seed=12)
    ics = result.fold_metrics["rank_ic"]
    t_stat = ics.mean() / (ics.std(ddof=1) / np.sqrt(len(ics)))
    assert abs(t_stat) < 3.0 and abs(ics.mean()) < 0.05, ics.tolist()


@pytest.mark.slow
@pytest.mark.parametrize("name", SEQUENCES)
def test_sequence_models_report_std_and_use_history_before_the_fold(name):
    result = _walk(name, signal=0.6, seed=13)
    assert {"score", "std", "fold"} <= set(result.predictions.columns)
    assert (result.predictions["std"] > 0).all()


@pytest.mark.parametrize("name", ALL)
def test_same_seed_gives_identical_predictions(name):
    feats, labels = _panel(0.6, 14, n_sessions=300)
    y = labels["fwd_ret_1"].reindex(feats.index)
    ok = y.notna().to_numpy()
    a = make_model(name).fit(feats[ok], y[ok]).predict(feats)
    b = make_model(name).fit(feats[ok], y[ok]).predict(feats)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", SEQUENCES)
def test_mc_dropout_std_is_larger_far_from_the_training_data(name):
    feats, labels = _panel(0.6, 15, n_sessions=300)
    y = labels["fwd_ret_1"].reindex(feats.index)
    ok = y.notna().to_numpy()
    model = make_model(name, dropout=0.3, mc_samples=40).fit(feats[ok], y[ok])
    _, typical = model.predict_dist(feats)
    far = feats.copy()
    far[["f", "g"]] = far[["f", "g"]] * 8.0  # eight standard deviations out
    _, distant = model.predict_dist(far)
    assert np.nanmedian(distant) > 2.0 * np.nanmedian(typical)


@pytest.mark.slow
@pytest.mark.parametrize("name", MODELS)
def test_pyfunc_from_the_registry_reproduces_in_memory_predictions(name, tmp_path):
    from py_finance import tracking
    from py_finance.tracking.config import TrackingConfig

    feats, labels = _panel(0.6, 16, n_sessions=250)
    y = labels["fwd_ret_1"].reindex(feats.index)
    ok = y.notna().to_numpy()
    model = make_model(name).fit(feats[ok], y[ok])
    expected = model.predict(feats)
    tracking.setup(
        TrackingConfig(tracking_uri="sqlite:///mlflow.db", artifact_location="mlruns"), tmp_path
    )
    with tracking.start_run(f"pyfunc-{name}"):
        ref = tracking.log_model(
            model,
            feature_names=list(feats.columns),
            input_example=feats.tail(40),
            registered_model_name=f"test-{name}",
        )
    tracking.set_alias(f"test-{name}", "champion", ref.version)
    loaded = tracking.load_model(f"test-{name}", "champion")
    got = loaded.predict(feats)
    np.testing.assert_allclose(got.to_numpy(), expected, rtol=1e-6, equal_nan=True)


@pytest.mark.slow
def test_a_sequence_fit_records_the_epochs_early_stopping_kept():
    # max_epochs above the patience: the validation loss decides (walk-forward folds log the
    # record beside their IC).
    feats, labels = _panel(0.6, 15, n_sessions=300)
    y = labels["fwd_ret_1"].reindex(feats.index)
    ok = y.notna().to_numpy()
    model = make_model("tcn", max_epochs=6, patience=1).fit(feats[ok], y[ok])
    record = model.fit_record_
    assert 1 <= record["n_epochs"] <= record["epochs_run"] <= 6
    assert record["epochs_run"] == model.epochs_
