"""A sequence model logged as a window pyfunc: keyed input, last session's scores and std out."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

from py_finance import tracking
from py_finance.errors import DataError

pytestmark = pytest.mark.slow  # trains a (tiny) Lightning model

NAME = "py-finance-window-test-h1"
LOOKBACK = 5
PARAMS = {
    "lookback": LOOKBACK,
    "hidden": 8,
    "levels": 2,
    "max_epochs": 2,
    "batch_size": 256,
    "mc_samples": 6,
    "dropout": 0.3,
    "val_gap": 1,
    "accelerator": "cpu",
}


def _panel(n_sessions: int = 160, n_names: int = 12) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(3)
    idx = pd.MultiIndex.from_product(
        [pd.bdate_range("2015-01-02", periods=n_sessions), [f"S{i:02d}" for i in range(n_names)]],
        names=["session", "symbol"],
    )
    feats = pd.DataFrame(
        rng.standard_normal((len(idx), 2)).astype("float32"), index=idx, columns=["f", "g"]
    )
    y = pd.Series(0.5 * feats["f"].to_numpy() + rng.standard_normal(len(idx)), index=idx)
    return feats, y


@dataclass(frozen=True)
class Served:
    model: object
    loaded: tracking.LoadedModel
    feats: pd.DataFrame


@pytest.fixture(scope="module")
def served(tracking_store) -> Served:
    from py_finance.models.sequence import TCNModel

    feats, y = _panel()
    model = TCNModel(**PARAMS).fit(feats, y)
    tracking.setup(tracking_store.cfg, root=tracking_store.root)
    with tracking.start_run("window-model"):
        # The example as the backtest stage passes it: (session, symbol)-indexed rows.
        ref = tracking.log_model(
            model,
            feature_names=["f", "g"],
            input_example=feats.tail(12 * (LOOKBACK + 2)),
            registered_model_name=NAME,
        )
    assert ref.version is not None
    loaded = tracking.load_model(NAME, version=ref.version)
    return Served(model=model, loaded=loaded, feats=feats)


def _window(feats: pd.DataFrame, end: int, n: int = LOOKBACK) -> pd.DataFrame:
    sessions = feats.index.get_level_values("session").unique()
    level = feats.index.get_level_values("session")
    return feats[(level > sessions[end - n]) & (level <= sessions[end])]


def test_the_signature_names_the_keys_the_features_and_the_outputs(served: Served) -> None:
    meta = served.loaded.model.metadata
    assert meta.get_input_schema().input_names() == ["session", "symbol", "f", "g"]
    assert meta.get_output_schema().input_names() == ["session", "symbol", "score", "mean", "std"]
    assert served.loaded.window == LOOKBACK
    assert served.loaded.feature_names == ("f", "g")


def test_the_registry_model_scores_the_window_as_the_in_process_model(served: Served) -> None:
    window = _window(served.feats, end=120)
    got = served.loaded.score_session(window)
    last = window.index.get_level_values("session").max()
    expect_score = served.model.predict(window)  # type: ignore[attr-defined]
    expect_mean, expect_std = served.model.predict_dist(window)  # type: ignore[attr-defined]
    today = (window.index.get_level_values("session") == last).nonzero()[0]
    symbols = window.index.get_level_values("symbol")[today]
    assert list(got.index) == list(symbols)
    np.testing.assert_allclose(got["score"], expect_score[today], rtol=0, atol=1e-6)
    np.testing.assert_allclose(got["mean"], expect_mean[today], rtol=0, atol=1e-6)
    np.testing.assert_allclose(got["std"], expect_std[today], rtol=0, atol=1e-6)
    assert (got["std"] > 0).all()
    assert not np.allclose(got["mean"], got["score"])  # the MC mean is not the eval pass


def test_row_order_and_extra_columns_do_not_change_the_scores(served: Served) -> None:
    window = _window(served.feats, end=90)
    shuffled = window.sample(frac=1.0, random_state=1).assign(extra=1.0)[["extra", "g", "f"]]
    pd.testing.assert_frame_equal(
        served.loaded.score_session(shuffled), served.loaded.score_session(window)
    )


def test_a_window_of_fewer_sessions_than_the_lookback_is_refused(served: Served) -> None:
    short = _window(served.feats, end=60, n=LOOKBACK - 1)
    with pytest.raises(DataError, match=rf"windows of {LOOKBACK} sessions; its input holds 4"):
        served.loaded.score_session(short)


def test_a_window_without_its_keys_is_refused(served: Served) -> None:
    flat = _window(served.feats, end=60).reset_index(drop=True)
    with pytest.raises(DataError, match="key column"):
        served.loaded.score_session(flat)


def test_every_session_scored_at_once_matches_the_in_process_predictions(served: Served) -> None:
    rows = served.feats.iloc[: 12 * 40]
    got = served.loaded.predict(rows)
    np.testing.assert_allclose(
        got.to_numpy(),
        served.model.predict(rows),  # type: ignore[attr-defined]
        rtol=0,
        atol=1e-6,
        equal_nan=True,
    )
    assert got.index.equals(rows.index)
    assert got.iloc[: 12 * (LOOKBACK - 1)].isna().all()  # no complete window yet
    frame = served.loaded.predict_frame(rows)
    _, std = served.model.predict_dist(rows)  # type: ignore[attr-defined]
    assert list(frame.columns) == ["score", "std"] and frame.index.equals(rows.index)
    np.testing.assert_allclose(frame["std"], std, rtol=0, atol=1e-6, equal_nan=True)
