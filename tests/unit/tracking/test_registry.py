"""Model logging, registry aliases and load_model against a temporary MLflow store."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression

from py_finance import tracking
from py_finance.errors import DataError, ModelNotFoundError

FEATURES = ["mom_20", "vol_60", "rank_rev_5"]
NAME = "py-finance-registry-test-h5"


@dataclass(frozen=True)
class Logged:
    ref: tracking.ModelRef
    run_id: str
    estimator: LinearRegression
    features: pd.DataFrame


@pytest.fixture(scope="module")
def logged(tracking_store) -> Logged:
    tracking.setup(tracking_store.cfg, root=tracking_store.root)
    rng = np.random.default_rng(0)
    features = pd.DataFrame(rng.normal(size=(40, 3)), columns=FEATURES)
    features["unused"] = rng.normal(size=40)
    target = features @ np.array([0.5, -0.2, 0.1, 0.0])
    estimator = LinearRegression().fit(features[FEATURES], target)
    with tracking.start_run("train-h5") as run_id:
        tracking.log_metrics({"sharpe": 0.8, "ic": 0.05})
        ref = tracking.log_model(
            estimator,
            feature_names=FEATURES,
            # float32 example, float64 rows at predict time: the signature must accept both.
            input_example=features.head(5).astype("float32"),
            registered_model_name=NAME,
        )
    return Logged(ref=ref, run_id=run_id, estimator=estimator, features=features)


def test_log_model_returns_registered_version_of_active_run(logged: Logged) -> None:
    assert logged.ref.name == NAME
    assert logged.ref.version == "1"
    assert logged.ref.run_id == logged.run_id
    assert logged.ref.model_uri.startswith("models:/")
    assert tracking.latest_version(NAME) == "1"
    assert tracking.get_version_metrics(NAME, "1") == {"sharpe": 0.8, "ic": 0.05}


def test_logged_model_records_pinned_requirements(logged: Logged, tmp_path: Path) -> None:
    import mlflow

    local = mlflow.artifacts.download_artifacts(logged.ref.model_uri, dst_path=str(tmp_path))
    lines = (Path(local) / "requirements.txt").read_text().splitlines()
    for pin in tracking.default_requirements():
        assert pin in lines


def test_missing_model_or_alias_is_none_and_load_raises(logged: Logged) -> None:
    assert tracking.get_alias_version("py-finance-no-such-model", "champion") is None
    assert tracking.get_alias_version(NAME, "no-such-alias") is None
    assert tracking.latest_version("py-finance-no-such-model") is None
    with pytest.raises(ModelNotFoundError, match=r"'py-finance-no-such-model@champion'") as err:
        tracking.load_model("py-finance-no-such-model")
    assert "sqlite:///" in str(err.value)
    assert "make run" in str(err.value)
    with pytest.raises(ModelNotFoundError, match=rf"'{NAME}@nobody'"):
        tracking.load_model(NAME, alias="nobody")


def test_champion_loads_and_scores_extra_and_shuffled_columns(logged: Logged) -> None:
    tracking.set_alias(NAME, "champion", logged.ref.version)
    assert tracking.get_alias_version(NAME, "champion") == "1"

    loaded = tracking.load_model(NAME)
    assert (loaded.name, loaded.alias, loaded.version) == (NAME, "champion", "1")
    assert loaded.run_id == logged.run_id
    assert loaded.feature_names == tuple(FEATURES)

    rows = logged.features.iloc[10:16]
    shuffled = rows[["unused", "rank_rev_5", "mom_20", "vol_60"]].assign(symbol="AAPL")
    shuffled.index = pd.MultiIndex.from_product(
        [[pd.Timestamp("2024-01-02").date()], list("ABCDEF")], names=["session", "symbol"]
    )
    scores = loaded.predict(shuffled)
    expected = logged.estimator.predict(rows[FEATURES])
    assert isinstance(scores, pd.Series)
    assert scores.dtype == np.float64
    assert scores.index.equals(shuffled.index)
    np.testing.assert_allclose(scores.to_numpy(), expected, rtol=1e-12)

    # float32 features (a different feature builder) still pass the signature.
    as_float32 = shuffled.astype({c: "float32" for c in FEATURES})
    np.testing.assert_allclose(loaded.predict(as_float32).to_numpy(), expected, rtol=1e-5)

    # The raw pyfunc also selects the features itself.
    raw = loaded.model.predict(rows[list(reversed(FEATURES))])
    np.testing.assert_allclose(np.asarray(raw, dtype=float), expected, rtol=1e-12)


def test_missing_feature_column_names_it(logged: Logged) -> None:
    tracking.set_alias(NAME, "champion", logged.ref.version)
    loaded = tracking.load_model(NAME)
    with pytest.raises(DataError, match=r"\['vol_60'\]"):
        loaded.predict(logged.features.drop(columns=["vol_60"]))


def test_version_tags_round_trip(logged: Logged) -> None:
    tracking.set_version_tags(NAME, logged.ref.version, {"dataset": "abc", "n_rows": 40})
    tags = tracking.get_version_tags(NAME, logged.ref.version)
    assert tags["dataset"] == "abc"
    assert tags["n_rows"] == "40"


def test_score_model_selects_features_itself(logged: Logged) -> None:
    from py_finance.tracking.score_model import ScoreModel

    wrapper = ScoreModel(logged.estimator, FEATURES)
    rows = logged.features.iloc[:4]
    shuffled = rows[["vol_60", "unused", "rank_rev_5", "mom_20"]].set_index(pd.Index(list("wxyz")))
    scores = wrapper.predict(None, shuffled)
    assert list(scores.index) == list("wxyz")
    np.testing.assert_allclose(scores.to_numpy(), logged.estimator.predict(rows[FEATURES]))
    with pytest.raises(DataError, match=r"\['mom_20', 'rank_rev_5'\]"):
        wrapper.predict(None, rows[["vol_60"]])


def test_score_model_rejects_object_without_predict() -> None:
    from py_finance.tracking.score_model import ScoreModel

    with pytest.raises(TypeError, match="no predict"):
        ScoreModel(object(), FEATURES)
