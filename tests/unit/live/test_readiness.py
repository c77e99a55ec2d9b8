from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math

import pandas as pd
import pytest

from py_finance.errors import ConfigError, PyFinanceError
from py_finance.live.daily_log import merge_runs, write_daily_log
from py_finance.live.readiness import (
    DEFAULT_RAMP,
    LiveGates,
    RampStatus,
    RampStep,
    evaluate_readiness,
    format_report,
    gates_from_config,
    load_logs,
    ramp_fraction,
)

GATES = LiveGates()
GATE_NAMES = [
    "min_paper_trading_days",
    "min_paper_trades",
    "max_paper_drawdown_pct",
    "max_paper_volatility",
    "min_paper_sharpe",
    "max_consecutive_errors",
    "monitor_tracking_difference",
    "monitor_shortfall",
    "monitor_feature_drift",
    "monitor_score_drift",
    "monitor_ic_decay",
]


def track(
    returns: list[float],
    *,
    broker: str = "paper",
    fills_per_day: int = 2,
    errors_at: tuple[int, ...] = (),
    start: str = "2024-01-02",
    equity0: float = 100_000.0,
) -> list[dict]:
    """One log per session: the first at ``equity0``, then one per return."""
    days = pd.bdate_range(start, periods=len(returns) + 1)
    equity = equity0
    logs = []
    for i, day in enumerate(days):
        if i:
            equity *= 1 + returns[i - 1]
        logs.append(
            {
                "schema_version": 1,
                "session": day.date().isoformat(),
                "dry_run": False,
                "broker": broker,
                "equity": equity,
                "fills": [{"qty_filled": 3.0, "status": "filled"}] * fills_per_day
                + [{"qty_filled": 0.0, "status": "rejected"}],
                "errors": ["order AAA rejected"] if i in errors_at else [],
            }
        )
    return logs


def good(n: int = 40) -> list[float]:
    return [0.003 if i % 2 else -0.001 for i in range(n)]


def failed_gates(logs: list[dict], gates: LiveGates = GATES) -> list[str]:
    return list(evaluate_readiness(logs, gates).failed)


def test_a_good_track_passes_every_gate():
    report = evaluate_readiness(track(good()), GATES)
    assert report.passed and report.failed == ()
    assert [g.name for g in report.gates] == GATE_NAMES
    assert report.sessions == 41
    assert report.first_session == dt.date(2024, 1, 2)
    assert report.gate("min_paper_trades").value == 82  # rejected fills do not count
    vol = report.gate("max_paper_volatility").value
    rets = pd.Series(good())
    assert vol == pytest.approx(rets.std() * math.sqrt(252))
    assert report.gate("min_paper_sharpe").value == pytest.approx(
        rets.mean() / rets.std() * math.sqrt(252)
    )


def test_too_few_trading_days_fails_alone():
    assert failed_gates(track(good(20), fills_per_day=3)) == ["min_paper_trading_days"]


def test_too_few_trades_fails_alone():
    assert failed_gates(track(good(), fills_per_day=1)) == ["min_paper_trades"]


def test_deep_drawdown_fails_alone():
    # Up, a steady slide of about 26%, then a recovery: calm, positive on average, but deep.
    returns = [0.005] * 60 + [-0.01] * 30 + [0.005] * 100
    logs = track(returns)
    report = evaluate_readiness(logs, GATES)
    assert list(report.failed) == ["max_paper_drawdown_pct"]
    assert report.gate("max_paper_drawdown_pct").value == pytest.approx(1 - 0.99**30)


def test_high_volatility_fails_alone():
    returns = [0.04 if i % 2 else -0.035 for i in range(40)]
    assert failed_gates(track(returns)) == ["max_paper_volatility"]


def test_negative_sharpe_fails_alone():
    returns = [0.001 if i % 2 else -0.002 for i in range(40)]
    assert failed_gates(track(returns)) == ["min_paper_sharpe"]


def test_a_run_of_errors_fails_alone_and_the_longest_run_counts():
    assert failed_gates(track(good(), errors_at=(5, 6, 7, 8))) == ["max_consecutive_errors"]
    # The longest run, not the trailing one: clean days after it do not clear it.
    report = evaluate_readiness(track(good(), errors_at=(3, 10, 11, 12, 13, 40)), GATES)
    gate = report.gate("max_consecutive_errors")
    assert (gate.value, gate.passed) == (4, False)
    assert "6 in all" in gate.detail
    assert evaluate_readiness(track(good(), errors_at=(5, 6, 7)), GATES).passed


def test_error_sessions_without_equity_are_days_but_not_returns():
    logs = track(good())
    for entry in logs[10:12]:
        del entry["equity"]
        entry["errors"] = ["stale data"]
    report = evaluate_readiness(logs, GATES)
    assert report.passed
    assert report.sessions == 41
    assert "38 daily returns" in report.gate("max_paper_volatility").detail


def test_dry_runs_and_live_logs_are_ignored():
    logs = track(good())
    noise = [
        {**e, "dry_run": True, "equity": 1.0, "errors": ["x"], "fills": []}
        for e in track(good(), start="2024-03-01")
    ]
    live = track([-0.3] * 5, broker="alpaca_live", errors_at=(1, 2, 3, 4))
    base = evaluate_readiness(logs, GATES)
    mixed = evaluate_readiness(noise + live + logs[::-1], GATES)
    assert mixed == base
    dry_only = [{**e, "dry_run": True} for e in logs]
    assert evaluate_readiness(dry_only, GATES).sessions == 0


def test_each_broker_is_its_own_equity_series():
    # Two accounts of very different size on the same days: mixing them would be a huge swing.
    paper = track(good(20))
    alpaca = track(good(20), broker="alpaca_paper", equity0=5_000.0)
    report = evaluate_readiness(paper + alpaca, LiveGates(min_paper_trading_days=21))
    assert report.passed
    assert report.sessions == 21  # days, not logs
    assert report.gate("min_paper_trades").value == 84
    assert report.gate("max_paper_drawdown_pct").value < 0.01
    only_paper = evaluate_readiness(paper + alpaca, GATES, brokers=("paper",))
    assert only_paper.sessions == 21


@pytest.mark.parametrize("n_returns", [0, 1])
def test_too_few_sessions_fail_volatility_and_sharpe_with_a_reason(n_returns):
    gates = LiveGates(min_paper_trading_days=1, min_paper_trades=1)
    report = evaluate_readiness(track(good(n_returns)), gates)
    for name in ("max_paper_volatility", "min_paper_sharpe"):
        gate = report.gate(name)
        assert not gate.passed and math.isnan(gate.value)
        assert "too few sessions" in gate.detail
    assert report.gate("max_paper_drawdown_pct").passed is (n_returns == 1)
    doc = json.loads(json.dumps(report.to_dict()))
    assert doc["gates"][3]["value"] is None
    assert doc["failed"] == list(report.failed)


def test_to_dict_is_plain_json():
    doc = evaluate_readiness(track(good()), GATES).to_dict()
    assert json.loads(json.dumps(doc)) == doc
    assert doc["passed"] is True
    assert doc["first_session"] == "2024-01-02"
    assert [g["name"] for g in doc["gates"]] == GATE_NAMES
    assert set(doc["gates"][0]) == {"name", "value", "threshold", "passed", "detail"}


def test_load_logs_reads_a_folder_and_refuses_a_missing_one(tmp_path):
    for entry in track(good(3)):
        write_daily_log(tmp_path, dt.date.fromisoformat(entry["session"]), entry)
    (tmp_path / "alpaca_live").mkdir()
    (tmp_path / "notes.txt").write_text("not a log")
    logs = load_logs(tmp_path)
    assert [e["session"] for e in logs] == [e["session"] for e in track(good(3))]
    with pytest.raises(PyFinanceError, match="is not a folder"):
        load_logs(tmp_path / "missing")


# ---------------------------------------------------------------- ramp-up
def live(n: int, *, errors_at: tuple[int, ...] = (), returns: list[float] | None = None):
    return track(
        returns if returns is not None else [0.001] * (n - 1),
        broker="alpaca_live",
        errors_at=errors_at,
    )


def test_ramp_starts_at_the_first_step():
    assert ramp_fraction([], GATES) == RampStatus(0.05, 0, 0, 20)
    assert ramp_fraction(track(good()), GATES) == RampStatus(0.05, 0, 0, 20)  # paper logs


@pytest.mark.parametrize(
    ("days", "expected"),
    [
        (19, RampStatus(0.05, 0, 19, 20)),
        (20, RampStatus(0.10, 1, 20, 40)),
        (45, RampStatus(0.25, 2, 45, 60)),
        (89, RampStatus(0.50, 3, 89, 90)),
        (95, RampStatus(1.00, 4, 95, None)),
    ],
)
def test_ramp_steps_up_with_clean_live_sessions(days, expected):
    assert ramp_fraction(live(days), GATES) == expected


def test_an_error_resets_the_ramp_to_the_first_step():
    logs = live(50, errors_at=(44,))
    assert ramp_fraction(logs, GATES) == RampStatus(0.05, 0, 5, 20)
    dry = [{**e, "dry_run": True, "errors": ["x"]} for e in live(50)]
    assert ramp_fraction(live(50) + dry, GATES).clean_days == 50


def test_a_drawdown_breach_resets_the_ramp():
    # 30 clean days, a 25% fall (breach: not clean), then 4 days still below the limit,
    # then a recovery to within 20% of the peak: the count restarts there.
    returns = [0.001] * 29 + [-0.25] + [0.0] * 4 + [0.1] + [0.001] * 4
    status = ramp_fraction(live(0, returns=returns), GATES)
    assert status == RampStatus(0.05, 0, 5, 20)


def test_a_custom_schedule_from_mapping():
    gates = LiveGates.from_mapping(
        {
            "min_paper_trading_days": 10,
            "ramp_up_schedule": [
                {"fraction": 0.1, "min_clean_days": 0},
                {"fraction": 0.5, "min_clean_days": 3},
            ],
        }
    )
    assert gates.ramp_up_schedule == (RampStep(0.1, 0), RampStep(0.5, 3))
    assert gates.min_paper_trading_days == 10 and gates.min_paper_trades == 50
    assert ramp_fraction(live(3), gates) == RampStatus(0.5, 1, 3, None)


# ---------------------------------------------------------------- gates config
def test_default_gates():
    assert LiveGates().ramp_up_schedule == DEFAULT_RAMP
    assert DEFAULT_RAMP[0] == RampStep(0.05, 0) and DEFAULT_RAMP[-1] == RampStep(1.0, 90)
    with pytest.raises(dataclasses.FrozenInstanceError):
        LiveGates().min_paper_trades = 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"min_paper_trading_days": -1}, ">= 0"),
        ({"min_paper_trades": 2.5}, "whole number"),
        ({"max_consecutive_errors": True}, "whole number"),
        ({"max_paper_drawdown_pct": 0.0}, r"\(0, 1\]"),
        ({"max_paper_drawdown_pct": 1.5}, r"\(0, 1\]"),
        ({"max_paper_volatility": -0.1}, "> 0"),
        ({"min_paper_sharpe": math.nan}, "finite"),
        ({"ramp_up_schedule": ()}, "at least one step"),
        ({"ramp_up_schedule": ((0.0, 0),)}, r"\(0, 1\]"),
        ({"ramp_up_schedule": ((1.2, 0),)}, r"\(0, 1\]"),
        ({"ramp_up_schedule": ((0.1, 5),)}, "must be 0"),
        ({"ramp_up_schedule": ((0.1, 0), (0.1, 10))}, "increase"),
        ({"ramp_up_schedule": ((0.1, 0), (0.5, 10), (0.4, 20))}, "increase"),
        ({"ramp_up_schedule": ((0.1, 0), (0.5, 10), (0.6, 10))}, "increase"),
        ({"ramp_up_schedule": ((0.1, -1),)}, ">= 0"),
        ({"ramp_up_schedule": ({"fraction": 0.1},)}, "fraction, min_clean_days"),
        ({"ramp_up_schedule": "0.1"}, "list of steps"),
    ],
)
def test_bad_gates_raise_config_error(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        LiveGates(**kwargs)


def test_from_mapping_refuses_unknown_keys_and_ignores_target():
    assert LiveGates.from_mapping({"_target_": "x", "min_paper_trades": 5}).min_paper_trades == 5
    with pytest.raises(ConfigError, match="unknown keys"):
        LiveGates.from_mapping({"min_paper_days": 5})


def test_gates_from_config_falls_back_to_defaults():
    assert gates_from_config(None) == LiveGates()
    assert gates_from_config({"live": {"broker": "paper"}}) == LiveGates()
    cfg = {"live": {"gates": {"max_consecutive_errors": 1}}}
    assert gates_from_config(cfg).max_consecutive_errors == 1


def test_format_report_names_failing_gates_and_the_ramp():
    report = evaluate_readiness(track(good(), fills_per_day=1), GATES)
    text = format_report(report, RampStatus(0.05, 0, 0, 20), verbose=True)
    assert "NOT READY: min_paper_trades fail" in text
    assert "41 fills with qty_filled > 0" in text
    assert "live ramp-up: 5% of capital (step 0)" in text
    assert "READY: every gate passes" in format_report(evaluate_readiness(track(good()), GATES))


def test_an_order_filled_after_its_session_counts_once():
    # Sent after the close of day 1 (pending in that log), filled at the next session and
    # reported there under `settled`; a partial fill on day 1 must not count it twice.
    base = {"dry_run": False, "broker": "paper", "errors": [], "equity": 100.0}
    logs = [
        {
            **base,
            "session": "2024-01-02",
            "fills": [
                {"client_order_id": "a", "qty_filled": 1.0, "status": "partially_filled"},
                {"client_order_id": "b", "qty_filled": 0.0, "status": "pending"},
            ],
        },
        {
            **base,
            "session": "2024-01-03",
            "fills": [],
            "settled": [
                {"client_order_id": "a", "qty_filled": 2.0, "status": "filled"},
                {"client_order_id": "b", "qty_filled": 3.0, "status": "filled"},
            ],
        },
    ]
    report = evaluate_readiness(logs, LiveGates(min_paper_trading_days=1, min_paper_trades=2))
    assert report.gate("min_paper_trades").value == 2
    assert report.gate("min_paper_trades").passed


def test_a_rerun_day_stays_an_error_session_and_counts_each_order_once():
    # Four error days in a row fail the gate (at most 3); the last one was rerun cleanly.
    logs = track(good(10), errors_at=(3, 4, 5, 6))
    rerun = {
        **logs[6],
        "errors": [],
        "fills": [{"client_order_id": "r1", "qty_filled": 2.0, "status": "filled"}],
    }
    first = {
        **logs[6],
        "fills": [
            {"client_order_id": "r1", "qty_filled": 1.0, "status": "partially_filled"},
            {"client_order_id": "r2", "qty_filled": 0.0, "status": "unconfirmed"},
        ],
    }
    logs[6] = json.loads(json.dumps(merge_runs([first, rerun])))
    report = evaluate_readiness(logs, GATES)
    assert report.gate("max_consecutive_errors").value == 4
    assert not report.gate("max_consecutive_errors").passed
    # 10 other sessions x 2 fills without ids, plus r1 once (r2 filled nothing).
    assert report.gate("min_paper_trades").value == 10 * 2 + 1


def test_a_breached_monitor_check_fails_its_gate_and_names_the_feature():
    logs = track([0.001] * 40)
    checks = {
        "tracking_difference": {"value": 0.001, "threshold": 0.02, "breached": False},
        "feature_drift": {
            "value": 0.9,
            "threshold": 0.25,
            "breached": True,
            "features": ["mom_20"],
        },
        "ic_decay": {"value": None, "threshold": None, "breached": None},
    }
    logs[-1] = {**logs[-1], "monitor": {"checks": checks}}
    report = evaluate_readiness(logs, GATES)
    drift = report.gate("monitor_feature_drift")
    assert not drift.passed and "mom_20" in drift.detail and drift.value == 0.9
    assert report.gate("monitor_tracking_difference").passed
    assert report.gate("monitor_ic_decay").passed  # not judged yet
    assert "monitor_feature_drift" in report.failed
    # A later monitored log where it cleared passes again; the gates can be turned off.
    logs.append({**logs[-1], "session": "2030-01-01", "monitor": {"checks": {}}})
    assert evaluate_readiness(logs, GATES).gate("monitor_feature_drift").passed
    off = evaluate_readiness(logs[:-1], LiveGates(monitor_checks=False))
    assert "monitor_feature_drift" not in [g.name for g in off.gates]
