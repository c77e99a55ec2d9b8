"""The one place that imports mlflow, after making it quiet and offline.

Every function of :mod:`py_finance.tracking` that needs mlflow calls :func:`import_mlflow`
inside its body, so importing the package (and ``--help`` of every CLI) stays fast.
"""

from __future__ import annotations

import logging
import os
from types import ModuleType

# Set before mlflow is first imported: mlflow starts its telemetry client at import time, and
# GitPython (used by mlflow to tag runs) warns on every import when no git binary is usable.
# setdefault, so a user who wants either can still turn it on in the environment.
_ENV_DEFAULTS = {
    "GIT_PYTHON_REFRESH": "quiet",
    "MLFLOW_DISABLE_TELEMETRY": "true",
}

# INFO chatter of the SQLite store's schema migrations ("Creating initial MLflow database
# tables...", "Context impl SQLiteImpl.", "Running upgrade ...") on every fresh database.
_QUIET_LOGGERS = ("alembic", "mlflow.store.db.utils", "mlflow.store.db_migrations")

# Messages mlflow logs on every `log_model` that say nothing about this project's models:
# the cloudpickle notice (we load only models we logged ourselves) and an INFO progress line.
_DROPPED_MESSAGES = {
    "mlflow.pyfunc": (
        "Passing a Python object as `python_model`",
        "Validating input example against model signature",
    ),
}


class _DropMessages(logging.Filter):
    def __init__(self, prefixes: tuple[str, ...]) -> None:
        super().__init__()
        self.prefixes = prefixes

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.prefixes)


def prepare_environment() -> None:
    """Set mlflow's environment defaults and quiet its noisiest loggers (idempotent)."""
    for key, value in _ENV_DEFAULTS.items():
        os.environ.setdefault(key, value)
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    for name, prefixes in _DROPPED_MESSAGES.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropMessages) for f in logger.filters):
            logger.addFilter(_DropMessages(prefixes))


def import_mlflow() -> ModuleType:
    """Return the ``mlflow`` module, importing it on first use with the quiet defaults."""
    prepare_environment()
    import mlflow

    return mlflow
