"""Bitemporal behaviour: restatements, supersession, actions, fundamentals, news, universe."""

from __future__ import annotations

import threading

import numpy as np
import pandas as pd
import pytest

from py_finance.data.store import Store, date_known_at, membership_versions
from py_finance.errors import DataError
from tests.unit.data.test_store import UTC_LATE, _bars


def _ohlc(symbol: str, closes: list[float], start: str = "2020-01-02") -> pd.DataFrame:
    from py_finance.data.calendar import sessions

    days = sessions(start, "2020-12-31")[: len(closes)]
    c = np.asarray(closes, dtype=float)
    return pd.DataFrame(
        {
            "symbol": symbol,
            "session": days,
            "open": c,
            "high": c * 1.01,
            "low": c * 0.99,
            "close": c,
            "adj_close": c,
            "volume": 1e6,
        }
    )


def test_restatement_appends_and_never_rewrites_known_parts(tmp_path):
    store = Store(tmp_path)
    store.write_bars(_bars())
    before = {p.name: p.read_bytes() for p in (tmp_path / "bars").glob("part-*.parquet")}
    restated = _bars()
    restated.loc[0, "adj_close"] = 99.0
    stamp = pd.Timestamp("2021-06-01 12:00", tz="UTC")
    assert store.write_bars(restated, now=stamp).rows_restated == 1
    after = {p.name: p.read_bytes() for p in (tmp_path / "bars").glob("part-*.parquet")}
    assert all(after[name] == data for name, data in before.items())  # old parts untouched
    assert len(after) == len(before) + 1
    sups = list((tmp_path / "bars").glob("sup-*.parquet"))
    assert len(sups) == 1
    marks = pd.read_parquet(sups[0])
    assert marks["superseded_at"].item() == stamp
    # every as-of read before the stamp is what was known then
    for t in ("2020-01-02 21:00", "2020-06-01", "2021-06-01 11:59:59"):
        got = store.bars(["AAA"], "2020-01-02", "2020-01-02", pd.Timestamp(t, tz="UTC"))
        assert got["adj_close"].item() == 10.0
    assert store.point("AAA", "2020-01-02", stamp) == 99.0


def test_superseded_at_makes_as_of_a_plain_filter_in_duckdb(tmp_path):
    store = Store(tmp_path)
    store.write_bars(_bars())
    restated = _bars()
    restated.loc[0, "adj_close"] = 99.0
    stamp = pd.Timestamp("2021-06-01 12:00", tz="UTC")
    store.write_bars(restated, now=stamp)
    con = store.sql()
    sql = (
        "SELECT adj_close FROM bars WHERE symbol = 'AAA' AND session = DATE '2020-01-02' "
        "AND available_at <= ? AND (superseded_at IS NULL OR superseded_at > ?)"
    )
    early = pd.Timestamp("2021-01-01", tz="UTC").to_pydatetime()
    late = pd.Timestamp("2022-01-01", tz="UTC").to_pydatetime()
    assert con.execute(sql, [early, early]).fetchall() == [(10.0,)]
    assert con.execute(sql, [late, late]).fetchall() == [(99.0,)]


def test_restating_twice_keeps_one_version_per_key_at_any_time(tmp_path):
    store = Store(tmp_path)
    store.write_bars(_bars())
    for i, day in enumerate(("2021-01-01", "2022-01-01")):
        r = _bars()
        r.loc[0, "adj_close"] = 50.0 + i
        store.write_bars(r, now=pd.Timestamp(day, tz="UTC"))
    for t, want in (("2020-12-31", 10.0), ("2021-06-01", 50.0), ("2023-01-01", 51.0)):
        got = store.bars(["AAA"], "2020-01-02", "2020-01-02", pd.Timestamp(t, tz="UTC"))
        assert got["adj_close"].tolist() == [want]


def test_reingest_is_a_no_op_on_disk(tmp_path):
    store = Store(tmp_path)
    store.write_bars(_bars())
    snapshot = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    summary = store.write_bars(_bars())
    assert summary.rows_added == 0
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == snapshot


def test_manifest_lists_parts_counts_and_content_hash(tmp_path):
    store = Store(tmp_path)
    store.write_bars(_bars())
    m = store.manifest()
    assert m["tables"]["bars"]["rows"] == 6
    assert len(m["content_hash"]) == 64 and store.fingerprint() == m["content_hash"][:12]
    assert all((tmp_path / "bars" / n).exists() for n in m["tables"]["bars"]["parts"])


def test_unreferenced_parts_are_invisible(tmp_path):
    store = Store(tmp_path)
    store.write_bars(_bars())
    # a part written by an ingest that died before committing
    _bars(symbols=("ZZZ",)).assign(session=lambda f: f["session"]).to_parquet(
        tmp_path / "bars" / "part-deadbeefdeadbeef.parquet"
    )
    assert store.symbols() == ["AAA", "BBB"]


def test_a_held_lock_makes_a_second_writer_wait_then_fail(tmp_path):
    from filelock import FileLock

    store = Store(tmp_path, lock_timeout=0.2)
    store.write_bars(_bars())
    held = FileLock(str(tmp_path / ".lock"))
    errors: list[Exception] = []

    def other() -> None:
        try:
            Store(tmp_path, lock_timeout=0.2).write_bars(_bars(symbols=("CCC",)))
        except DataError as exc:
            errors.append(exc)

    with held:
        t = threading.Thread(target=other)
        t.start()
        t.join()
    assert errors and "another ingest holds the lock" in str(errors[0])
    assert store.symbols() == ["AAA", "BBB"]


def test_cross_section_and_panel_agree_with_bars(tmp_path):
    store = Store(tmp_path)
    store.write_bars(_bars())
    xs = store.cross_section("2020-01-03", UTC_LATE)
    assert xs.to_dict() == {"AAA": 11.0, "BBB": 12.0}
    panel = store.panel(("adj_close", "volume"), ["BBB"], "2020-01-03", None, UTC_LATE)
    assert list(panel["adj_close"]["BBB"]) == [12.0, 13.0]
    assert panel["volume"].isna().all().all()


# ------------------------------------------------------- corporate actions
def test_split_recorded_later_does_not_change_returns_before_it_is_known(tmp_path):
    store = Store(tmp_path)
    closes = [100.0, 102.0, 104.0, 52.5, 53.0]  # raw closes; a 2:1 split on session 4
    store.write_bars(_ohlc("SPL", closes))
    ex_date = store.bars(["SPL"], None, None, UTC_LATE)["session"].iloc[3]
    recorded = pd.Timestamp("2020-03-02 15:00", tz="UTC")  # learnt weeks later
    before = pd.Timestamp("2020-02-01", tz="UTC")
    returns_before = store.adjusted_close(["SPL"], None, None, before).pct_change()
    store.write_actions(
        pd.DataFrame(
            {
                "symbol": ["SPL"],
                "ex_date": [ex_date],
                "kind": ["split"],
                "value": [2.0],
                "available_at": [recorded],
            }
        )
    )
    # as of any time before the split was recorded: the same returns as before
    again = store.adjusted_close(["SPL"], None, None, before).pct_change()
    pd.testing.assert_frame_equal(returns_before, again)
    assert returns_before["SPL"].iloc[3] == pytest.approx(52.5 / 104 - 1)
    # once known, the split no longer looks like a -50% day
    after = store.adjusted_close(["SPL"], None, None, recorded).pct_change()
    assert after["SPL"].iloc[3] == pytest.approx(52.5 / 52 - 1)
    assert after["SPL"].iloc[1] == pytest.approx(returns_before["SPL"].iloc[1])


def test_dividend_adjustment_uses_the_close_before_the_ex_date(tmp_path):
    store = Store(tmp_path)
    store.write_bars(_ohlc("DIV", [50.0, 50.0, 49.0]))
    ex = store.bars(["DIV"], None, None, UTC_LATE)["session"].iloc[2]
    store.write_actions(
        pd.DataFrame({"symbol": ["DIV"], "ex_date": [ex], "kind": ["dividend"], "value": [1.0]})
    )
    adj = store.adjusted_close(["DIV"], None, None, UTC_LATE)["DIV"]
    assert adj.iloc[0] == pytest.approx(50 * (1 - 1 / 50))
    assert adj.iloc[2] == 49.0
    with pytest.raises(DataError, match="kind"):
        store.write_actions(
            pd.DataFrame({"symbol": ["DIV"], "ex_date": [ex], "kind": ["merger"], "value": [1.0]})
        )


# ------------------------------------------------------------ fundamentals
def test_fundamentals_latest_value_per_field_known_at_t(tmp_path):
    store = Store(tmp_path)
    q1_known = pd.Timestamp("2023-05-05 20:00", tz="UTC")
    q2_known = pd.Timestamp("2023-08-04 20:00", tz="UTC")
    store.write_fundamentals(
        pd.DataFrame(
            {
                "symbol": ["AAPL", "AAPL", "AAPL"],
                "period_end": ["2023-03-31", "2023-06-30", "2023-06-30"],
                "field": ["revenue", "revenue", "eps"],
                "value": [94.8e9, 81.8e9, 1.26],
                "available_at": [q1_known, q2_known, q2_known],
            }
        )
    )
    mid = store.fundamentals(["AAPL"], pd.Timestamp("2023-07-01", tz="UTC"))
    assert mid.set_index("field")["value"].to_dict() == {"revenue": 94.8e9}
    late = store.fundamentals(["AAPL"], q2_known).set_index("field")["value"].to_dict()
    assert late == {"eps": 1.26, "revenue": 81.8e9}
    # a restatement of Q2 revenue with its own later filing time
    amended = pd.Timestamp("2023-09-15 20:00", tz="UTC")
    store.write_fundamentals(
        pd.DataFrame(
            {
                "symbol": ["AAPL"],
                "period_end": ["2023-06-30"],
                "field": ["revenue"],
                "value": [82.0e9],
                "available_at": [amended],
            }
        ),
        now=pd.Timestamp("2024-01-01", tz="UTC"),
    )
    assert (
        store.fundamentals(["AAPL"], amended - pd.Timedelta(seconds=1), ["revenue"])["value"].item()
        == 81.8e9
    )
    assert store.fundamentals(["AAPL"], amended, ["revenue"])["value"].item() == 82.0e9


def test_a_date_without_time_is_known_at_the_next_session_close():
    # Friday 2023-08-04 -> next session Monday 08-07, close 16:00 New York = 20:00 UTC
    assert date_known_at("2023-08-04") == pd.Timestamp("2023-08-07 20:00", tz="UTC")
    # day before Thanksgiving 2023 -> next session is the half day, closing 13:00 New York
    assert date_known_at("2023-11-22") == pd.Timestamp("2023-11-24 18:00", tz="UTC")


# -------------------------------------------------------------------- news
def test_news_window_up_to_t(tmp_path):
    store = Store(tmp_path)
    pub = pd.to_datetime(["2024-01-02 13:05", "2024-01-03 22:40", "2024-01-10 09:00"], utc=True)
    store.write_news(
        pd.DataFrame(
            {
                "symbol": "AAPL",
                "id": ["1", "2", "3"],
                "published_at": pub,
                "headline": ["a", "b", "c"],
                "source": "Reuters",
                "url": "",
                "summary": "",
            }
        )
    )
    got = store.news(["AAPL"], pd.Timestamp("2024-01-03 22:40", tz="UTC"), window="2D")
    assert got["headline"].tolist() == ["b", "a"]
    assert store.news(["AAPL"], pd.Timestamp("2024-01-03 22:39", tz="UTC"), "2D")[
        "id"
    ].tolist() == ["1"]
    assert store.write_news(got.drop(columns=["available_at"])).rows_added == 0


# ---------------------------------------------------------------- universe
def test_delisted_symbol_is_in_the_universe_before_and_absent_after(tmp_path):
    store = Store(tmp_path)
    spells = pd.DataFrame(
        {
            "symbol": ["LIVE", "GONE"],
            "start": ["2020-01-02", "2020-01-02"],
            "end": [None, "2020-06-30"],
        }
    )
    versions = membership_versions(spells)
    store.write_universe(versions[versions["end"].isna()])
    store.write_universe(versions[versions["end"].notna()])
    assert store.universe("2020-06-30") == ["GONE", "LIVE"]
    assert store.universe("2020-07-01") == ["LIVE"]
    # what was known in May: GONE still listed with no end
    may = store.membership(pd.Timestamp("2020-05-15", tz="UTC"))
    assert may.set_index("symbol")["end"].isna().all()
    # its history stays in the store after it leaves
    store.write_bars(_ohlc("GONE", [10.0, 11.0]))
    assert len(store.bars(["GONE"], None, None, UTC_LATE)) == 2


def test_dense_wide_load_equals_the_long_read_for_random_stores(tmp_path):
    from py_finance.data.calendar import sessions

    rng = np.random.default_rng(3)
    days = sessions("2020-01-02", "2020-03-31")
    store = Store(tmp_path)
    frames = []
    for i in range(6):  # listings and delistings at different sessions
        a, b = sorted(rng.choice(len(days), 2, replace=False))
        c = rng.uniform(10, 20, b - a + 1)
        frames.append(
            pd.DataFrame(
                {
                    "symbol": f"S{i}",
                    "session": days[a : b + 1],
                    "open": np.nan,
                    "high": np.nan,
                    "low": np.nan,
                    "close": c,
                    "adj_close": c,
                    "volume": 1.0,
                }
            )
        )
    base = pd.concat(frames, ignore_index=True)
    store.write_bars(base)
    for k in range(3):  # restatements learnt at three later times
        stamp = pd.Timestamp("2020-02-01", tz="UTC") + pd.Timedelta(days=20 * k)
        pick = base.sample(8, random_state=k).copy()
        pick = pick[pick["session"] < stamp.tz_localize(None)]
        pick["adj_close"] *= 1.5
        store.write_bars(pick, now=stamp)
    for _ in range(40):
        t = pd.Timestamp(days[rng.integers(len(days))], tz="UTC") + pd.Timedelta(
            hours=float(rng.uniform(0, 24 * 40))
        )
        syms = (
            None
            if rng.random() < 0.5
            else sorted(rng.choice([f"S{i}" for i in range(6)], 3, replace=False))
        )
        start = None if rng.random() < 0.5 else days[rng.integers(len(days) // 2)]
        end = None if rng.random() < 0.5 else days[len(days) // 2 + rng.integers(len(days) // 2)]
        day = days[rng.integers(len(days))]
        xs = store.cross_section(day, t, symbols=syms)
        one = store.bars(syms, day, day, t).set_index("symbol")["adj_close"]
        pd.testing.assert_series_equal(xs, one, check_names=False, check_index_type=False)
        wide = store.wide("adj_close", syms, start, end, t)
        long = store.bars(syms, start, end, t)
        want = long.pivot(index="session", columns="symbol", values="adj_close").sort_index()
        want.columns.name = None
        if long.empty:
            assert wide.empty
            continue
        pd.testing.assert_frame_equal(
            wide, want.astype("float64"), check_freq=False, check_names=False
        )


def test_dense_load_hides_cells_first_known_after_t():
    from py_finance.data.index import BarIndex

    t0 = pd.Timestamp("2020-01-02 21:00", tz="UTC")
    frame = pd.DataFrame(
        {
            "symbol": ["A", "B", "B"],
            "session": pd.to_datetime(["2020-01-02"] * 3),
            "available_at": [t0, t0 + pd.Timedelta(days=3), t0 + pd.Timedelta(days=9)],
            "superseded_at": [pd.NaT, t0 + pd.Timedelta(days=9), pd.NaT],
            "adj_close": [1.0, 2.0, 3.0],
        }
    )
    index = BarIndex.from_frame(frame, ["adj_close"])
    as_of = [t0, t0 + pd.Timedelta(days=4), t0 + pd.Timedelta(days=10)]
    seen = []
    for t in as_of:
        _, cols, mats = index.matrices(["adj_close"], None, None, None, int(t.value))
        seen.append((index.symbols[cols].tolist(), mats["adj_close"].tolist()))
    assert seen == [(["A"], [[1.0]]), (["A", "B"], [[1.0, 2.0]]), (["A", "B"], [[1.0, 3.0]])]
    # with a symbol subset the same cell is hidden until it is known
    _, cols, mats = index.matrices(["adj_close"], np.array([0, 1]), None, None, int(t0.value))
    assert index.symbols[cols].tolist() == ["A"]


def test_dense_load_masks_a_cell_of_a_partly_known_session():
    from py_finance.data.index import BarIndex

    t0 = pd.Timestamp("2020-01-02 21:00", tz="UTC")
    frame = pd.DataFrame(
        {
            "symbol": ["A", "B", "B"],
            "session": pd.to_datetime(["2020-01-02", "2020-01-02", "2020-01-03"]),
            "available_at": [t0, t0 + pd.Timedelta(days=5), t0 + pd.Timedelta(days=1)],
            "superseded_at": [pd.NaT, pd.NaT, pd.NaT],
            "adj_close": [1.0, 2.0, 4.0],
        }
    )
    index = BarIndex.from_frame(frame, ["adj_close"])
    t = int((t0 + pd.Timedelta(days=2)).value)
    _, cols, mats = index.matrices(["adj_close"], None, None, None, t)
    assert index.symbols[cols].tolist() == ["A", "B"]
    np.testing.assert_array_equal(mats["adj_close"], [[1.0, np.nan], [np.nan, 4.0]])


def test_an_index_of_another_layout_is_rebuilt_not_trusted(tmp_path):
    import json as _json

    import py_finance.data.store as store_mod
    from py_finance.io import sha256_file

    store = Store(tmp_path)
    store.write_bars(_bars())
    header = next((tmp_path / "_index").glob("bars-*")) / "index.json"
    meta = _json.loads(header.read_text())
    meta["version"] = 1
    header.write_text(_json.dumps(meta))
    # an index written by an older version is intact: its checksum is the recorded one
    manifest = _json.loads((tmp_path / "manifest.json").read_text())
    rel = header.relative_to(tmp_path).as_posix()
    manifest["checksums"][rel] = sha256_file(header)
    (tmp_path / "manifest.json").write_text(_json.dumps(manifest))
    store_mod._INDEXES.clear()
    assert Store(tmp_path).point("BBB", "2020-01-06", UTC_LATE) == 13.0
