"""One page on the live track, from its daily logs alone (``scripts/live_report.py``).

Four panels, drawn with matplotlib and embedded in the HTML as inline PNG (the page loads
nothing from anywhere): live equity against the replay's, cumulative implementation
shortfall, rolling realised rank IC against the backtest's out-of-sample band, and a heat
map of each feature's drift (PSI) by session.
"""

from __future__ import annotations

import base64
import html
import io
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from py_finance.errors import PyFinanceError


def _logs(
    log_dir: str | os.PathLike[str], today: Mapping[str, Any] | None = None
) -> list[dict[str, Any]]:
    from py_finance.live.readiness import load_logs

    # A track's first day has no folder yet: today's log is all there is.
    logs = load_logs(log_dir) if today is None or Path(log_dir).is_dir() else []
    if today is not None:
        logs = [e for e in logs if str(e.get("session")) != str(today.get("session"))]
        logs.append(dict(today))
    return [e for e in logs if not e.get("dry_run") and e.get("status", "ok") in ("ok", "degraded")]


def track_frame(
    log_dir: str | os.PathLike[str], today: Mapping[str, Any] | None = None
) -> pd.DataFrame:
    """One row per traded session: live and replay equity, shortfall, IC and its band.

    The replay's equity compounds the replay's return of each session from the first
    logged equity, so the two curves start together and part by the tracking difference.
    ``today``: the log a run is about to write (it replaces that session's log, if any).
    """
    rows = []
    for e in _logs(log_dir, today):
        m = e.get("monitor") or {}
        rep = m.get("replay") or {}
        sf = m.get("shortfall") or {}
        ic = m.get("ic") or {}
        ret = None
        if rep.get("replay_start"):
            ret = rep["replay_pnl"] / rep["replay_start"]
        rows.append(
            {
                "session": pd.Timestamp(e["session"]),
                "equity": e.get("equity"),
                "replay_return": ret,
                "tracking_difference": rep.get("cumulative_tracking_difference"),
                "shortfall_cost": sf.get("cost") or 0.0,
                "shortfall_bps": sf.get("bps_vs_model"),
                "ic": ic.get("value"),
                "ic_20": ic.get("rolling_20"),
                "ic_60": ic.get("rolling_60"),
                "oos_ic": ic.get("oos_mean"),
                "band_lo": (ic.get("band_60") or [None, None])[0],
                "band_hi": (ic.get("band_60") or [None, None])[1],
            }
        )
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    frame = frame.set_index("session").sort_index().astype("float64")
    first = frame["equity"].dropna()
    start = float(first.iloc[0]) if len(first) else np.nan
    frame["replay_equity"] = start * (1.0 + frame["replay_return"].fillna(0.0)).cumprod()
    frame["cumulative_shortfall"] = frame["shortfall_cost"].cumsum()
    return frame


def drift_frame(log_dir: str | os.PathLike[str]) -> pd.DataFrame:
    """``feature x session`` PSI (over the monitor's window) from the logs."""
    cols = {}
    for e in _logs(log_dir):
        psi = ((e.get("monitor") or {}).get("drift") or {}).get("psi")
        if psi:
            cols[pd.Timestamp(e["session"])] = psi
    return pd.DataFrame(cols).sort_index(axis=1)


def tracking_figure(frame: pd.DataFrame) -> Any:
    """Live equity against the replay's (one panel)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3.2))
    ax.plot(frame.index, frame["equity"], label="live", lw=1.5)
    ax.plot(frame.index, frame["replay_equity"], label="replay (backtest engine)", lw=1.2, ls="--")
    ax.set_title("Live equity vs replay")
    ax.legend(loc="best")
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig


def report_figure(frame: pd.DataFrame, drift: pd.DataFrame) -> Any:
    """The page's four panels in one figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(14, 8.5))
    ax = axes[0, 0]
    ax.plot(frame.index, frame["equity"], label="live", lw=1.5)
    ax.plot(frame.index, frame["replay_equity"], label="replay", lw=1.2, ls="--")
    ax.set_title("Live equity vs replay")
    ax.legend(loc="best")
    ax = axes[0, 1]
    ax.plot(frame.index, frame["cumulative_shortfall"], color="tab:red")
    ax.set_title("Cumulative implementation shortfall (vs modelled price, incl. commission)")
    ax.axhline(0, color="grey", lw=0.5)
    ax = axes[1, 0]
    ax.plot(frame.index, frame["ic_20"], label="realised rank IC, rolling 20")
    ax.plot(frame.index, frame["ic_60"], label="realised rank IC, rolling 60")
    if frame["oos_ic"].notna().any():
        ax.plot(frame.index, frame["oos_ic"], color="black", lw=1, label="backtest OOS IC")
        ax.fill_between(
            frame.index,
            frame["band_lo"],
            frame["band_hi"],
            color="grey",
            alpha=0.25,
            label="backtest band (60)",
        )
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_title("Realised IC vs backtest")
    ax.legend(loc="best", fontsize=8)
    ax = axes[1, 1]
    if drift.empty:
        ax.text(0.5, 0.5, "no drift figures in the logs", ha="center", va="center")
        ax.set_axis_off()
    else:
        image = ax.imshow(
            drift.to_numpy(dtype="float64"), aspect="auto", cmap="viridis", interpolation="nearest"
        )
        ax.set_yticks(range(len(drift.index)), [str(i) for i in drift.index], fontsize=7)
        ticks = np.linspace(0, drift.shape[1] - 1, min(6, drift.shape[1])).astype(int)
        ax.set_xticks(ticks, [drift.columns[i].date().isoformat() for i in ticks], fontsize=7)
        fig.colorbar(image, ax=ax, label="PSI")
    ax.set_title("Feature drift (PSI vs training window)")
    for a in axes.flat[:3]:
        for label in a.get_xticklabels():
            label.set_rotation(20)
    fig.tight_layout()
    return fig


def write_report(log_dir: str | os.PathLike[str], out: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Write ``<out>.html`` and ``<out>.png`` from the daily logs in ``log_dir``.

    Raises
    ------
    PyFinanceError
        No traded session in the logs.
    """
    import matplotlib.pyplot as plt

    from py_finance.io import atomic_path

    frame = track_frame(log_dir)
    if frame.empty:
        raise PyFinanceError(f"no traded session in the daily logs of {log_dir}: nothing to report")
    drift = drift_frame(log_dir)
    fig = report_figure(frame, drift)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    png = buf.getvalue()
    base = Path(out)
    base.parent.mkdir(parents=True, exist_ok=True)
    png_path = base.with_suffix(".png")
    html_path = base.with_suffix(".html")
    with atomic_path(png_path) as tmp:
        tmp.write_bytes(png)
    last = frame.iloc[-1]
    logs = _logs(log_dir)
    checks = (logs[-1].get("monitor") or {}).get("checks") or {}
    states = {True: "BREACHED", False: "ok", None: "not judged yet"}
    rows = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{_fmt(c.get('value'))}</td>"
        f"<td>{_fmt(c.get('threshold'))}</td>"
        f"<td class='{'bad' if c.get('breached') else 'ok'}'>"
        f"{states[c.get('breached')]}</td></tr>"
        for k, c in checks.items()
    )
    summary = (
        f"{len(frame)} sessions, {frame.index[0].date()} .. {frame.index[-1].date()}; "
        f"live equity {last['equity']:,.2f}, replay {last['replay_equity']:,.2f}; "
        f"cumulative shortfall {last['cumulative_shortfall']:,.2f}"
    )
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>py-finance live report</title>
<style>body{{font-family:sans-serif;margin:1.5em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:2px 8px}}.bad{{color:#b00;font-weight:bold}}.ok{{color:#070}}
img{{max-width:100%}}</style></head>
<body><h1>Live track vs backtest</h1>
<p id="summary">{html.escape(summary)}</p>
<table id="checks"><tr><th>check</th><th>value</th><th>threshold</th><th>state</th></tr>
{rows}</table>
<img id="panels" alt="live vs replay, shortfall, realised IC, feature drift"
 src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}">
</body></html>
"""
    with atomic_path(html_path) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return html_path, png_path


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return html.escape(str(value)) if value is not None else "n/a"
