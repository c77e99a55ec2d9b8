"""Sequence models' epoch sizing: windows drawn per epoch from a fold's training windows."""

from __future__ import annotations

import numpy as np
import pytest

from py_finance.config import build, compose
from py_finance.models.sequence import SequenceParams, _loader


def test_an_epoch_draws_the_floor_or_the_fraction_of_the_folds_windows_whichever_is_more():
    p = SequenceParams(epoch_windows=16384, epoch_fraction=0.0625)
    assert p.windows_per_epoch(100_000) == 16384  # the floor on a narrow universe
    assert p.windows_per_epoch(1_000_000) == 62500  # a wide one: its share of the fold
    assert p.windows_per_epoch(10_000) is None  # fewer than the floor: every window
    assert SequenceParams(epoch_windows=16384).windows_per_epoch(1_000_000) == 16384
    assert SequenceParams(epoch_windows=0, epoch_fraction=0.5).windows_per_epoch(10**6) is None


def test_the_epoch_fraction_must_be_a_share():
    with pytest.raises(ValueError, match="epoch_fraction"):
        SequenceParams(epoch_fraction=1.5)
    with pytest.raises(ValueError, match="epoch_fraction"):
        SequenceParams(epoch_fraction=-0.1)


@pytest.mark.parametrize(("n", "want"), [(5_000, 1_000), (40_000, 2_500), (500, 500)])
def test_the_training_loader_draws_that_many_distinct_windows_per_epoch(n, want):
    p = SequenceParams(epoch_windows=1_000, epoch_fraction=0.0625, batch_size=256)
    arrays = (np.arange(n), np.zeros(n, dtype=int), np.zeros(n, dtype=np.float32))
    drawn = np.concatenate([t.numpy() for t, _, _ in _loader(arrays, p, shuffle=True)])
    assert len(drawn) == want and len(np.unique(drawn)) == want
    # validation batches are every window, in order
    seen = np.concatenate([t.numpy() for t, _, _ in _loader(arrays, p, shuffle=False)])
    np.testing.assert_array_equal(seen, np.arange(n))


@pytest.mark.parametrize("family", ["tcn", "lstm", "transformer"])
def test_shipped_configs_keep_the_floor_on_the_bundled_universe(family):
    # 20 names over 1990-2022 (about 166,000 windows): the fraction's share is under the
    # floor, so the bundled pipeline's epochs (and results) are what the floor gives.
    model = build(compose([f"model={family}"])).model_factory()
    p = model.params
    assert p.windows_per_epoch(20 * 8300) == p.epoch_windows == 16384
    assert p.windows_per_epoch(500 * 2200) > 4 * p.epoch_windows
