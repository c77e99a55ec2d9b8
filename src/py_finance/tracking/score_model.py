"""The pyfunc wrapper that every registered py-finance model is saved as.

Importing this module imports mlflow; :mod:`py_finance.tracking.registry` imports it lazily.
The class is pickled by reference, so loading a model needs ``py_finance`` importable (the
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
