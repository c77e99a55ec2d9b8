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

    supports_warm_start: ClassVar[bool] = True

    def preload(self) -> None:
        """Import the boosting library now (before fold workers are forked)."""
        self._make()

    @property
    def threads(self) -> int:
        """Threads the library trains and predicts with."""
        return int(self.params["n_jobs"])

    def set_threads(self, n: int) -> None:
        """Train and predict with ``n`` threads (the predictions do not depend on it)."""
        self.params["n_jobs"] = int(n)
        if hasattr(self, "booster_"):
            self.booster_.set_params(n_jobs=int(n))

    def _make(self, **override: Any) -> Any:
        raise NotImplementedError

    def _warm(self, previous: _BoostedModel) -> dict[str, Any]:
        raise NotImplementedError

    def fit(
        self,
        X: pd.DataFrame,
        y: pd.Series | np.ndarray,
        *,
        warm_from: _BoostedModel | None = None,
        n_new: int | None = None,
    ) -> _BoostedModel:
        """Fit on feature frame ``X`` and target ``y``.

        ``warm_from`` continues that fitted model's trees: ``n_new`` trees (default
        ``n_estimators``) are added, fitted to what its predictions leave unexplained on
        ``X`` (a walk-forward fold warm-started from the previous fold's model).
        """
        self.feature_names_ = list(X.columns)
        override = {} if n_new is None else {"n_estimators": int(n_new)}
        self.booster_ = self._make(**override)
        warm = {} if warm_from is None else self._warm(warm_from)
        self.booster_.fit(X.to_numpy(), np.asarray(y, dtype="float64"), **warm)
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """Scores for the rows of ``X`` (columns selected by name, in training order)."""
        return np.asarray(self.booster_.predict(X[self.feature_names_].to_numpy()), dtype="float64")


class LightGBMModel(_BoostedModel):
    """LightGBM regressor; keyword arguments go to ``lightgbm.LGBMRegressor``."""

    name = "lightgbm"
    defaults: ClassVar[dict[str, Any]] = {
        "n_estimators": 100,
        "learning_rate": 0.1,
        "num_leaves": 15,
        "min_child_samples": 200,
        "subsample": 0.8,
        "subsample_freq": 1,
        "colsample_bytree": 0.8,
        "reg_lambda": 1.0,
        "random_state": 42,
        "n_jobs": 2,
    }

    def _make(self, **override: Any) -> Any:
        import lightgbm as lgb

        params = {**self.params, **override}
        return lgb.LGBMRegressor(deterministic=True, force_col_wise=True, verbose=-1, **params)

    def _warm(self, previous: _BoostedModel) -> dict[str, Any]:
        return {"init_model": previous.booster_.booster_}


class XGBoostModel(_BoostedModel):
    """XGBoost regressor; keyword arguments go to ``xgboost.XGBRegressor``."""

    name = "xgboost"
    defaults: ClassVar[dict[str, Any]] = {
        "n_estimators": 100,
        "learning_rate": 0.1,
        "max_depth": 4,
        "subsample": 0.8,
        "colsample_bytree": 0.8,
        "min_child_weight": 50,
        "reg_lambda": 1.0,
        "random_state": 42,
        "n_jobs": 2,
    }

    def _make(self, **override: Any) -> Any:
        import xgboost as xgb

        return xgb.XGBRegressor(tree_method="hist", **{**self.params, **override})

    def _warm(self, previous: _BoostedModel) -> dict[str, Any]:
        return {"xgb_model": previous.booster_.get_booster()}
