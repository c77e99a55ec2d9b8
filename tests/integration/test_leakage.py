"""Truncating the data after a date leaves everything up to that date unchanged."""

from __future__ import annotations

import pandas as pd

from py_finance.config import build, compose
from py_finance.pipeline import research
from py_finance.pipeline.context import Context
from tests.conftest import SLICE

CUT = "1999-06-30"


def _run(tmp_path, end: str):
    settings = build(compose([*SLICE, f"data.end={end}"]))
    ctx = Context(settings, tmp_path)
    research.ingest(ctx)
    feats = research.features(ctx)
    research.labels(ctx)
    regimes = research.regimes(ctx)
    research.train(ctx, progress=False)
    preds = pd.read_parquet(ctx.model_dir() / "predictions.parquet")
    return feats, regimes, preds


def test_truncating_after_a_date_changes_nothing_up_to_it(tmp_path):
    full = _run(tmp_path / "full", "2000-12-29")
    cut = _run(tmp_path / "cut", CUT)
    for name, a, b in zip(("features", "regimes", "predictions"), full, cut, strict=True):
        a_upto = (
            a.loc[:CUT] if name == "regimes" else a.loc[a.index.get_level_values("session") <= CUT]
        )
        b_upto = (
            b.loc[:CUT] if name == "regimes" else b.loc[b.index.get_level_values("session") <= CUT]
        )
        assert len(b_upto) > 0, name
        pd.testing.assert_frame_equal(a_upto, b_upto, check_exact=True, obj=name)
