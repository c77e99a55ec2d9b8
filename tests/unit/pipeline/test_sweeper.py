"""The Optuna sweeper never launches a parameter set the study already holds."""

from __future__ import annotations

import optuna
import pytest

from py_finance.pipeline.sweeper import DistinctOptunaSweeperImpl, duplicate_of


def _impl() -> DistinctOptunaSweeperImpl:
    impl = DistinctOptunaSweeperImpl.__new__(DistinctOptunaSweeperImpl)
    impl.custom_search_space_extender = None
    impl.config = None
    return impl


SPACE = {
    "regime_policy": optuna.distributions.CategoricalDistribution(["none", "fixed", "data_driven"])
}


def test_repeated_sets_are_pruned_and_redrawn_until_the_space_is_exhausted():
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # Two "workers" on one study, sampling with the same seed: every draw of the second
    # repeats the first's unless redrawn.
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    impl = _impl()
    launched = []
    for _ in range(3):
        trials = [study.ask()]
        overrides = impl._configure_trials(trials, SPACE, {}, ["seed=1"])
        launched.append(overrides[0])
        study.tell(trials[0], 1.0)
    assert len(set(launched)) == 3, launched
    assert all(o[-1] == "seed=1" for o in launched)
    done = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    pruned = study.get_trials(states=(optuna.trial.TrialState.PRUNED,))
    assert len({t.params["regime_policy"] for t in done}) == 3
    assert all("duplicate_of" in t.user_attrs for t in pruned)
    # Every set is taken: the sweep stops instead of running one again.
    with pytest.raises(RuntimeError, match="exhausted"):
        impl._configure_trials([study.ask()], SPACE, {}, [])


def test_a_batch_does_not_repeat_itself_or_a_running_trial():
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    impl = _impl()
    trials = [study.ask() for _ in range(3)]
    overrides = impl._configure_trials(trials, SPACE, {}, [])
    assert len(set(overrides)) == 3
    assert all(duplicate_of(t) is None for t in trials)
    assert all(t.number >= 0 for t in trials)
