"""Where a pipeline run reads and writes, and the as-of time of its reads."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from py_finance.config import Settings
from py_finance.data.store import Store, end_of_day_utc


@dataclass(frozen=True, slots=True)
class Context:
    """A configured pipeline rooted at ``root`` (the project root, or a test's tmp dir)."""

    settings: Settings
    root: Path

    def path(self, key: str, *parts: str) -> Path:
        """``<root>/<paths[key]>/<parts...>``."""
        return self.root.joinpath(self.settings.paths[key], *parts)

    @property
    def store(self) -> Store:
        """The bar store."""
        return Store(self.path("store"))

    @property
    def as_of(self) -> pd.Timestamp:
        """Knowledge time of research reads: the end of the configured last session."""
        return end_of_day_utc(self.settings.data.end_date)

    @property
    def horizon(self) -> int:
        """Label horizon in sessions."""
        return int(self.settings.labels.horizon)

    @property
    def deployment(self) -> str:
        """The registered model (deployment) of this configuration's candidates.

        ``py-finance-<universe>-h<horizon>``: one research question's universe and horizon.
        """
        return str(
            self.settings.tracking.model_name(self.settings.data.universe_id(), self.horizon)
        )

    def model_dir(self) -> Path:
        """Directory of the trained model and its predictions for this horizon."""
        return self.path("models", f"h{self.horizon}")

    def backtest_dir(self) -> Path:
        """Directory of backtest outputs for this horizon."""
        return self.path("backtest", f"h{self.horizon}")

    def dvc_stage(self, name: str) -> str:
        """The ``dvc repro`` target of stage ``name`` (``features``, ``train``, ...) of this run.

        A matrix cell (paths under ``<models>/matrix/<model>``, see ``pipeline/matrix.py``)
        names its stage in ``pipelines/matrix/dvc.yaml``; any other run the default pipeline's.
        """
        models = Path(self.settings.paths["models"])
        if models.parent.name != "matrix":
            return name
        cell = {
            "labels": f"@{self.horizon}",
            "train": f"@{models.name}-{self.horizon}",
            "backtest": f"@{models.name}-{self.horizon}",
        }
        return f"pipelines/matrix/dvc.yaml:m_{name}{cell.get(name, '')}"
