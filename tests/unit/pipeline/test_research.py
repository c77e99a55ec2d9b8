"""The research stages read their inputs only after checking them against their checksum."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from py_finance.errors import DataError
from py_finance.io import write_parquet
from py_finance.pipeline import research


def test_train_names_a_corrupt_feature_file_and_the_stage_that_rebuilds_it(small_ctx, monkeypatch):
    monkeypatch.chdir(small_ctx.root)
    index = pd.MultiIndex.from_product(
        [pd.date_range("2000-01-03", periods=300, name="session"), ["AAPL", "KO"]],
        names=["session", "symbol"],
    )
    path = write_parquet(
        pd.DataFrame({"mom_20": np.linspace(0, 1, len(index))}, index=index),
        small_ctx.path("features", "features.parquet"),
    )
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(DataError) as err:
        research.train(small_ctx, progress=False)
    assert str(err.value).startswith("data/features/features.parquet is corrupt (sha256 mismatch")
    assert "`.venv/bin/dvc repro -f features`" in str(err.value)
