"""Write ``examples/data/files/``: a tiny, deterministic directory for the ``files`` source.

Synthetic prices (seeded random walks) on the real XNYS sessions of 2023, for made-up
tickers AAA..EEE and SPY as the benchmark. Rerun after changing the scenario:

    .venv/bin/python examples/data/make_files_example.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from py_finance.data.calendar import sessions

OUT = Path(__file__).resolve().parent / "files"
START, END = "2023-01-03", "2023-12-29"
DELISTED, DELISTING_DATE = "EEE", "2023-06-15"  # first session EEE no longer trades
SCENARIO = {  # symbol: (start price, daily drift, daily vol, typical volume)
    "SPY": (384.0, 0.0008, 0.010, 80_000_000),
    "AAA": (120.0, 0.0010, 0.018, 2_000_000),
    "BBB": (45.0, 0.0004, 0.022, 5_000_000),
    "CCC": (210.0, 0.0015, 0.020, 900_000),
    "DDD": (33.0, -0.0006, 0.025, 3_000_000),
    "EEE": (18.0, -0.0030, 0.035, 1_500_000),
}


def bars(days: pd.DatetimeIndex, rng: np.random.Generator, spec: tuple) -> pd.DataFrame:
    """One symbol's OHLCV on ``days``: a log-normal walk, high/low around open and close."""
    price, drift, vol, volume = spec
    close = price * np.exp(np.cumsum(rng.normal(drift, vol, len(days))))
    open_ = np.r_[price, close[:-1]] * np.exp(rng.normal(0, vol / 3, len(days)))
    high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0, vol / 2, len(days))))
    low = np.minimum(open_, close) * (1 - np.abs(rng.normal(0, vol / 2, len(days))))
    shares = (volume * np.exp(rng.normal(0, 0.3, len(days)))).round(-2).astype(int)
    return pd.DataFrame(
        {
            "date": days.strftime("%Y-%m-%d"),
            "open": open_.round(2),
            "high": high.round(2),
            "low": low.round(2),
            "close": close.round(2),
            "volume": shares,
        }
    )


def main() -> None:
    """Write every file of the example directory (same bytes on every run)."""
    OUT.mkdir(parents=True, exist_ok=True)
    days = sessions(START, END)
    rng = np.random.default_rng(20230103)
    for symbol, spec in SCENARIO.items():
        frame = bars(days, rng, spec)
        if symbol == DELISTED:
            frame = frame[frame["date"] < DELISTING_DATE]
        if symbol == "AAA":  # the one file with adj_close: a $0.96 dividend, ex 2023-08-11
            factor = np.where(frame["date"] < "2023-08-11", 1 - 0.96 / 150.0, 1.0)
            frame.insert(5, "adj_close", (frame["close"] * factor).round(4))
        frame.to_csv(OUT / f"{symbol}.csv", index=False, lineterminator="\n")
    last_eee = days[days < DELISTING_DATE][-1].strftime("%Y-%m-%d")
    (OUT / "universe.csv").write_text(
        "symbol,start,end\n"
        "AAA,2023-01-03,\n"
        "BBB,2023-01-03,\n"
        "CCC,2023-07-03,\n"  # joins the index mid-year (it traded before)
        "DDD,2023-01-03,2023-09-29\n"  # leaves the index but keeps trading
        f"EEE,2023-01-03,{last_eee}\n"  # member until its last session before delisting
    )
    (OUT / "delistings.csv").write_text(
        f"symbol,date,delisting_return\n{DELISTED},{DELISTING_DATE},-0.3\n"
    )
    (OUT / "sectors.csv").write_text(
        "symbol,from,sector,name\n"
        "AAA,2023-01-03,Information Technology,AAA Analytics\n"
        "BBB,2023-01-03,Information Technology,BBB Media\n"
        "BBB,2023-10-02,Communication Services,BBB Media\n"  # reclassified from October
        "CCC,2023-01-03,Health Care,CCC Therapeutics\n"
        "DDD,2023-01-03,Energy,DDD Drilling\n"
        "EEE,2023-01-03,Consumer Discretionary,EEE Retail\n"
    )


if __name__ == "__main__":
    main()
