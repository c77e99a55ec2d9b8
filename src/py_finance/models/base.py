"""The estimator contract every model follows."""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import pandas as pd


class Estimator(Protocol):
    """``fit(X, y) -> self`` and ``predict(X) -> scores`` on ``(session, symbol)`` frames."""

    def fit(self, X: pd.DataFrame, y: Any) -> Any:
        """Fit on features ``X`` and target ``y``; return self."""
        ...

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """One score per row of ``X``."""
        ...
