from __future__ import annotations

import datetime as dt
import gzip
import importlib.util
from pathlib import Path

import pandas as pd
import pytest

from py_finance.data.sources import files as files_module
from py_finance.data.sources.files import FilesSource
from py_finance.data.sources.registry import get_source
from py_finance.data.sources.vendor import BAR_FIELDS
from py_finance.data.validation import validate_bars
from py_finance.errors import DataError

ROOT = Path(__file__).resolve().parents[4]
EXAMPLE = ROOT / "examples" / "data" / "files"
START, END = dt.date(2024, 1, 2), dt.date(2024, 1, 8)

HEADER = "date,open,high,low,close,volume\n"
ROWS = [  # five XNYS sessions (no session on 2024-01-01)
    "2024-01-02,10,11,9.5,10.5,1000",
    "2024-01-03,10.5,11.2,10.1,11,1200",
    "2024-01-04,11,11.5,10.8,11.1,900",
    "2024-01-05,11.1,11.3,10.9,11.2,1100",
    "2024-01-08,11.2,11.9,11,11.8,1500",
]


def _csv(path: Path, rows: list[str], header: str = HEADER) -> Path:
    path.write_text(header + "\n".join(rows) + "\n")
    return path


def _dir(tmp_path: Path, **extra: str) -> Path:
    """AAA, BBB and the benchmark SPY as per-symbol CSVs, plus ``extra`` files by name."""
    _csv(tmp_path / "AAA.csv", ROWS)
    _csv(tmp_path / "BBB.csv", ROWS)
    _csv(tmp_path / "SPY.csv", ROWS)
    for name, text in extra.items():
        (tmp_path / name.replace("_", ".", 1)).write_text(text)
    return tmp_path


def _error(tmp_path: Path, *args: object) -> str:
    with pytest.raises(DataError) as info:
        src = FilesSource(tmp_path)
        src.bars(src.symbols(), START, END)
        src.universe()
        src.delistings()
        src.sectors(src.symbols())
        src.benchmark(START, END)
    return str(info.value)


# ---------------------------------------------------------------------------- layouts


def test_per_symbol_csvs_parse_and_adj_close_defaults_to_close(tmp_path):
    _csv(tmp_path / "aaa.csv", ROWS)  # stem upper-cased
    upper = "Session,OPEN,High,Low,Close,Adj_Close,Volume\n"
    rows = [r.split(",") for r in ROWS]  # adj_close (half the close) goes before volume
    with gzip.open(tmp_path / "BBB.csv.gz", "wt") as fh:
        fh.write(upper + "\n".join(",".join([*r[:5], str(float(r[4]) / 2), r[5]]) for r in rows))
    _csv(tmp_path / "SPY.csv", ROWS)
    src = get_source("files", path=str(tmp_path))
    assert isinstance(src, FilesSource)
    assert src.symbols() == ["AAA", "BBB"]
    assert src.coverage() == (dt.date(2024, 1, 2), dt.date(2024, 1, 8))
    bars = src.bars(["aaa", "BBB"], START, END)
    assert list(bars.columns) == BAR_FIELDS
    assert pd.api.types.is_datetime64_any_dtype(bars["session"])
    aaa = bars[bars["symbol"] == "AAA"]
    assert (aaa["adj_close"] == aaa["close"]).all()
    bbb = bars[bars["symbol"] == "BBB"]
    assert (bbb["adj_close"] == bbb["close"] / 2).all()
    assert bbb["volume"].tolist() == [1000, 1200, 900, 1100, 1500]
    assert src.info.name == "files" and src.info.survivorship_biased
    assert src.info.adjusted_only is False


def test_sessions_are_clipped_to_the_range(tmp_path):
    src = FilesSource(_dir(tmp_path))
    got = src.bars(["AAA"], dt.date(2024, 1, 3), dt.date(2024, 1, 5))
    assert got["session"].dt.strftime("%Y-%m-%d").tolist() == [
        "2024-01-03",
        "2024-01-04",
        "2024-01-05",
    ]
    with pytest.raises(DataError, match=r"cover 2024-01-02\.\.2024-01-08"):
        src.bars(["AAA"], START, dt.date(2024, 2, 1))


def test_long_parquet_layout_with_a_symbol_column(tmp_path):
    days = pd.to_datetime(["2024-01-02", "2024-01-03", "2024-01-04"])
    long = pd.DataFrame(
        {
            "Symbol": ["xyz"] * 3 + ["SPY"] * 3,
            "Date": list(days) * 2,
            "Open": [1.0, 2, 3, 4, 5, 6],
            "High": [1.5, 2.5, 3.5, 4.5, 5.5, 6.5],
            "Low": [0.5, 1.5, 2.5, 3.5, 4.5, 5.5],
            "Close": [1.2, 2.2, 3.2, 4.2, 5.2, 6.2],
            "Volume": [10, 20, 30, 40, 50, 60],
        }
    )
    long.to_parquet(tmp_path / "bars.parquet")
    src = FilesSource(tmp_path)
    assert src.symbols() == ["XYZ"]
    end = dt.date(2024, 1, 4)
    got = src.fetch("xyz", START, end).bars
    assert got["close"].tolist() == [1.2, 2.2, 3.2]
    assert got["adj_close"].tolist() == [1.2, 2.2, 3.2]
    bench = src.fetch("SPY", START, end).bars
    assert bench["symbol"].unique().tolist() == ["SPY"]
    assert bench["session"].tolist() == list(days)


def test_a_ticker_named_na_is_a_symbol_but_na_in_a_number_column_is_missing(tmp_path):
    _csv(
        tmp_path / "bars.csv",
        ["NA,2024-01-02,1,2,0.5,1.5,NA", "NA,2024-01-03,1,2,0.5,1.6,100"],
        header="symbol," + HEADER,
    )
    src = FilesSource(tmp_path)
    assert src.symbols() == ["NA"]
    got = src.bars(["NA"], START, dt.date(2024, 1, 3))
    assert got["volume"].isna().tolist() == [True, False]


def test_a_parquet_file_with_a_tz_aware_date_index(tmp_path):
    index = pd.DatetimeIndex(["2024-01-02", "2024-01-03"], name="Date")
    frame = pd.DataFrame(
        {"open": [1.0, 2], "high": [2.0, 3], "low": [0.5, 1], "close": [1.5, 2.5], "volume": 1},
        index=index.tz_localize("America/New_York"),
    )
    frame.to_parquet(tmp_path / "SPY.parquet")
    got = FilesSource(tmp_path).benchmark(START, dt.date(2024, 1, 3))
    assert got["session"].tolist() == list(index)


def test_each_file_is_read_once(tmp_path, monkeypatch):
    src = FilesSource(_dir(tmp_path))
    reads: list[str] = []
    real = files_module._read_table

    def counting(path, root):
        reads.append(path.name)
        return real(path, root)

    monkeypatch.setattr(files_module, "_read_table", counting)
    for sym in [*src.symbols(), "SPY"]:
        src.fetch(sym, START, END)
    src.benchmark(START, END)
    assert sorted(reads) == ["AAA.csv", "BBB.csv", "SPY.csv"]


def test_unknown_symbol_lists_the_available_ones(tmp_path):
    src = FilesSource(_dir(tmp_path))
    with pytest.raises(DataError, match=r"unknown symbol\(s\) NOPE.*available: AAA, BBB"):
        src.bars(["AAA", "nope"], START, END)


# ---------------------------------------------------------------------------- errors


def test_a_bad_number_names_file_physical_line_and_column(tmp_path):
    rows = [*ROWS[:2], "", ROWS[2].replace(",11.1,", ",abc,")]  # a blank line before it
    _csv(tmp_path / "AAPL.csv", rows)
    assert "AAPL.csv line 5, column close: 'abc' is not a number" in _error(tmp_path)


def test_a_bad_date_names_file_line_and_column(tmp_path):
    _csv(tmp_path / "AAPL.csv", [*ROWS[:3], "01/05/2024,1,2,0.5,1.5,10"])
    assert "AAPL.csv line 5, column date: '01/05/2024' is not an ISO date" in _error(tmp_path)


def test_an_empty_close_is_an_error_but_an_empty_volume_is_missing(tmp_path):
    _csv(tmp_path / "AAPL.csv", [ROWS[0], "2024-01-03,1,2,0.5,,10"])
    assert "AAPL.csv line 3, column close: empty value" in _error(tmp_path)
    _csv(tmp_path / "AAPL.csv", [ROWS[0], "2024-01-03,1,2,0.5,1.5,"])
    got = FilesSource(tmp_path).bars(["AAPL"], START, dt.date(2024, 1, 3))
    assert got["volume"].isna().tolist() == [False, True]


def test_a_bad_parquet_value_names_the_row(tmp_path):
    pd.DataFrame(
        {
            "symbol": ["AAA", "AAA", "AAA"],
            "date": ["2024-01-02", "2024-01-03", "2024-01-04"],
            "open": ["1", "2", "3"],
            "high": ["2", "3", "4"],
            "low": ["0.5", "1", "2"],
            "close": ["1.5", "2.5", "n/a?"],
            "volume": [1, 2, 3],
        }
    ).to_parquet(tmp_path / "bars.parquet")
    assert "bars.parquet row 3, column close: 'n/a?' is not a number" in _error(tmp_path)


def test_missing_columns_are_named_with_the_file(tmp_path):
    _csv(tmp_path / "AAPL.csv", ["2024-01-02,1,1.5"], header="date,close,high\n")
    message = _error(tmp_path)
    assert "AAPL.csv lacks column(s) open, low, volume" in message
    (tmp_path / "AAPL.csv").unlink()
    _csv(tmp_path / "bars.csv", ROWS)
    assert "bars.csv lacks column(s) symbol" in _error(tmp_path)


def test_a_duplicate_row_names_both_lines(tmp_path):
    _csv(tmp_path / "AAPL.csv", [*ROWS, ROWS[1]])
    message = _error(tmp_path)
    assert "AAPL.csv line 3 and AAPL.csv line 7 both hold AAPL 2024-01-03" in message


def test_a_duplicate_across_files_names_both_files(tmp_path):
    _csv(tmp_path / "AAPL.csv", ROWS)
    _csv(tmp_path / "bars.csv", [f"AAPL,{ROWS[3]}"], header="symbol," + HEADER)
    message = _error(tmp_path)
    assert "bars.csv line 2" in message and "AAPL.csv line 5" in message
    assert "AAPL 2024-01-05" in message


def test_a_universe_spell_ending_before_it_starts(tmp_path):
    _dir(tmp_path, universe_csv="symbol,start,end\nAAA,2024-01-02,\nBBB,2024-01-05,2024-01-03\n")
    message = _error(tmp_path)
    assert "universe.csv line 3, column end:" in message
    assert "ends 2024-01-03, before it starts 2024-01-05" in message


def test_a_universe_date_that_is_no_session(tmp_path):
    _dir(tmp_path, universe_csv="symbol,start,end\nAAA,2024-01-06,\n")
    assert "universe.csv line 2, column start: 2024-01-06 is not a XNYS session" in _error(tmp_path)


def test_a_delisting_return_below_minus_one(tmp_path):
    _dir(tmp_path, delistings_csv="symbol,date,delisting_return\nAAA,2024-01-09,-1.5\n")
    message = _error(tmp_path)
    assert "delistings.csv line 2, column delisting_return: -1.5 is below -1" in message


def test_bars_on_or_after_the_delisting_date_are_an_error(tmp_path):
    _dir(tmp_path, delistings_csv="symbol,date,delisting_return\nBBB,2024-01-05,-0.2\n")
    message = _error(tmp_path)
    assert message.startswith("BBB.csv line 5: BBB has a bar on 2024-01-05")
    assert "delistings.csv line 2 delists it on 2024-01-05" in message


def test_an_empty_directory_says_what_is_expected(tmp_path):
    (tmp_path / "notes.txt").write_text("nothing here")
    with pytest.raises(DataError, match=r"holds no bar files; expected one <SYMBOL>\.csv"):
        FilesSource(tmp_path)


def test_a_missing_benchmark_file_says_which_file_to_add(tmp_path):
    _csv(tmp_path / "AAA.csv", ROWS)
    src = FilesSource(tmp_path, benchmark_symbol="qqq")
    assert src.bars(["AAA"], START, END).shape[0] == 5
    with pytest.raises(DataError, match=r"no bars for the benchmark QQQ.*add QQQ\.csv"):
        src.fetch("QQQ", START, END)


# ---------------------------------------------------------------------------- plausibility


def test_implausible_rows_pass_through_and_validation_quarantines_them(tmp_path):
    rows = [
        ROWS[0],
        "2024-01-03,10.5,11.2,10.1,-11,1200",  # negative price
        "2024-01-04,11,9,10.8,11.1,900",  # high below low
        *ROWS[3:],
    ]
    _csv(tmp_path / "AAA.csv", rows)
    bars = FilesSource(tmp_path).bars(["AAA"], START, END)
    assert len(bars) == 5
    checked = validate_bars(bars, source="files")
    assert len(checked.clean) == 3
    reasons = checked.quarantine.set_index("session")["reason"]
    assert reasons["2024-01-03"].startswith("non-positive")
    assert reasons["2024-01-04"].startswith("ohlc")


# ---------------------------------------------------------------------------- reference files


def test_the_example_directory_reads_universe_delistings_and_sectors():
    src = FilesSource(EXAMPLE)
    assert src.symbols() == ["AAA", "BBB", "CCC", "DDD", "EEE"]
    assert src.info.survivorship_biased is False
    first, last = src.coverage()
    assert (first, last) == (dt.date(2023, 1, 3), dt.date(2023, 12, 29))

    spells = src.universe()
    assert spells is not None
    by_symbol = spells.set_index("symbol")
    assert by_symbol.loc["CCC", "start"] == pd.Timestamp("2023-07-03")  # joins mid-year
    assert by_symbol.loc["DDD", "end"] == pd.Timestamp("2023-09-29")  # leaves, still trades
    assert pd.isna(by_symbol.loc["AAA", "end"])
    assert src.bars(["DDD"], first, last)["session"].max() == pd.Timestamp("2023-12-29")
    assert src.bars(["CCC"], first, last)["session"].min() == pd.Timestamp("2023-01-03")

    delisted = src.delistings()
    assert list(delisted.columns) == ["symbol", "date", "delisting_return"]
    assert delisted.to_dict("records") == [
        {"symbol": "EEE", "date": pd.Timestamp("2023-06-15"), "delisting_return": -0.3}
    ]
    eee = src.bars(["EEE"], first, last)["session"]
    assert eee.max() == pd.Timestamp("2023-06-14")  # the session before the delisting date
    assert by_symbol.loc["EEE", "end"] == pd.Timestamp("2023-06-14")

    sectors = src.sectors(["BBB", "AAA"])
    assert list(sectors.columns) == ["symbol", "name", "sector", "from"]
    bbb = sectors[sectors["symbol"] == "BBB"]
    assert bbb["sector"].tolist() == ["Information Technology", "Communication Services"]
    assert bbb["from"].tolist() == [pd.Timestamp("2023-01-03"), pd.Timestamp("2023-10-02")]

    aaa = src.bars(["AAA"], first, last)
    assert (aaa["adj_close"] < aaa["close"]).any()  # AAA's file carries adj_close
    assert (src.bars(["BBB"], first, last).eval("adj_close == close")).all()
    assert len(src.benchmark(first, last)) == 250
    assert validate_bars(src.bars(src.symbols(), first, last)).quarantine.empty


def test_without_reference_files_membership_is_none_and_delistings_empty(tmp_path):
    src = FilesSource(_dir(tmp_path))
    assert src.universe() is None
    assert src.info.survivorship_biased is True
    assert any("no universe.csv" in note for note in src.info.notes)
    got = src.delistings()
    assert got.empty and list(got.columns) == ["symbol", "date", "delisting_return"]
    sectors = src.sectors(["AAA"])
    assert sectors["sector"].tolist() == ["Unknown AAA"]
    assert sectors["from"].isna().all()


def test_a_symbol_missing_from_sectors_csv_gets_its_own_bucket(tmp_path):
    _dir(tmp_path, sectors_csv="symbol,from,sector\nAAA,2024-01-02,Energy\n")
    got = FilesSource(tmp_path).sectors(["AAA", "BBB"]).set_index("symbol")
    assert got.loc["AAA", "sector"] == "Energy" and got.loc["AAA", "name"] == "AAA"
    assert got.loc["BBB", "sector"] == "Unknown BBB" and pd.isna(got.loc["BBB", "from"])


def test_a_universe_may_give_a_symbol_several_spells(tmp_path):
    text = "symbol,start,end\nAAA,2024-01-02,2024-01-03\nAAA,2024-01-05,\nBBB,2024-01-02,\n"
    spells = FilesSource(_dir(tmp_path, universe_csv=text)).universe()
    assert spells is not None
    assert spells[spells["symbol"] == "AAA"]["start"].tolist() == [
        pd.Timestamp("2024-01-02"),
        pd.Timestamp("2024-01-05"),
    ]


# ---------------------------------------------------------------------------- CLI


def test_ingest_script_wants_path_with_source_files(capsys):
    spec = importlib.util.spec_from_file_location("ingest_bars", ROOT / "scripts/ingest_bars.py")
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    argv = ["--source", "files", "--start-date", "2023-01-03", "--end-date", "2023-01-31"]
    with pytest.raises(SystemExit) as info:
        script.main(argv)
    assert info.value.code == 2
    assert "--source files needs --path" in capsys.readouterr().err
