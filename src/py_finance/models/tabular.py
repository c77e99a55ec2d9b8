"""Gradient-boosted tree models behind the project's estimator contract.

``fit(X, y) -> self`` and ``predict(X) -> np.ndarray`` on feature frames; the fitted booster
is ``booster_``. Training is deterministic for a given ``random_state`` and thread count.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pandas as pd


class _BoostedModel:
    """Shared fit/predict of the scikit-learn-style boosting regressors."""

    name: ClassVar[str]
    defaults: ClassVar[dict[str, Any]]

    def __init__(self, **params: Any) -> None:
        self.params = {**self.defaults, **params}

    def get_params(self) -> dict[str, Any]:
        """Hyper-parameters (for logging)."""
        return dict(self.params)

    def _make(self) -> Any:
        raise NotImplementedError

    def fit(self, X: pd.DataFrame, y: pd.Series | np.ndarray) -> _BoostedModel:
        """Fit on feature frame ``X`` and target ``y``."""
        self.feature_names_ = list(X.columns)
        self.booster_ = self._make()
        self.booster_.fit(X.to_numpy(), np.asarray(y, dtype="float64"))
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """Scores for the rows of ``X`` (columns selected by name, in training order)."""
        return np.asarray(self.booster_.predict(X[self.feature_names_].to_numpy()), dtype="float64")


class LightGBMModel(_BoostedModel):
    """LightGBM regressor; keyword arguments go to ``lightgbm.LGBMRegressor``."""

    name = "lightgbm"
    defaults: ClassVar[dict[str, Any]] = {
        "n_estimators": 200,
        "learning_rate": 0.05,
        "num_leaves": 15,
        "min_child_samples": 200,
        "subsample": 0.8,
        "subsample_freq": 1,
        "colsample_bytree": 0.8,
        "reg_lambda": 1.0,
        "random_state": 42,
        "n_jobs": 2,
    }

    def _make(self) -> Any:
        import lightgbm as lgb

        return lgb.LGBMRegressor(deterministic=True, force_col_wise=True, verbose=-1, **self.params)


class XGBoostModel(_BoostedModel):
    """XGBoost regressor; keyword arguments go to ``xgboost.XGBRegressor``."""

    name = "xgboost"
    defaults: ClassVar[dict[str, Any]] = {
        "n_estimators": 200,
        "learning_rate": 0.05,
        "max_depth": 4,
        "subsample": 0.8,
        "colsample_bytree": 0.8,
        "min_child_weight": 50,
        "reg_lambda": 1.0,
        "random_state": 42,
        "n_jobs": 2,
    }

    def _make(self) -> Any:
        import xgboost as xgb

        return xgb.XGBRegressor(tree_method="hist", **self.params)
