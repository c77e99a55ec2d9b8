"""Experiment tracking settings (``conf/tracking/``). Importing this loads no mlflow."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class TrackingConfig:
    """Where MLflow runs, artifacts and registered models live.

    Parameters
    ----------
    tracking_uri
        MLflow tracking URI; a relative ``sqlite:///`` path is relative to the project root.
    artifact_location
        Directory (or URI) for run artifacts of newly created experiments.
    experiment
        Experiment name; one per pipeline.
    model_name_prefix
        Registered models are named ``{prefix}{horizon}`` (``py-finance-h5``).
    """

    tracking_uri: str = "sqlite:///mlflow.db"
    artifact_location: str = "mlruns"
    experiment: str = "py-finance"
    model_name_prefix: str = "py-finance-h"

    def model_name(self, horizon: int) -> str:
        """Return the registered model name for a label horizon."""
        return f"{self.model_name_prefix}{horizon}"
