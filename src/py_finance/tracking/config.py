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
        Registered models are deployments named ``{prefix}-{universe}-h{horizon}``
        (``py-finance-bundled-h5``): one per research question's universe and horizon.
    """

    tracking_uri: str = "sqlite:///mlflow.db"
    artifact_location: str = "mlruns"
    experiment: str = "py-finance"
    model_name_prefix: str = "py-finance"

    def model_name(self, universe: str, horizon: int) -> str:
        """The registered model (deployment) of a universe and a label horizon.

        ``universe`` is ``DataConfig.universe_id()``: ``py-finance-bundled-h5``.
        """
        return f"{self.model_name_prefix}-{universe}-h{int(horizon)}"
