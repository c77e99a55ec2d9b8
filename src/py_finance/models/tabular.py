"""Gradient-boosted tree models behind the project's estimator contract.

``fit(X, y) -> self`` and ``predict(X) -> np.ndarray`` on feature frames; the fitted booster
is ``booster_``. Training is deterministic for a given ``random_state`` and thread count.

Early stopping: ``n_estimators`` is the most trees a model may grow. Given a validation set
(``fit(X, y, valid=(X_val, y_val))``: the walk-forward hands each fold a purged tail of its
own training window, see :func:`py_finance.models.walk_forward.walk_forward`), a model with
``patience > 0`` stops once ``patience`` trees in a row have not lowered the validation loss
and keeps the best number of trees (``n_trees_``). ``val_fraction`` is the share of the
training sessions that validate. :meth:`_BoostedModel.sized` is the same model with a fixed
number of trees and no validation: the final model, sized by the folds' choice.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pandas as pd

# Settings of the early stopping, not of the boosting library: never passed to it.
STOPPING_KEYS = ("patience", "val_fraction")


class _BoostedModel:
    """Shared fit/predict of the scikit-learn-style boosting regressors."""

    name: ClassVar[str]
    defaults: ClassVar[dict[str, Any]]

    def __init__(self, **params: Any) -> None:
        self.params = {**self.defaults, **params}
        if int(self.params["patience"]) < 0:
            raise ValueError(f"patience must be >= 0, got {self.params['patience']}")
        if not 0.0 <= float(self.params["val_fraction"]) < 0.9:
            raise ValueError(f"val_fraction must be in [0, 0.9), got {self.params['val_fraction']}")

    @property
    def validation_fraction(self) -> float:
        """Share of the training sessions a walk-forward fold holds out to stop on (0: none)."""
        if int(self.params["patience"]) <= 0:
            return 0.0
        return float(self.params["val_fraction"])

    #: What a fit chooses (``fit_record_``) and :meth:`sized` fixes.
    size_key: ClassVar[str] = "n_trees"

    def sized(self, n_trees: int) -> _BoostedModel:
        """An unfitted copy that grows exactly ``n_trees`` trees, without early stopping."""
        return type(self)(**{**self.params, "n_estimators": int(n_trees), "patience": 0})

    @property
    def fit_record_(self) -> dict[str, int]:
        """What the fit chose, for the fold records: the number of trees kept."""
        return {"n_trees": int(self.n_trees_)}

    def _library_params(self, **override: Any) -> dict[str, Any]:
        params = {k: v for k, v in self.params.items() if k not in STOPPING_KEYS}
        return {**params, **override}

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
        valid: tuple[pd.DataFrame, pd.Series | np.ndarray] | None = None,
        warm_from: _BoostedModel | None = None,
        n_new: int | None = None,
    ) -> _BoostedModel:
        """Fit on feature frame ``X`` and target ``y``.

        ``valid`` (features and target of later rows, purged from ``X``'s labels) stops the
        growth when ``patience > 0``: the trees after the best validation loss are dropped
        (``n_trees_``). Without it, or with ``patience=0``, all ``n_estimators`` trees grow.
        ``warm_from`` continues that fitted model's trees: ``n_new`` trees (default
        ``n_estimators``) are added, fitted to what its predictions leave unexplained on
        ``X`` (a walk-forward fold warm-started from the previous fold's model).
        """
        self.feature_names_ = list(X.columns)
        override = {} if n_new is None else {"n_estimators": int(n_new)}
        x, target = X.to_numpy(), np.asarray(y, dtype="float64")
        extra = {} if warm_from is None else self._warm(warm_from)
        stop = int(self.params["patience"]) if valid is not None else 0
        if stop > 0 and valid is not None:
            x_val = valid[0][self.feature_names_].to_numpy()
            extra.update(self._stopping(stop, x_val, np.asarray(valid[1], dtype="float64")))
            override.update(self._stopping_params(stop))
        self.booster_ = self._make(**override)
        self.booster_.fit(x, target, **extra)
        grown = int(override.get("n_estimators", self.params["n_estimators"]))
        self.n_trees_ = self._best(grown) if stop > 0 else grown
        return self

    def _stopping(self, patience: int, x_val: np.ndarray, y_val: np.ndarray) -> dict[str, Any]:
        raise NotImplementedError

    def _stopping_params(self, patience: int) -> dict[str, Any]:
        return {}

    def _best(self, grown: int) -> int:
        raise NotImplementedError

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """Scores for the rows of ``X`` (columns selected by name, in training order)."""
        return np.asarray(self.booster_.predict(X[self.feature_names_].to_numpy()), dtype="float64")


class LightGBMModel(_BoostedModel):
    """LightGBM regressor; keyword arguments go to ``lightgbm.LGBMRegressor``."""

    name = "lightgbm"
    defaults: ClassVar[dict[str, Any]] = {
        "n_estimators": 1000,
        "learning_rate": 0.05,
        "patience": 50,
        "val_fraction": 0.2,
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

        params = self._library_params(**override)
        return lgb.LGBMRegressor(deterministic=True, force_col_wise=True, verbose=-1, **params)

    def _warm(self, previous: _BoostedModel) -> dict[str, Any]:
        return {"init_model": previous.booster_.booster_}

    def _stopping(self, patience: int, x_val: np.ndarray, y_val: np.ndarray) -> dict[str, Any]:
        import inspect

        import lightgbm as lgb

        # eval_X/eval_y since LightGBM 4.6 (eval_set is deprecated there); eval_set before it
        if "eval_X" in inspect.signature(lgb.LGBMRegressor.fit).parameters:
            data: dict[str, Any] = {"eval_X": (x_val,), "eval_y": (y_val,)}
        else:
            data = {"eval_set": [(x_val, y_val)]}
        return {
            **data,
            "eval_metric": "l2",
            "callbacks": [lgb.early_stopping(patience, first_metric_only=True, verbose=False)],
        }

    def _best(self, grown: int) -> int:
        best = int(self.booster_.best_iteration_ or 0)
        return best if best > 0 else grown


class XGBoostModel(_BoostedModel):
    """XGBoost regressor; keyword arguments go to ``xgboost.XGBRegressor``."""

    name = "xgboost"
    defaults: ClassVar[dict[str, Any]] = {
        "n_estimators": 1000,
        "learning_rate": 0.05,
        "patience": 50,
        "val_fraction": 0.2,
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

        return xgb.XGBRegressor(tree_method="hist", **self._library_params(**override))

    def _warm(self, previous: _BoostedModel) -> dict[str, Any]:
        return {"xgb_model": previous.booster_.get_booster()}

    def _stopping(self, patience: int, x_val: np.ndarray, y_val: np.ndarray) -> dict[str, Any]:
        return {"eval_set": [(x_val, y_val)], "verbose": False}

    def _stopping_params(self, patience: int) -> dict[str, Any]:
        return {"early_stopping_rounds": patience, "eval_metric": "rmse"}

    def _best(self, grown: int) -> int:
        best = getattr(self.booster_, "best_iteration", None)
        return grown if best is None else int(best) + 1
