"""The live monitor: replay equals the paper broker, shortfall, drift and IC decay alerts."""

from __future__ import annotations

import numpy as np
import pytest

from py_finance.live.monitor import MonitorSettings, psi, replay_session
from tests.unit.live.simtrack import simulate


def test_replay_of_a_held_book_is_its_pnl_at_the_fill_close():
    rep = replay_session(
        {"A": 10.0, "B": 5.0},
        100.0,
        {"A": 10.0, "B": 20.0},
        {"A": 11.0, "B": 19.0},
        None,
        cost_bps=10.0,
    )
    assert rep.start == pytest.approx(300.0, rel=1e-12)
    assert rep.end == pytest.approx(100.0 + 110.0 + 95.0, rel=1e-12)


def test_replay_trades_the_targets_at_the_fill_prices_with_the_cost_model():
    rep = replay_session({}, 1000.0, {"A": 10.0}, {"A": 12.0}, {"A": 0.5}, cost_bps=100.0)
    # 500 of A bought at 12 with 1% fees: equity 1000 - 5.
    assert rep.end == pytest.approx(995.0, rel=1e-12)
    assert rep.targets_equal


def test_a_next_open_replay_trades_at_the_open_and_marks_at_the_close():
    rep = replay_session(
        {},
        1000.0,
        {"A": 10.0},
        {"A": 13.0},
        {"A": 0.5},
        cost_bps=0.0,
        fill="next_open",
        open_prices={"A": 12.0},
    )
    assert rep.end == pytest.approx(500.0 + 500.0 / 12.0 * 13.0, rel=1e-12)
    # At the close instead: 500 of A bought at 13, worth 500 at the close.
    at_close = replay_session({}, 1000.0, {"A": 10.0}, {"A": 13.0}, {"A": 0.5}, cost_bps=0.0)
    assert at_close.end == pytest.approx(1000.0, rel=1e-12)


@pytest.mark.slow
def test_paper_broker_with_the_backtest_fill_model_equals_its_replay_over_45_sessions(tmp_path):
    track = simulate(tmp_path, n_sessions=45, every=3)
    replays = [e["monitor"]["replay"] for e in track.logs[1:]]
    assert len(replays) == 44
    assert sum(r["traded"] for r in replays) >= 14
    for r in replays:
        assert r["targets_equal"] is True
        assert abs(r["live_pnl"] - r["replay_pnl"]) <= 1e-9 * r["live_start"], r
        assert r["replay_start"] == pytest.approx(r["live_start"], rel=1e-12)
    assert abs(replays[-1]["cumulative_tracking_difference"]) < 1e-9
    assert not [k for _, k in track.alerts if k == "tracking_difference"]


def test_a_replay_that_held_the_wrong_book_would_show_a_tracking_difference(tmp_path):
    # The test above can fail: a book shifted by one share shows in the replay.
    rep = replay_session({"A": 11.0}, 0.0, {"A": 10.0}, {"A": 12.0}, None, cost_bps=0.0)
    live_pnl = 10.0 * (12.0 - 10.0)
    assert abs(live_pnl - (rep.end - rep.start)) > 1.0


@pytest.mark.slow
def test_25_bps_of_slippage_is_measured_and_alerted_once(tmp_path):
    track = simulate(tmp_path, n_sessions=30, slippage_bps=25.0, cost_bps=10.0)
    measured = [
        e["monitor"]["shortfall"]["bps_vs_model"]
        for e in track.logs[1:]
        if e["monitor"]["shortfall"]["bps_vs_model"] is not None
    ]
    assert len(measured) >= 5
    assert all(abs(b - 25.0) <= 1.0 for b in measured), measured
    shortfall = [k for _, k in track.alerts if k == "shortfall"]
    assert shortfall == ["shortfall"]
    # The 5 bps the paper broker charges by default stay under the cost model: no alert.
    calm = simulate(tmp_path / "calm", n_sessions=30, slippage_bps=5.0, cost_bps=10.0)
    assert not [k for _, k in calm.alerts if k == "shortfall"]


@pytest.mark.slow
def test_a_feature_shifted_from_some_session_on_raises_one_drift_alert_naming_it(tmp_path):
    track = simulate(tmp_path, n_sessions=60, shift_from=30, shift_feature="ret_5")
    drift = [(s, k) for s, k in track.alerts if k.startswith("feature_drift")]
    assert [k for _, k in drift] == ["feature_drift:ret_5"]
    first = track.logs[30]["session"]
    assert drift[0][0].isoformat() >= first
    assert track.logs[-1]["monitor"]["drift"]["top"][0][0] == "ret_5"


@pytest.mark.slow
def test_an_unshifted_track_raises_no_drift_alert(tmp_path):
    track = simulate(tmp_path, n_sessions=60)
    assert not [k for _, k in track.alerts if "drift" in k]


@pytest.mark.slow
def test_shuffled_scores_raise_ic_decay_within_60_sessions_intact_ones_none_over_250(tmp_path):
    intact = simulate(tmp_path / "intact", n_sessions=250, every=1000)
    assert not [k for _, k in intact.alerts if k == "ic_decay"]
    ics = [e["monitor"]["ic"]["value"] for e in intact.logs[2:]]
    assert np.nanmean(np.array(ics, dtype=float)) > 0.02
    start = 80
    shuffled = simulate(tmp_path / "shuffled", n_sessions=250, every=1000, shuffle_from=start)
    decay = [s for s, k in shuffled.alerts if k == "ic_decay"]
    assert len(decay) == 1
    sessions = [e["session"] for e in shuffled.logs]
    assert start < sessions.index(decay[0].isoformat()) <= start + 60


def test_psi_is_zero_for_the_reference_and_grows_with_a_shift():
    ref = [0.1] * 10
    assert psi(ref, [10] * 10) == pytest.approx(0.0, abs=1e-12)
    assert psi(ref, [0, 0, 0, 0, 0, 10, 10, 20, 30, 30]) > 0.25


def test_monitor_settings_refuse_unknown_keys():
    from py_finance.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown keys"):
        MonitorSettings.from_mapping({"max_psi": 1})
