"""Parquet outputs carry a sha256 beside them and are checked against it when read."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from py_finance.errors import DataError
from py_finance.io import checksum_path, read_parquet, write_parquet


def _frame() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    index = pd.MultiIndex.from_product(
        [pd.date_range("2020-01-01", periods=400, name="session"), ["AAA", "BBB", "CCC"]],
        names=["session", "symbol"],
    )
    return pd.DataFrame(
        {"mom_20": rng.normal(size=len(index)), "vol_20": rng.random(len(index))}, index=index
    )


def _flip(path: Path, where: str) -> int:
    data = bytearray(path.read_bytes())
    offset = {"start": 0, "middle": len(data) // 2, "footer": len(data) - 12}[where]
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))
    return offset


@pytest.fixture()
def written(tmp_path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return write_parquet(_frame(), tmp_path / "data" / "features" / "features.parquet")


def test_round_trip_returns_the_frame_and_the_checksum_is_the_bare_digest(written):
    pd.testing.assert_frame_equal(read_parquet(written, stage="features"), _frame())
    sidecar = checksum_path(written)
    assert sidecar.name == "features.parquet.sha256"
    assert sidecar.read_text() == hashlib.sha256(written.read_bytes()).hexdigest() + "\n"


def test_the_same_frame_writes_the_same_bytes_and_checksum(tmp_path):
    a = write_parquet(_frame(), tmp_path / "a" / "features.parquet")
    b = write_parquet(_frame(), tmp_path / "b" / "features.parquet")
    assert a.read_bytes() == b.read_bytes()
    assert checksum_path(a).read_bytes() == checksum_path(b).read_bytes()


@pytest.mark.parametrize("where", ["start", "middle", "footer"])
def test_one_flipped_byte_is_named_with_the_stage_that_rebuilds_it(written, where):
    _flip(written, where)
    with pytest.raises(DataError) as err:
        read_parquet(written, stage="features")
    message = str(err.value)
    assert message.startswith("data/features/features.parquet is corrupt (sha256 mismatch")
    assert "`.venv/bin/dvc repro -f features`" in message
    assert "`.venv/bin/dvc checkout --force features`" in message


def test_a_file_without_its_checksum_is_refused_as_unverified(written):
    checksum_path(written).unlink()
    with pytest.raises(DataError, match=r"features\.parquet is unverified .*sha256 is missing"):
        read_parquet(written, stage="features")


def test_unparseable_parquet_is_a_data_error_not_a_pyarrow_traceback(written):
    written.write_bytes(written.read_bytes()[:-4] + b"XXXX")  # the trailing magic "PAR1"
    # a checksum that matches the damaged bytes: only the Parquet reader can notice
    checksum_path(written).write_text(hashlib.sha256(written.read_bytes()).hexdigest() + "\n")
    with pytest.raises(DataError, match=r"features\.parquet is corrupt \(unreadable Parquet"):
        read_parquet(written, stage="features")


def test_a_missing_file_says_which_stage_writes_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError, match=r"regimes\.parquet not found: run `.*dvc repro regimes`"):
        read_parquet(tmp_path / "regimes.parquet", stage="regimes")


def test_without_a_stage_the_message_restores_both_files(written):
    os.truncate(written, written.stat().st_size - 1)
    with pytest.raises(DataError) as err:
        read_parquet(written)
    assert (
        "dvc checkout --force data/features/features.parquet data/features/features.parquet.sha256"
        in str(err.value)
    )


@pytest.mark.parametrize("pipeline", ["dvc.yaml", "pipelines/matrix/template.yaml"])
def test_every_parquet_output_of_a_dvc_stage_has_its_checksum_as_an_output(pipeline):
    """``dvc checkout`` and ``dvc exp`` move a file and its checksum together."""
    import yaml

    from py_finance.config import project_root

    stages = yaml.safe_load((project_root() / pipeline).read_text())["stages"]
    checked = 0
    for name, stage in stages.items():
        stage = stage.get("do", stage)
        outs = [next(iter(o)) if isinstance(o, dict) else o for o in stage.get("outs", [])]
        for out in outs:
            if out.endswith(".parquet"):
                assert f"{out}.sha256" in outs, f"{pipeline}:{name} lacks {out}.sha256"
                checked += 1
    assert checked >= 5


def test_a_large_frame_is_written_in_row_groups_and_reads_back_equal(tmp_path, monkeypatch):
    import numpy as np
    import pyarrow.parquet as pq

    from py_finance import io

    monkeypatch.setattr(io, "CHUNK_ROWS", 1000)
    idx = pd.MultiIndex.from_product(
        [pd.bdate_range("2000-01-03", periods=300), [f"S{i}" for i in range(12)]],
        names=["session", "symbol"],
    )
    df = pd.DataFrame(
        np.random.default_rng(0).normal(size=(len(idx), 3)).astype("float32"),
        index=idx,
        columns=["a", "b", "c"],
    )
    df.iloc[::7, 1] = np.nan
    df = df.iloc[np.flatnonzero(np.random.default_rng(1).random(len(df)) > 0.2)]
    path = io.write_parquet(df, tmp_path / "x.parquet")
    assert pq.ParquetFile(path).num_row_groups == 3
    # read a row group at a time into one matrix: the same frame as pandas reads
    assert io._read_matrix(path) is not None
    pd.testing.assert_frame_equal(io.read_parquet(path), df)
    pd.testing.assert_frame_equal(io.read_parquet(path), pd.read_parquet(path))


def test_columns_and_filters_keep_the_index(tmp_path):
    from py_finance import io

    idx = pd.MultiIndex.from_product(
        [pd.bdate_range("2000-01-03", periods=5), ["A", "B"]], names=["session", "symbol"]
    )
    df = pd.DataFrame({"a": range(10), "b": range(10, 20)}, index=idx, dtype="float64")
    path = io.write_parquet(df, tmp_path / "x.parquet")
    pd.testing.assert_frame_equal(io.read_parquet(path, columns=["b"]), df[["b"]])
    cut = pd.Timestamp("2000-01-06")
    got = io.read_parquet(path, filters=[("session", ">=", cut)])
    pd.testing.assert_frame_equal(got, df[df.index.get_level_values("session") >= cut])
