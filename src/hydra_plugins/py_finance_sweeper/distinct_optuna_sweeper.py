"""``hydra/sweeper=tpe``'s sweeper class, registered with Hydra from the plugin namespace.

The logic lives in :mod:`py_finance.pipeline.sweeper`.
"""

from __future__ import annotations

from typing import Any

from hydra_plugins.hydra_optuna_sweeper.optuna_sweeper import OptunaSweeper


class DistinctOptunaSweeper(OptunaSweeper):
    """Hydra's Optuna sweeper whose trials never repeat a parameter set the study holds."""

    def __init__(self, **kwargs: Any) -> None:
        from py_finance.pipeline.sweeper import DistinctOptunaSweeperImpl

        super().__init__(**kwargs)
        self.sweeper.__class__ = DistinctOptunaSweeperImpl
