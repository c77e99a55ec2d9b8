"""The Optuna sweeper of ``hydra/sweeper=tpe``: Hydra's, with no parameter set run twice.

Workers that share a study sample with their own seeds (conf/hydra/sweeper/tpe.yaml), but
in a discrete space two of them, or one worker twice, can still draw a set the study already
holds. Before a trial's job is launched, its parameters are compared with every trial of
the study that is complete, running or waiting: a repeat is closed as PRUNED (user attribute
``duplicate_of``: the number of the trial it repeats) and a new set is drawn in its place, so
the study's completed trials never repeat a configuration and no configuration is computed
twice. When every set of a small space is taken, the sweep stops with a message instead of
repeating one. Hydra loads the sweeper class from its plugin namespace:
``hydra_plugins.py_finance_sweeper.distinct_optuna_sweeper.DistinctOptunaSweeper``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from hydra_plugins.hydra_optuna_sweeper._impl import OptunaSweeperImpl

log = logging.getLogger(__name__)

# Draws of a new set in place of a repeat before the space is taken to be exhausted.
MAX_REDRAWS = 100


def params_key(params: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    """A hashable identity of one parameter set."""
    return tuple(sorted((str(k), repr(v)) for k, v in params.items()))


def duplicate_of(trial: Any) -> int | None:
    """The number of an earlier live or completed trial of the study with ``trial``'s params."""
    import optuna

    states = (
        optuna.trial.TrialState.COMPLETE,
        optuna.trial.TrialState.RUNNING,
        optuna.trial.TrialState.WAITING,
    )
    key = params_key(trial.params)
    for other in trial.study.get_trials(deepcopy=False, states=states):
        if other.number < trial.number and params_key(other.params) == key:
            return int(other.number)
    return None


class DistinctOptunaSweeperImpl(OptunaSweeperImpl):
    """Hydra's Optuna sweeper implementation, redrawing parameter sets the study holds."""

    def _configure_trials(
        self,
        trials: list[Any],
        search_space_distributions: dict[str, Any],
        fixed_params: dict[str, Any],
        fixed_overrides: list[str],
    ) -> Sequence[Sequence[str]]:
        import optuna

        overrides = list(
            super()._configure_trials(
                trials, search_space_distributions, fixed_params, fixed_overrides
            )
        )
        for i in range(len(trials)):
            for _ in range(MAX_REDRAWS):
                earlier = duplicate_of(trials[i])
                if earlier is None:
                    break
                trial = trials[i]
                trial.set_user_attr("duplicate_of", earlier)
                trial.study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                log.info(
                    "trial %d repeats trial %d (%s): drawing another",
                    trial.number,
                    earlier,
                    trial.params,
                )
                trials[i] = trial.study.ask()
                overrides[i] = super()._configure_trials(
                    [trials[i]], search_space_distributions, fixed_params, fixed_overrides
                )[0]
            else:
                raise RuntimeError(
                    f"no new parameter set in {MAX_REDRAWS} draws: the search space "
                    f"{sorted(search_space_distributions)} seems exhausted by the study's "
                    "trials (widen it or lower hydra.sweeper.n_trials)"
                )
        return overrides
