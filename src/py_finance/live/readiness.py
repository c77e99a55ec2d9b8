"""Readiness gates: may the paper track record go live, and with how much capital.

The gates read the daily logs (:mod:`py_finance.live.daily_log`). The fields they use are
their contract with the loop:

``session``
    ISO date of the session (from the file name when absent).
``dry_run``
    True for a planning run; dry runs never count, for any gate or for the ramp.
``broker``
    ``paper``, ``alpaca_paper`` or ``alpaca_live``; the gates read the paper brokers, the
    ramp reads ``alpaca_live``.
``equity``
    Account equity after the session (account currency). A log without a finite, positive
    equity (a failed session) adds no point to the equity series.
``fills``, ``settled``
    Lists of dicts (``client_order_id``, ``qty_filled``, ...): the session's own orders, and
    earlier orders that filled since the last log; an order with ``qty_filled > 0`` is a
    trade, counted once per broker however many logs show it (rejected orders fill 0).
``errors``
    List of messages; a non-empty list makes the session an *error session*.
``schema_version``
    Version of the log's layout; every version so far (1, or absent) reads the same.

The paper track is read where each paper broker writes its logs (:func:`load_track`): the
paper broker's in ``live.log_dir``, the Alpaca paper broker's in ``{log_dir}/alpaca_paper``;
``all`` (the default) is both, and ``paper`` or ``alpaca_paper`` one of them.

How each figure is measured (paper track: non-dry-run logs of ``brokers``):

- trading days: the sessions these logs cover (a session logged by two paper brokers counts
  once; error sessions count: the error gate judges them);
- trades: orders with ``qty_filled > 0`` in ``fills`` or ``settled``, each order once;
- drawdown: the deepest fall of equity from its running peak, as a fraction of the peak;
- volatility: standard deviation (ddof 1) of the daily returns between consecutive logged
  sessions, times sqrt(252); Sharpe: their mean over that deviation, times sqrt(252), with a
  risk-free rate of 0. Each broker's account is its own equity series, so returns never mix
  two accounts; deposits and withdrawals are not adjusted for;
- consecutive errors: the *longest* run of consecutive error sessions anywhere in the track
  (a session is an error session when any paper broker's log of it has errors), not the run
  at its end. A track that once failed four days in a row has shown that the
  system can stay broken for that long; counting only the trailing run would forget that
  after a single good day.

The ramp-up schedule (:class:`RampStep`) sizes live trading: it starts with the first step's
fraction of capital and moves to a step once the count of *clean* live sessions reaches its
``min_clean_days``. A live session is clean when it has no errors and its equity is within
``max_paper_drawdown_pct`` of the running peak of live equity. An error session or a breach
resets the count to 0, which puts trading back on the first step. A live log without equity
and without errors neither counts nor resets.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from py_finance.errors import ConfigError, PyFinanceError
from py_finance.live.config import section_values
from py_finance.live.daily_log import logged_sessions, read_daily_log, to_jsonable

PAPER_BROKERS = ("paper", "alpaca_paper")
LIVE_BROKER = "alpaca_live"
# The paper tracks the gates may read (``--track``): each paper broker's, or both.
TRACKS = {"all": PAPER_BROKERS, "paper": ("paper",), "alpaca_paper": ("alpaca_paper",)}
PERIODS_PER_YEAR = 252


# ---------------------------------------------------------------- gates
@dataclass(frozen=True, slots=True)
class RampStep:
    """Live trading may use ``fraction`` of capital after ``min_clean_days`` clean sessions."""

    fraction: float
    min_clean_days: int


DEFAULT_RAMP = (
    RampStep(0.05, 0),
    RampStep(0.10, 20),
    RampStep(0.25, 40),
    RampStep(0.50, 60),
    RampStep(1.00, 90),
)


def _int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
        raise ConfigError(f"live.gates.{name} must be a whole number, got {value!r}")
    if value < 0:
        raise ConfigError(f"live.gates.{name} must be >= 0, got {value!r}")
    return int(value)


def _float(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"live.gates.{name} must be a finite number, got {value!r}")
    return float(value)


def _ramp_step(item: Any, i: int) -> RampStep:
    if isinstance(item, RampStep):
        fraction, days = item.fraction, item.min_clean_days
    elif isinstance(item, Mapping):
        extra = set(item) - {"fraction", "min_clean_days"}
        if extra or "fraction" not in item or "min_clean_days" not in item:
            raise ConfigError(
                f"live.gates.ramp_up_schedule[{i}] must be {{fraction, min_clean_days}}, "
                f"got {dict(item)!r}"
            )
        fraction, days = item["fraction"], item["min_clean_days"]
    elif isinstance(item, Sequence) and not isinstance(item, str) and len(item) == 2:
        fraction, days = item
    else:
        raise ConfigError(
            f"live.gates.ramp_up_schedule[{i}] must be {{fraction, min_clean_days}}, got {item!r}"
        )
    where = f"ramp_up_schedule[{i}]"
    return RampStep(_float(f"{where}.fraction", fraction), _int(f"{where}.min_clean_days", days))


@dataclass(frozen=True, slots=True)
class LiveGates:
    """What the paper track must show before live trading, and the live ramp-up schedule.

    Parameters
    ----------
    min_paper_trading_days
        Non-dry-run paper sessions logged, at least.
    min_paper_trades
        Fills with a positive quantity, at least.
    max_paper_drawdown_pct
        Deepest fall of paper equity from its peak (fraction, e.g. 0.20), at most; also the
        drawdown a live session may show and still count as clean for the ramp.
    max_paper_volatility
        Annualised volatility of daily paper returns (fraction), at most.
    min_paper_sharpe
        Annualised Sharpe ratio of daily paper returns (risk-free 0), at least.
    max_consecutive_errors
        Longest run of consecutive error sessions, at most.
    ramp_up_schedule
        Steps of (fraction of capital, clean live sessions needed): fractions in (0, 1] and
        both increasing; the first step needs 0 days (it is where live trading starts).
    monitor_checks
        The live monitor's checks (``monitor_<check>`` gates: tracking difference, shortfall
        above the cost model, feature drift, score drift, IC decay; thresholds in
        ``live.monitor``) must not be breached at the latest monitored log of each broker.
    """

    min_paper_trading_days: int = 30
    min_paper_trades: int = 50
    max_paper_drawdown_pct: float = 0.20
    max_paper_volatility: float = 0.40
    min_paper_sharpe: float = 0.0
    max_consecutive_errors: int = 3
    ramp_up_schedule: tuple[RampStep, ...] = DEFAULT_RAMP
    monitor_checks: bool = True

    def __post_init__(self) -> None:
        for name in ("min_paper_trading_days", "min_paper_trades", "max_consecutive_errors"):
            object.__setattr__(self, name, _int(name, getattr(self, name)))
        for name in ("max_paper_drawdown_pct", "max_paper_volatility", "min_paper_sharpe"):
            object.__setattr__(self, name, _float(name, getattr(self, name)))
        if not 0 < self.max_paper_drawdown_pct <= 1:
            raise ConfigError(
                "live.gates.max_paper_drawdown_pct must be in (0, 1], "
                f"got {self.max_paper_drawdown_pct}"
            )
        if self.max_paper_volatility <= 0:
            raise ConfigError(
                f"live.gates.max_paper_volatility must be > 0, got {self.max_paper_volatility}"
            )
        raw = self.ramp_up_schedule
        if isinstance(raw, str | bytes | Mapping) or not isinstance(raw, Iterable):
            raise ConfigError("live.gates.ramp_up_schedule must be a list of steps")
        steps = tuple(_ramp_step(item, i) for i, item in enumerate(raw))
        if not steps:
            raise ConfigError("live.gates.ramp_up_schedule needs at least one step")
        for i, step in enumerate(steps):
            if not 0 < step.fraction <= 1:
                raise ConfigError(
                    f"live.gates.ramp_up_schedule[{i}].fraction must be in (0, 1], "
                    f"got {step.fraction}"
                )
        if steps[0].min_clean_days != 0:
            raise ConfigError(
                "live.gates.ramp_up_schedule[0].min_clean_days must be 0: the first step is "
                "the share live trading starts with"
            )
        for i, (a, b) in enumerate(itertools.pairwise(steps), start=1):
            if b.fraction <= a.fraction or b.min_clean_days <= a.min_clean_days:
                raise ConfigError(
                    f"live.gates.ramp_up_schedule must increase in fraction and "
                    f"min_clean_days: step {i} ({b.fraction}, {b.min_clean_days}) does not "
                    f"follow ({a.fraction}, {a.min_clean_days})"
                )
        object.__setattr__(self, "ramp_up_schedule", steps)

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any]) -> LiveGates:
        """Build from a config node (``live.gates``); missing keys keep their defaults.

        ``ramp_up_schedule`` is a list of ``{fraction, min_clean_days}`` mappings.

        Raises
        ------
        ConfigError
            An unknown key or a bad value.
        """
        return cls(**section_values(cls, mapping, "live.gates"))


def gates_from_config(cfg: Mapping[str, Any] | None) -> LiveGates:
    """The gates of a composed config's ``live.gates`` node; defaults when it has none."""
    live = cfg.get("live") if cfg is not None else None
    node = live.get("gates") if isinstance(live, Mapping) else None
    return LiveGates.from_mapping(node) if node else LiveGates()


# ---------------------------------------------------------------- logs
def load_logs(log_dir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Read every daily log of ``log_dir`` (not its sub-folders), oldest session first.

    Raises
    ------
    PyFinanceError
        The folder does not exist, or a log is corrupt.
    """
    folder = Path(log_dir)
    if not folder.is_dir():
        raise PyFinanceError(
            f"no daily logs: {folder} is not a folder; run scripts/run_live_loop.py first "
            "or pass --log-dir"
        )
    logs = []
    for session in logged_sessions(folder):
        entry = read_daily_log(folder, session)
        entry.setdefault("session", session.isoformat())
        logs.append(entry)
    return logs


def track_dir(log_dir: str | os.PathLike[str], broker: str) -> Path:
    """Folder of ``broker``'s daily logs under the root ``log_dir`` (``live.log_dir``).

    The paper broker logs into ``log_dir`` itself, the Alpaca brokers into a sub-folder
    named after them (as :meth:`py_finance.live.config.LiveConfig.log_dir_for`).
    """
    root = Path(log_dir)
    return root if broker == "paper" else root / broker


@dataclass(frozen=True, slots=True)
class TrackLogs:
    """The daily logs of a paper track, and where each broker's came from.

    Parameters
    ----------
    track
        ``all``, ``paper`` or ``alpaca_paper`` (a key of :data:`TRACKS`).
    brokers
        The brokers the track is made of.
    folders
        ``broker -> (folder, number of logs, or None when the folder does not exist)``.
    logs
        Every log of those folders, oldest session first per folder.
    """

    track: str
    brokers: tuple[str, ...]
    folders: dict[str, tuple[Path, int | None]]
    logs: list[dict[str, Any]]

    def describe(self) -> str:
        """One line naming each broker's folder and what it held."""
        parts = []
        for broker, (folder, n) in self.folders.items():
            held = "no such folder" if n is None else f"{n} log(s)"
            parts.append(f"{broker}: {folder} ({held})")
        return "; ".join(parts)


def load_track(
    log_dir: str | os.PathLike[str], track: str = "all", *, missing_ok: bool = False
) -> TrackLogs:
    """Read the daily logs of the paper ``track`` under the root ``log_dir``.

    ``all`` reads the paper broker's folder and the Alpaca paper broker's (a folder that
    does not exist adds nothing); ``paper`` or ``alpaca_paper`` reads that one only.
    With ``missing_ok``, a track without any folder is an empty track.

    Raises
    ------
    PyFinanceError
        An unknown track, no folder of the track exists (unless ``missing_ok``), or a log
        is corrupt.
    """
    if track not in TRACKS:
        raise PyFinanceError(f"unknown readiness track {track!r}; use {', '.join(TRACKS)}")
    brokers = TRACKS[track]
    folders: dict[str, tuple[Path, int | None]] = {}
    logs: list[dict[str, Any]] = []
    for broker in brokers:
        folder = track_dir(log_dir, broker)
        if folder.is_dir():
            found = load_logs(folder)
            logs += found
            folders[broker] = (folder, len(found))
        else:
            folders[broker] = (folder, None)
    if not missing_ok and all(n is None for _, n in folders.values()):
        first, *others = (str(f) for f, _ in folders.values())
        where = f"{first} is not a folder" + "".join(f", nor is {o}" for o in others)
        raise PyFinanceError(
            f"no daily logs of the {track} track: {where}; run scripts/run_live_loop.py "
            "first or pass --log-dir"
        )
    return TrackLogs(track, brokers, folders, logs)


def _session(entry: Mapping[str, Any]) -> dt.date:
    value = entry.get("session")
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value)[:10])
    except ValueError:
        raise PyFinanceError(f"daily log has no valid session: {value!r}") from None


def _is_error(entry: Mapping[str, Any]) -> bool:
    return bool(entry.get("errors"))


def _equity(entry: Mapping[str, Any]) -> float | None:
    value = entry.get("equity")
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) and value > 0 else None


def _traded_ids(entry: Mapping[str, Any]) -> list[str]:
    """Orders with shares filled, from ``fills`` and ``settled``.

    ``settled`` holds orders of earlier sessions that filled later (e.g. at the next open).
    """
    out = []
    for n, fill in enumerate([*(entry.get("fills") or []), *(entry.get("settled") or [])]):
        qty = fill.get("qty_filled") if isinstance(fill, Mapping) else None
        if isinstance(qty, int | float) and not isinstance(qty, bool) and qty > 0:
            coid = fill.get("client_order_id") if isinstance(fill, Mapping) else None
            out.append(str(coid) if coid else f"{_session(entry)}#{n}")
    return out


def _track(
    logs: Iterable[Mapping[str, Any]], brokers: Sequence[str]
) -> list[tuple[dt.date, Mapping[str, Any]]]:
    """Non-dry-run logs of ``brokers`` by (session, broker); a repeated one keeps the last."""
    keep: dict[tuple[dt.date, str], Mapping[str, Any]] = {}
    for entry in logs:
        if entry.get("dry_run") or entry.get("broker") not in brokers:
            continue
        keep[(_session(entry), str(entry.get("broker")))] = entry
    return [(key[0], keep[key]) for key in sorted(keep)]


# ---------------------------------------------------------------- report
@dataclass(frozen=True, slots=True)
class GateResult:
    """One gate: the measured ``value`` against its ``threshold``, and why it passed or not."""

    name: str
    value: float
    threshold: float
    passed: bool
    detail: str


@dataclass(frozen=True, slots=True)
class ReadinessReport:
    """All gates on one paper track; ``passed`` when every gate passes."""

    passed: bool
    gates: tuple[GateResult, ...]
    brokers: tuple[str, ...]
    sessions: int
    first_session: dt.date | None
    last_session: dt.date | None
    sessions_by_broker: dict[str, int] = dataclasses.field(default_factory=dict)

    @property
    def failed(self) -> tuple[str, ...]:
        """Names of the gates that fail."""
        return tuple(g.name for g in self.gates if not g.passed)

    def gate(self, name: str) -> GateResult:
        """The result of gate ``name``."""
        for g in self.gates:
            if g.name == name:
                return g
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values (dates as ISO strings, NaN and infinities as None)."""
        doc: dict[str, Any] = to_jsonable(self)
        doc["failed"] = list(self.failed)
        return doc


def _max_drawdown(equity: np.ndarray) -> float:
    peak = np.maximum.accumulate(equity)
    return float(np.max(1.0 - equity / peak)) if equity.size else 0.0


def _pct(x: float) -> str:
    return f"{x:.1%}" if math.isfinite(x) else str(x)


def evaluate_readiness(
    logs: Iterable[Mapping[str, Any]],
    gates: LiveGates,
    *,
    brokers: Sequence[str] = PAPER_BROKERS,
) -> ReadinessReport:
    """Check the paper track in ``logs`` against ``gates`` (see the module docstring).

    Parameters
    ----------
    logs
        Daily logs in any order (:func:`load_logs`); dry runs and other brokers are ignored.
    gates
        The thresholds.
    brokers
        The brokers whose logs make the paper track.

    Returns
    -------
    ReadinessReport
        One :class:`GateResult` per gate, in the order of :class:`LiveGates`' fields.
    """
    track = _track(logs, brokers)
    sessions = sorted({s for s, _ in track})
    n_days = len(sessions)
    # An order counts once, however many logs record its fills.
    n_trades = len({(e.get("broker"), coid) for _, e in track for coid in _traded_ids(e)})

    # Each broker's account is its own equity series.
    returns: list[tuple[dt.date, float]] = []
    drawdown = 0.0
    points = 0
    for broker in dict.fromkeys(str(e.get("broker")) for _, e in track):
        series = [(s, _equity(e)) for s, e in track if e.get("broker") == broker]
        known = [(s, q) for s, q in series if q is not None]
        values = np.array([q for _, q in known], dtype="float64")
        dates = [s for s, _ in known]
        points += values.size
        drawdown = max(drawdown, _max_drawdown(values))
        returns += list(zip(dates[1:], (values[1:] / values[:-1] - 1.0).tolist(), strict=True))
    rets = np.array([r for _, r in sorted(returns)], dtype="float64")
    n_ret = rets.size

    results = [
        GateResult(
            "min_paper_trading_days",
            n_days,
            gates.min_paper_trading_days,
            n_days >= gates.min_paper_trading_days,
            f"{n_days} sessions with a non-dry-run log of {', '.join(brokers)}"
            + (f" ({sessions[0]}..{sessions[-1]})" if sessions else "")
            + f"; needs at least {gates.min_paper_trading_days}",
        ),
        GateResult(
            "min_paper_trades",
            n_trades,
            gates.min_paper_trades,
            n_trades >= gates.min_paper_trades,
            f"{n_trades} fills with qty_filled > 0; needs at least {gates.min_paper_trades}",
        ),
    ]
    if n_ret < 1:
        results.append(
            GateResult(
                "max_paper_drawdown_pct",
                math.nan,
                gates.max_paper_drawdown_pct,
                False,
                f"too few sessions: {points} equity value(s), needs at least 2",
            )
        )
    else:
        results.append(
            GateResult(
                "max_paper_drawdown_pct",
                drawdown,
                gates.max_paper_drawdown_pct,
                drawdown <= gates.max_paper_drawdown_pct,
                f"max drawdown {_pct(drawdown)} of peak equity over {points} equity values; "
                f"needs at most {_pct(gates.max_paper_drawdown_pct)}",
            )
        )
    if n_ret < 2:
        too_few = f"too few sessions: {n_ret} daily return(s), needs at least 2"
        results += [
            GateResult(
                "max_paper_volatility", math.nan, gates.max_paper_volatility, False, too_few
            ),
            GateResult("min_paper_sharpe", math.nan, gates.min_paper_sharpe, False, too_few),
        ]
    else:
        mean, std = float(rets.mean()), float(rets.std(ddof=1))
        vol = std * math.sqrt(PERIODS_PER_YEAR)
        if std > 0:
            sharpe = mean / std * math.sqrt(PERIODS_PER_YEAR)
        else:  # a constant return: the sign of the mean decides
            sharpe = 0.0 if mean == 0 else math.copysign(math.inf, mean)
        results += [
            GateResult(
                "max_paper_volatility",
                vol,
                gates.max_paper_volatility,
                vol <= gates.max_paper_volatility,
                f"annualised volatility {_pct(vol)} from {n_ret} daily returns; "
                f"needs at most {_pct(gates.max_paper_volatility)}",
            ),
            GateResult(
                "min_paper_sharpe",
                sharpe,
                gates.min_paper_sharpe,
                sharpe >= gates.min_paper_sharpe,
                f"annualised Sharpe {sharpe:.2f} (mean {mean:.4%}/day, rf 0) from {n_ret} "
                f"daily returns; needs at least {gates.min_paper_sharpe:g}",
            ),
        ]

    # A session is an error session when any paper broker's log of it has errors.
    failed = {s for s, e in track if _is_error(e)}
    longest, run, end = 0, 0, None
    for s in sessions:
        run = run + 1 if s in failed else 0
        if run > longest:
            longest, end = run, s
    n_errors = len(failed)
    where = f", ending {end}" if end is not None else ""
    results.append(
        GateResult(
            "max_consecutive_errors",
            longest,
            gates.max_consecutive_errors,
            longest <= gates.max_consecutive_errors,
            f"longest run of error sessions {longest}{where} ({n_errors} in all); "
            f"needs at most {gates.max_consecutive_errors}",
        )
    )
    if gates.monitor_checks:
        results += _monitor_gates(track)
    return ReadinessReport(
        passed=all(r.passed for r in results),
        gates=tuple(results),
        brokers=tuple(brokers),
        sessions=n_days,
        first_session=sessions[0] if sessions else None,
        last_session=sessions[-1] if sessions else None,
        sessions_by_broker={b: sum(e.get("broker") == b for _, e in track) for b in brokers},
    )


MONITOR_CHECKS = ("tracking_difference", "shortfall", "feature_drift", "score_drift", "ic_decay")


def _monitor_gates(track: Sequence[tuple[dt.date, Mapping[str, Any]]]) -> list[GateResult]:
    """One gate per monitor check: not breached at each broker's latest monitored log.

    A check the monitor has not judged yet (too few sessions) passes; the days gate
    judges the track's length.
    """
    latest: dict[str, tuple[dt.date, Mapping[str, Any]]] = {}
    for session, entry in track:
        checks = (entry.get("monitor") or {}).get("checks")
        if isinstance(checks, Mapping):
            latest[str(entry.get("broker"))] = (session, checks)
    out = []
    for name in MONITOR_CHECKS:
        breached, value, threshold, where = False, math.nan, math.nan, []
        for broker, (session, checks) in latest.items():
            c = checks.get(name) or {}
            v, t = c.get("value"), c.get("threshold")
            if isinstance(v, int | float) and not isinstance(v, bool):
                value = float(v)
            if isinstance(t, int | float) and not isinstance(t, bool):
                threshold = float(t)
            state = {True: "breached", False: "ok", None: "not judged yet"}[c.get("breached")]
            extra = f" ({', '.join(c['features'])})" if c.get("features") else ""
            where.append(f"{broker} {session}: {state}{extra}")
            breached = breached or bool(c.get("breached"))
        detail = (
            f"{name} at the latest monitored log: " + "; ".join(where)
            if where
            else f"{name}: no monitored log yet"
        )
        out.append(GateResult(f"monitor_{name}", value, threshold, not breached, detail))
    return out


# ---------------------------------------------------------------- ramp-up
@dataclass(frozen=True, slots=True)
class RampStatus:
    """Where live trading stands on the ramp-up schedule.

    Parameters
    ----------
    fraction
        Share of capital live trading may use now.
    step
        Index of the current step in ``ramp_up_schedule`` (0: the first).
    clean_days
        Clean live sessions since the last error or drawdown breach.
    next_step_at
        Clean sessions the next step needs; None on the last step.
    """

    fraction: float
    step: int
    clean_days: int
    next_step_at: int | None


def ramp_fraction(live_logs: Iterable[Mapping[str, Any]], gates: LiveGates) -> RampStatus:
    """The ramp-up step that the ``alpaca_live`` logs in ``live_logs`` have earned.

    Dry runs and other brokers' logs are ignored; the count rule is in the module docstring.
    """
    clean = 0
    peak = 0.0
    for _, entry in _track(live_logs, (LIVE_BROKER,)):
        equity = _equity(entry)
        if equity is not None:
            peak = max(peak, equity)
        breach = equity is not None and 1.0 - equity / peak > gates.max_paper_drawdown_pct
        if _is_error(entry) or breach:
            clean = 0
        elif equity is not None:
            clean += 1
    schedule = gates.ramp_up_schedule
    step = max(i for i, s in enumerate(schedule) if s.min_clean_days <= clean)
    following = schedule[step + 1].min_clean_days if step + 1 < len(schedule) else None
    return RampStatus(schedule[step].fraction, step, clean, following)


# ---------------------------------------------------------------- text
def _value(name: str, value: float) -> str:
    if not math.isfinite(value):
        return "n/a" if math.isnan(value) else str(value)
    if name.endswith(("_pct", "_volatility")):
        return f"{value:.1%}"
    if name.endswith("_sharpe"):
        return f"{value:.2f}"
    return f"{value:g}"


def format_report(
    report: ReadinessReport, ramp: RampStatus | None = None, *, verbose: bool = False
) -> str:
    """A table of the gates (and, with ``verbose``, each gate's detail) for a terminal."""
    span = f" ({report.first_session}..{report.last_session})" if report.first_session else ""
    each = ", ".join(f"{b} {report.sessions_by_broker.get(b, 0)}" for b in report.brokers)
    lines = [
        f"paper track: {report.sessions} sessions ({each}){span}",
        "",
        f"{'gate':<26} {'value':>10} {'threshold':>12}  result",
    ]
    for g in report.gates:
        bound = ">=" if g.name.startswith("min_") or g.name == "monitor_ic_decay" else "<="
        lines.append(
            f"{g.name:<26} {_value(g.name, g.value):>10} "
            f"{bound + ' ' + _value(g.name, g.threshold):>12}  {'PASS' if g.passed else 'FAIL'}"
        )
        if verbose:
            lines.append(f"    {g.detail}")
    lines.append("")
    if report.passed:
        lines.append("READY: every gate passes; alpaca_live may trade")
    else:
        lines.append(f"NOT READY: {', '.join(report.failed)} fail")
    if ramp is not None:
        nxt = (
            f", next step at {ramp.next_step_at} clean sessions"
            if ramp.next_step_at is not None
            else " (last step)"
        )
        lines.append(
            f"live ramp-up: {ramp.fraction:.0%} of capital (step {ramp.step}), "
            f"{ramp.clean_days} clean live sessions{nxt}"
        )
    return "\n".join(lines)
