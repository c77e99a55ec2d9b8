"""The pyfunc wrappers that registered py-finance models are saved as.

Row models (trees, sklearn) are :class:`ScoreModel`: one feature row in, one score out.
Sequence models are :class:`WindowScoreModel`: the feature panel of the last ``window``
sessions in, with its ``session`` and ``symbol`` keys as columns, and the last session's
scores with their MC-dropout mean and std out.

Importing this module imports mlflow; :mod:`py_finance.tracking.registry` imports it lazily.
The classes are pickled by reference, so loading a model needs ``py_finance`` importable (the
live loop runs from the same package).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from py_finance.errors import DataError
from py_finance.tracking._mlflow import prepare_environment

prepare_environment()

from mlflow.pyfunc import PythonModel  # noqa: E402  (after the environment defaults)

# The key columns of a window model's input and output; its output's value columns.
KEYS = ("session", "symbol")
WINDOW_OUTPUTS = ("score", "mean", "std")
# The pyfunc parameter that scores every session of the input whose window is complete
# (default: the last session only).
ALL_SESSIONS = "all_sessions"


def select_features(frame: pd.DataFrame, feature_names: Sequence[str]) -> pd.DataFrame:
    """Return ``frame``'s feature columns in training order.

    Parameters
    ----------
    frame
        Input rows; extra columns are ignored and column order does not matter.
    feature_names
        Columns the model was trained on, in order.

    Returns
    -------
    pandas.DataFrame
        ``frame[feature_names]``, same index.

    Raises
    ------
    DataError
        When a feature column is missing; the message names every missing column.
    """
    missing = [c for c in feature_names if c not in frame.columns]
    if missing:
        raise DataError(
            f"model input is missing feature column(s) {missing}; the model was trained on "
            f"{list(feature_names)}: rebuild the features with the config the model was "
            "trained with"
        )
    return frame.loc[:, list(feature_names)]


class ScoreModel(PythonModel):
    """Pyfunc wrapper of any fitted object with ``predict(X: DataFrame) -> array``.

    Parameters
    ----------
    estimator
        The fitted model (sklearn, LightGBM, XGBoost, ...); pickled with the pyfunc.
    feature_names
        Columns the estimator was fitted on, in order.
    """

    def __init__(self, estimator: object, feature_names: Sequence[str]) -> None:
        if not callable(getattr(estimator, "predict", None)):
            raise TypeError(f"{type(estimator).__name__} has no predict method")
        self.estimator = estimator
        self.feature_names = list(feature_names)

    def score(self, frame: pd.DataFrame) -> pd.Series:
        """Return float scores indexed like ``frame`` (the model's forecast per row)."""
        features = select_features(frame, self.feature_names)
        raw = np.asarray(self.estimator.predict(features), dtype=np.float64)  # type: ignore[attr-defined]
        if raw.ndim == 2 and raw.shape[1] == 1:
            raw = raw[:, 0]
        if raw.shape != (len(features),):
            raise ValueError(
                f"{type(self.estimator).__name__}.predict returned shape {raw.shape}; "
                f"expected one score per row ({len(features)},)"
            )
        return pd.Series(raw, index=frame.index, name="score")

    # mlflow reads this annotation: DataFrame is one it accepts without inferring a schema from
    # it (no annotation, or Any, makes it warn); the signature logged with the model is the
    # real contract.
    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.Series:
        """Pyfunc entry point: score a DataFrame of features (see :meth:`score`)."""
        if not isinstance(model_input, pd.DataFrame):
            model_input = pd.DataFrame(model_input)
        return self.score(model_input)


def keyed_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with its ``(session, symbol)`` keys as columns (from the index or columns).

    Raises
    ------
    DataError
        When the keys are neither index levels nor columns.
    """
    names = [n for n in (frame.index.names or []) if n is not None]
    if set(KEYS) <= set(names):
        frame = frame.reset_index()
    missing = [k for k in KEYS if k not in frame.columns]
    if missing:
        raise DataError(
            f"a sequence model's input needs the key column(s) {missing} (or a (session, "
            "symbol) index): it scores the window of sessions that ends at each row"
        )
    return frame


class WindowScoreModel(PythonModel):
    """Pyfunc wrapper of a sequence model: a window of sessions in, the last session out.

    Parameters
    ----------
    estimator
        The fitted sequence model (``predict`` and ``predict_dist`` on ``(session, symbol)``
        frames); pickled with the pyfunc.
    feature_names
        Columns the estimator was fitted on, in order.
    window
        Sessions the model reads per score (its ``lookback``).

    Notes
    -----
    The input is long: ``session``, ``symbol`` and the features, one row per name and
    session, the last ``window`` sessions (more are allowed; only complete windows are
    scored). The output has ``session``, ``symbol``, ``score`` (dropout off, as the backtest
    scores), ``mean`` and ``std`` (MC dropout with the model's seed) for the rows of the last
    session, sorted by symbol; ``params={"all_sessions": True}`` returns every row instead
    (NaN where a name lacks ``window`` sessions). The rows are scored in ``(session,
    symbol)`` order whatever the input order, so the MC draws are the same for the same
    window.
    """

    def __init__(self, estimator: object, feature_names: Sequence[str], window: int) -> None:
        if not callable(getattr(estimator, "predict", None)):
            raise TypeError(f"{type(estimator).__name__} has no predict method")
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        self.estimator = estimator
        self.feature_names = list(feature_names)
        self.window = int(window)

    def panel(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The estimator's input: features on a sorted ``(session, symbol)`` index."""
        keyed = keyed_frame(frame)
        features = select_features(keyed, self.feature_names)
        index = pd.MultiIndex.from_arrays(
            [
                pd.DatetimeIndex(pd.to_datetime(keyed["session"].to_numpy())),
                keyed["symbol"].astype(str).to_numpy(),
            ],
            names=list(KEYS),
        )
        out = features.set_axis(index).sort_index()
        if out.index.has_duplicates:
            dup = out.index[out.index.duplicated()][0]
            raise DataError(f"model input has the row {dup} twice: one row per session and name")
        return out

    def score(self, frame: pd.DataFrame, all_sessions: bool = False) -> pd.DataFrame:
        """Scores, MC-dropout mean and std of the last session (or every session) of ``frame``.

        Raises
        ------
        DataError
            When ``frame`` holds fewer sessions than the window (last session only), a
            feature or key column is missing, or a row appears twice.
        """
        X = self.panel(frame)
        sessions = X.index.get_level_values("session").unique()
        if not all_sessions:
            if len(sessions) < self.window:
                raise DataError(
                    f"the model reads windows of {self.window} sessions; its input holds "
                    f"{len(sessions)}"
                )
            X = X[X.index.get_level_values("session") >= sessions[-self.window]]
        est: Any = self.estimator
        score = np.asarray(est.predict(X), dtype=np.float64)
        if callable(getattr(est, "predict_dist", None)):
            mean, std = (np.asarray(a, dtype=np.float64) for a in est.predict_dist(X))
        else:
            mean, std = score, np.full(len(X), np.nan)
        out = pd.DataFrame({"score": score, "mean": mean, "std": std}, index=X.index).reset_index()
        if not all_sessions:
            out = out[out["session"] == sessions[-1]].reset_index(drop=True)
        return out

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        """Pyfunc entry point: score a window of sessions (see :meth:`score`)."""
        if not isinstance(model_input, pd.DataFrame):
            model_input = pd.DataFrame(model_input)
        return self.score(model_input, bool((params or {}).get(ALL_SESSIONS, False)))
