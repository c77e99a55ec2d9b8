"""Experiment tracking facade: the only package of py-finance that imports mlflow.

Importing it loads no mlflow; each function imports mlflow when first called.

>>> from py_finance import tracking
>>> tracking.setup(cfg.tracking)
>>> with tracking.start_run("backtest-h5", tags=tracking.standard_tags(...)):
...     tracking.log_params(cfg)
...     tracking.log_metrics(result.metrics)
"""

from py_finance.tracking.config import TrackingConfig
from py_finance.tracking.promotion import (
    GateDecision,
    GateEvidence,
    PromotionConfig,
    TrialRecord,
    count_trials,
    evaluate_gate,
    gate_evidence,
    promote,
)
from py_finance.tracking.registry import (
    CHALLENGER,
    CHAMPION,
    LoadedModel,
    ModelRef,
    default_requirements,
    get_alias_version,
    get_version_metrics,
    get_version_tags,
    latest_version,
    load_model,
    log_model,
    set_alias,
    set_version_tags,
)
from py_finance.tracking.runs import (
    flatten_params,
    git_sha,
    log_artifact,
    log_dict,
    log_figure,
    log_frame,
    log_metrics,
    log_params,
    resolve_artifact_location,
    resolve_tracking_uri,
    setup,
    standard_tags,
    start_run,
)
from py_finance.tracking.sweeps import (
    child_runs,
    create_parent_run,
    dvc_hash,
    finish_run,
    log_dataset,
)

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "GateDecision",
    "GateEvidence",
    "LoadedModel",
    "ModelRef",
    "PromotionConfig",
    "TrackingConfig",
    "TrialRecord",
    "child_runs",
    "count_trials",
    "create_parent_run",
    "default_requirements",
    "dvc_hash",
    "evaluate_gate",
    "finish_run",
    "flatten_params",
    "gate_evidence",
    "get_alias_version",
    "get_version_metrics",
    "get_version_tags",
    "git_sha",
    "latest_version",
    "load_model",
    "log_artifact",
    "log_dataset",
    "log_dict",
    "log_figure",
    "log_frame",
    "log_metrics",
    "log_model",
    "log_params",
    "promote",
    "resolve_artifact_location",
    "resolve_tracking_uri",
    "set_alias",
    "set_version_tags",
    "setup",
    "standard_tags",
    "start_run",
]
