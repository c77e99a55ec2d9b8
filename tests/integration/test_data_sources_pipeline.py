"""`data=yahoo` switches the pipeline's ingest to yfinance (here pointed at a loopback fake)."""

from __future__ import annotations

import pandas as pd

from py_finance.config import build, compose
from py_finance.pipeline.context import Context
from py_finance.pipeline.research import ingest, prices
from tests.fakes.vendor_http import FakeVendor, Reply, Seen, sessions, yahoo_chart

SEED = ["SPY", "AAPL", "MSFT", "NVDA", "GOOGL", "META", "AMZN"]


def test_data_yahoo_override_ingests_the_seed_symbols_through_yfinance(tmp_path):
    days = sessions("2020-01-02", "2024-12-31")

    def chart(seen: Seen) -> Reply:
        symbol = seen.path.rsplit("/", 1)[-1]
        return Reply(200, yahoo_chart(symbol, days, base=50.0 + len(symbol)))

    with FakeVendor() as fake:
        fake.route("/v1/test/getcrumb", default=Reply(200, "crumb"))
        fake.route("/v8/finance/chart/", default=chart)
        fake.route("/", default=Reply(200, "ok"))
        settings = build(compose(["data=yahoo", f"+data.options.base_url={fake.url}"]))
        ctx = Context(settings, tmp_path)
        meta = ingest(ctx)
        requested = {s.path.rsplit("/", 1)[-1] for s in fake.calls("/v8/finance/chart/")}

    assert requested == set(SEED)
    assert meta["source"] == "yahoo" and meta["survivorship_biased"] is True
    assert meta["calendar_check"]["ok"], meta["calendar_check"]["summary"]
    wide = prices(ctx)
    assert sorted(wide.columns) == sorted(SEED)
    assert wide.index[0] == pd.Timestamp("2020-01-02") and wide.index[-1] == pd.Timestamp(
        "2024-12-31"
    )
    assert len(wide) == len(days)
    bench = prices(ctx, table="benchmark")
    assert list(bench.columns) == ["SPY"]
    assert ctx.store.universe("2022-06-01") == sorted(SEED)
