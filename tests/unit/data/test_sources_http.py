"""Vendor sources against loopback fakes: real yfinance / alpaca-py clients, requests for REST."""

from __future__ import annotations

import datetime as dt
import time

import pandas as pd
import pytest

from py_finance.data.sources.alpaca import AlpacaSource
from py_finance.data.sources.finnhub import FinnhubSource
from py_finance.data.sources.http import RateLimiter, RetryPolicy, api_key
from py_finance.data.sources.tiingo import TiingoSource
from py_finance.data.sources.yahoo import YahooSource
from py_finance.errors import DataError
from tests.fakes.vendor_http import (
    FakeVendor,
    Reply,
    alpaca_bars,
    finnhub_news,
    sessions,
    tiingo_prices,
    tiingo_statements,
    yahoo_chart,
    yahoo_error,
)

FAST = RetryPolicy(attempts=3, base_s=0.01, max_s=0.02)
QUICK = RateLimiter(per_second=1000.0)
D0, D1 = dt.date(2020, 8, 24), dt.date(2020, 9, 4)
DAYS = sessions("2020-08-24", "2020-09-04")
MALFORMED = Reply(200, b'{"chart": {"result": [', {"Content-Type": "application/json"})


@pytest.fixture()
def no_keys(monkeypatch, tmp_path):
    for var in ("TIINGO_API_KEY", "ALPACA_API_KEY", "ALPACA_SECRET_KEY", "FINNHUB_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)


# ------------------------------------------------------------------- yahoo
def _yahoo(fake: FakeVendor, symbol: str, *replies: Reply, default: Reply | None = None):
    fake.route("/v1/test/getcrumb", default=Reply(200, "crumb-abc"))
    fake.route(f"/v8/finance/chart/{symbol}", *replies, default=default)
    fake.route("/", default=Reply(200, "ok"))
    return YahooSource(base_url=fake.url, policy=FAST, limiter=QUICK)


def test_yahoo_through_yfinance_returns_raw_bars_adjusted_close_and_actions():
    payload = yahoo_chart(
        "YAA", DAYS, dividends={"2020-08-28": 0.205}, splits={"2020-08-31": (4, 1)}
    )
    with FakeVendor() as fake:
        got = _yahoo(fake, "YAA", default=Reply(200, payload)).fetch("YAA", D0, D1)
        chart = fake.calls("/v8/finance/chart/YAA")
    assert len(got.bars) == len(DAYS)
    assert list(got.bars["session"].dt.date) == [d.date() for d in DAYS]
    assert got.bars["adj_close"].iloc[0] == pytest.approx(
        got.bars["close"].iloc[0] * 0.98, rel=1e-3
    )
    assert set(map(tuple, got.actions[["kind", "value"]].to_numpy())) == {
        ("dividend", 0.205),
        ("split", 4.0),
    }
    # the real client asked for raw prices plus events over our range
    last = chart[-1].query
    assert last["events"] == ["div,splits,capitalGains"] and "period1" in last


def test_yahoo_rate_limit_then_success_is_retried():
    payload = yahoo_chart("YBB", DAYS)
    with FakeVendor() as fake:
        src = _yahoo(
            fake, "YBB", *[Reply(429, "Too Many Requests")] * 3, default=Reply(200, payload)
        )
        got = src.fetch("YBB", D0, D1)
        n = len(fake.calls("/v8/finance/chart/YBB"))
    assert len(got.bars) == len(DAYS)
    assert n >= 4  # three refusals, then the answer


def test_yahoo_server_errors_give_up_after_bounded_attempts():
    with FakeVendor() as fake:
        src = _yahoo(fake, "YCC", default=Reply(500, yahoo_error("Internal Server Error", "boom")))
        with pytest.raises(DataError, match=r"yahoo bars for YCC failed after 3 attempts"):
            src.fetch("YCC", D0, D1)


def test_yahoo_empty_result_is_no_bars_not_an_error():
    with FakeVendor() as fake:
        got = _yahoo(fake, "YDD", default=Reply(200, yahoo_error())).fetch("YDD", D0, D1)
    assert got.bars.empty and got.actions.empty


def test_yahoo_malformed_json_is_a_clear_error():
    with FakeVendor() as fake:
        with pytest.raises(DataError, match="yahoo bars for YEE"):
            _yahoo(fake, "YEE", default=MALFORMED).fetch("YEE", D0, D1)


# ------------------------------------------------------------------ tiingo
def _tiingo(fake: FakeVendor) -> TiingoSource:
    return TiingoSource(base_url=fake.url, policy=FAST, limiter=QUICK, key="tiingo-test-key")


def test_tiingo_prices_parse_with_actions_and_token_header():
    payload = tiingo_prices(DAYS, dividends={"2020-08-28": 0.82}, splits={"2020-08-31": 4.0})
    with FakeVendor() as fake:
        fake.route("/tiingo/daily/aapl/prices", default=Reply(200, payload))
        got = _tiingo(fake).fetch("AAPL", D0, D1)
        seen = fake.calls("/tiingo/daily/aapl/prices")[0]
    assert seen.headers["Authorization"] == "Token tiingo-test-key"
    assert seen.query["startDate"] == ["2020-08-24"] and seen.query["endDate"] == ["2020-09-04"]
    assert len(got.bars) == len(DAYS) and got.bars["session"].iloc[0] == pd.Timestamp("2020-08-24")
    assert sorted(got.actions["kind"]) == ["dividend", "split"]


def test_tiingo_429_then_success():
    with FakeVendor() as fake:
        fake.route(
            "/tiingo/daily/msft/prices",
            Reply(429, {"detail": "rate limited"}, {"Retry-After": "0"}),
            default=Reply(200, tiingo_prices(DAYS)),
        )
        got = _tiingo(fake).fetch("MSFT", D0, D1)
        assert len(fake.calls("/tiingo/daily/msft/prices")) == 2
    assert len(got.bars) == len(DAYS)


def test_tiingo_500s_stop_after_the_bounded_attempts():
    with FakeVendor() as fake:
        fake.route("/tiingo/daily/msft/prices", default=Reply(503, "unavailable"))
        with pytest.raises(DataError, match="failed after 3 attempts"):
            _tiingo(fake).fetch("MSFT", D0, D1)
        assert len(fake.calls("/tiingo/daily/msft/prices")) == 3


def test_tiingo_empty_malformed_and_missing_field():
    with FakeVendor() as fake:
        fake.route("/tiingo/daily/empt/prices", default=Reply(200, []))
        fake.route(
            "/tiingo/daily/bad/prices",
            default=Reply(200, b'[{"date": ', {"Content-Type": "application/json"}),
        )
        rows = tiingo_prices(DAYS[:2])
        del rows[1]["adjClose"]
        fake.route("/tiingo/daily/miss/prices", default=Reply(200, rows))
        fake.route(
            "/tiingo/daily/nope/prices",
            default=Reply(404, {"detail": "Error: Ticker 'NOPE' not found"}),
        )
        src = _tiingo(fake)
        assert src.fetch("EMPT", D0, D1).bars.empty
        with pytest.raises(DataError, match="malformed JSON"):
            src.fetch("BAD", D0, D1)
        with pytest.raises(DataError, match="no 'adjClose' field"):
            src.fetch("MISS", D0, D1)
        with pytest.raises(DataError, match="404"):
            src.fetch("NOPE", D0, D1)


def test_tiingo_fundamentals_known_only_after_the_filing_lag(no_keys):
    with FakeVendor() as fake:
        fake.route("/tiingo/fundamentals/aapl/statements", default=Reply(200, tiingo_statements()))
        rows = _tiingo(fake).fundamentals("AAPL", dt.date(2023, 1, 1), dt.date(2023, 12, 31))
    q3 = rows[(rows["period_end"] == pd.Timestamp("2023-06-30")) & (rows["field"] == "revenue")]
    assert q3["value"].item() == 81.8e9 and q3["period"].item() == "2023Q3"
    # 45 days after 2023-06-30 is Monday 2023-08-14; next session close is 08-15 20:00 UTC
    assert q3["available_at"].item() == pd.Timestamp("2023-08-15 20:00", tz="UTC")
    assert {"revenue", "eps", "totalAssets", "freeCashFlow", "roe"} <= set(rows["field"])


def test_missing_key_names_the_variable_and_the_source(no_keys):
    with pytest.raises(DataError, match=r"tiingo source needs an API key: set TIINGO_API_KEY"):
        TiingoSource(base_url="http://127.0.0.1:9").fetch("AAPL", D0, D1)
    with pytest.raises(DataError, match=r"alpaca source needs an API key: set ALPACA_API_KEY"):
        AlpacaSource(url_override="http://127.0.0.1:9").fetch("AAPL", D0, D1)
    with pytest.raises(DataError, match=r"finnhub source needs an API key: set FINNHUB_API_KEY"):
        FinnhubSource(base_url="http://127.0.0.1:9").news("AAPL", D0, D1)


def test_keys_are_read_from_dotenv(no_keys, tmp_path):
    (tmp_path / ".env").write_text("TIINGO_API_KEY=from-dotenv\n")
    assert api_key("TIINGO_API_KEY", "tiingo") == "from-dotenv"


# ------------------------------------------------------------------ alpaca
def _alpaca(fake: FakeVendor) -> AlpacaSource:
    return AlpacaSource(
        url_override=fake.url, policy=FAST, limiter=QUICK, keys=("AKTEST", "SECRET")
    )


def test_alpaca_client_asks_for_adjusted_bars_and_parses_them():
    with FakeVendor() as fake:
        fake.route("/v2/stocks/bars", default=Reply(200, alpaca_bars("NVDA", DAYS)))
        got = _alpaca(fake).fetch("NVDA", D0, D1)
        seen = fake.calls("/v2/stocks/bars")[0]
    assert seen.query["adjustment"] == ["all"] and seen.query["timeframe"] == ["1Day"]
    assert seen.headers["APCA-API-KEY-ID"] == "AKTEST"
    assert list(got.bars["session"].dt.date) == [d.date() for d in DAYS]
    assert (got.bars["adj_close"] == got.bars["close"]).all()


def test_alpaca_429_then_success_and_500s_bounded():
    with FakeVendor() as fake:
        fake.route(
            "/v2/stocks/bars",
            Reply(429, {"message": "too many requests"}),
            default=Reply(200, alpaca_bars("AMZN", DAYS)),
        )
        assert len(_alpaca(fake).fetch("AMZN", D0, D1).bars) == len(DAYS)
        assert len(fake.calls("/v2/stocks/bars")) == 2
    with FakeVendor() as fake:
        fake.route("/v2/stocks/bars", default=Reply(500, {"message": "internal"}))
        with pytest.raises(DataError, match="alpaca bars for AMZN failed after 3 attempts"):
            _alpaca(fake).fetch("AMZN", D0, D1)


def test_alpaca_empty_and_malformed():
    with FakeVendor() as fake:
        fake.route(
            "/v2/stocks/bars", Reply(200, {"bars": {}, "next_page_token": None}), default=MALFORMED
        )
        src = _alpaca(fake)
        assert src.fetch("META", D0, D1).bars.empty
        with pytest.raises(DataError, match="alpaca bars for META"):
            src.fetch("META", D0, D1)


# ----------------------------------------------------------------- finnhub
def test_finnhub_news_known_at_publication_with_retry_and_errors():
    items = finnhub_news("AAPL", ["2024-01-02T13:05:00Z", "2024-01-03T22:40:00Z"])
    with FakeVendor() as fake:
        fake.route(
            "/company-news", Reply(429, {"error": "API limit reached"}), default=Reply(200, items)
        )
        got = FinnhubSource(base_url=fake.url, policy=FAST, limiter=QUICK, key="fh").news(
            "AAPL", dt.date(2024, 1, 1), dt.date(2024, 1, 5)
        )
        assert fake.calls("/company-news")[-1].query["token"] == ["fh"]
    assert list(got["published_at"]) == [
        pd.Timestamp("2024-01-02 13:05", tz="UTC"),
        pd.Timestamp("2024-01-03 22:40", tz="UTC"),
    ]
    broken = [dict(items[0])]
    del broken[0]["headline"]
    with FakeVendor() as fake:
        fake.route("/company-news", Reply(200, broken), MALFORMED, Reply(200, []))
        src = FinnhubSource(base_url=fake.url, policy=FAST, limiter=QUICK, key="fh")
        with pytest.raises(DataError, match="no 'headline' field"):
            src.news("AAPL", dt.date(2024, 1, 1), dt.date(2024, 1, 5))
        with pytest.raises(DataError, match="malformed JSON"):
            src.news("AAPL", dt.date(2024, 1, 1), dt.date(2024, 1, 5))
        assert src.news("AAPL", dt.date(2024, 1, 1), dt.date(2024, 1, 5)).empty


def test_timeouts_are_retried():
    with FakeVendor() as fake:
        fake.route("/company-news", Reply(200, [], delay_s=1.0), default=Reply(200, []))
        src = FinnhubSource(base_url=fake.url, policy=FAST, limiter=QUICK, key="fh")
        import py_finance.data.sources.finnhub as fh

        original = fh.get_json
        fh.get_json = lambda *a, **k: original(*a, **{**k, "timeout": 0.2})  # type: ignore[assignment]
        try:
            assert src.news("AAPL", dt.date(2024, 1, 1), dt.date(2024, 1, 5)).empty
        finally:
            fh.get_json = original
        assert len(fake.calls("/company-news")) == 2


def test_rate_limiter_spaces_calls():
    limiter = RateLimiter(per_second=20.0)
    t0 = time.monotonic()
    for _ in range(5):
        limiter.wait()
    assert time.monotonic() - t0 >= 4 / 20.0 * 0.9
