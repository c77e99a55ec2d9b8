"""The files source through the pipeline's ingest: membership, delistings and sectors as of."""

from __future__ import annotations

from py_finance.config import build, compose
from py_finance.data.store import end_of_day_utc
from py_finance.pipeline import research
from py_finance.pipeline.context import Context
from tests.integration._clone import ROOT


def test_the_example_directory_ingests_with_its_delisting_and_membership_changes(tmp_path):
    cfg = build(compose(["data=files", f"paths.store={tmp_path / 'store'}"]))
    ctx = Context(cfg, ROOT)
    meta = research.ingest(ctx)
    assert meta["survivorship_biased"] is False
    store = ctx.store
    # EEE trades through 2023-06-14 and is delisted on 06-15 (-30%)
    assert "EEE" in store.universe("2023-06-14")
    assert "EEE" not in store.universe("2023-06-15")
    assert (
        store.bars(["EEE"], None, None, end_of_day_utc("2023-12-29"))["session"]
        .max()
        .date()
        .isoformat()
        == "2023-06-14"
    )
    assert store.delistings(end_of_day_utc("2023-06-14")).empty
    known = store.delistings(end_of_day_utc("2023-06-15"))
    assert known.to_dict("records")[0]["delisting_return"] == -0.3
    # CCC joins on 2023-07-03, and that is not known the session before
    assert "CCC" not in store.universe("2023-06-30")
    assert "CCC" in store.universe("2023-07-03")
    assert "CCC" not in store.universe("2023-07-03", as_of=end_of_day_utc("2023-06-30"))
    # DDD leaves the index after 2023-09-29 but keeps trading
    assert "DDD" in store.universe("2023-09-29")
    assert "DDD" not in store.universe("2023-10-02")
    assert len(store.bars(["DDD"], "2023-10-02", None, end_of_day_utc("2023-12-29"))) > 0
    # BBB's sector changes on 2023-10-02, known from that session's close
    assert store.sectors(end_of_day_utc("2023-09-29"))["BBB"] == "Information Technology"
    assert store.sectors(end_of_day_utc("2023-10-02"))["BBB"] == "Communication Services"
