"""The experiment helpers behind `make exps`, `make exp` and `make clean` (scripts/)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.conftest import script

ROOT = Path(__file__).resolve().parents[2]


def _rev(rev: str, name: str | None, horizon: int, top_k: int, sharpe: float) -> dict:
    summary = {
        "model": "lightgbm",
        "sharpe": sharpe,
        "cagr": 0.0973,
        "max_dd": -0.1198,
        "dsr": 0.816,
        "n_trials": 2,
    }
    return {
        "rev": rev,
        "name": name,
        "data": {
            "rev": rev,
            "params": {
                "params.yaml": {
                    "data": {
                        "labels": {"horizon": horizon},
                        "portfolio": {"top_k": top_k, "rebalance_every": horizon},
                        "model": {"_target_": "LightGBMModel", "n_estimators": 20},
                        "tracking": {"experiment": "py-finance"},
                    }
                }
            },
            "metrics": {f"data/backtest/h{horizon}/summary.json": {"data": summary}},
        },
    }


def test_make_exps_shows_the_figures_of_every_horizon_within_120_columns():
    # Regression: once two metric files existed (an h20 experiment beside h5), DVC named the
    # columns `path:metric` and the Makefile's `--drop 'data/.*'` removed every figure.
    base = _rev("workspace", None, 5, 4, 0.823)
    commit = _rev("d9f9dd66786a196c4dfd902c6d7218bd6b991370", "main", 5, 4, 0.823)
    h20 = _rev("775cc766" + "0" * 32, "irate-soul", 20, 4, 0.634)
    k3 = _rev("c070be53" + "0" * 32, "webby-gird", 5, 3, 0.821)
    commit["experiments"] = [{"revs": [k3]}, {"revs": [h20]}]
    text = script("show_exps").table([base, commit])
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 120, text
    assert lines[0].split()[:8] == [
        "Experiment",
        "model",
        "h",
        "Sharpe",
        "CAGR",
        "MaxDD",
        "DSR",
        "trials",
    ]
    rows = {line.split()[1 if line.startswith(("├", "└")) else 0]: line for line in lines[1:]}
    assert set(rows) == {"workspace", "main", "webby-gird", "irate-soul"}, text
    assert "0.63" in rows["irate-soul"] and " 20 " in rows["irate-soul"]
    assert all("lightgbm" in r and "9.7%" in r and "0.816" in r for r in rows.values())
    assert "top_k=3" in rows["webby-gird"] and "top_k=4" in rows["irate-soul"]
    assert "rebalance_every" not in text and "experiment=" not in text


def test_make_exps_fits_any_number_of_changed_params_in_120_columns():
    revs = [_rev("workspace", None, 5, 4, 0.5)]
    long = revs[0]["data"]["params"]["params.yaml"]["data"]
    long["risk"] = {f"knob_{i}": 0.1 + i for i in range(30)}
    other = json.loads(json.dumps(revs[0]))
    other["rev"], other["name"] = "a" * 40, "main"
    other["data"]["params"]["params.yaml"]["data"]["risk"] = {f"knob_{i}": 1.5 for i in range(30)}
    text = script("show_exps").table([*revs, other])
    assert max(len(line) for line in text.splitlines()) <= 120, text


def test_exp_run_takes_every_set_param_spelling():
    exp = script("exp_run")
    argv = [
        "-S",
        "model=xgboost",
        "--set-param",
        "labels=h20",
        "-Sportfolio.top_k=3",
        "--set-param=params.yaml:seed=7",
        "--queue",
        "-n",
        "name",
    ]
    assert exp.set_params(argv) == ["model=xgboost", "labels=h20", "portfolio.top_k=3", "seed=7"]


def test_exp_run_refuses_a_typo_in_one_line_before_dvc_runs(capsys):
    exp = script("exp_run")
    with pytest.raises(SystemExit) as stop:
        exp.main(["-S", "model=xgboost", "-S", "portfolio.top_kk=3"])
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    assert "portfolio.top_kk" in err[0] and "Did you mean: 'top_k'?" in err[0]


def test_clean_forgets_only_the_cached_outputs_of_the_stages_that_log_to_mlflow(tmp_path):
    # Regression: after `make clean`, DVC brought backtest and promote back from its cache
    # without running them: an empty MLflow store, no champion, "promoted nothing".
    md5 = {s: f"{i:02x}" + "ab" * 15 for i, s in enumerate(("ingest", "backtest", "promote"))}
    lock = {
        "schema": "2.0",
        "stages": {
            stage: {"cmd": "x", "outs": [{"path": f"data/{stage}", "hash": "md5", "md5": h}]}
            for stage, h in md5.items()
        },
    }
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump(lock))
    objects = tmp_path / ".dvc/cache/files/md5"
    for h in md5.values():
        (objects / h[:2]).mkdir(parents=True, exist_ok=True)
        (objects / h[:2] / h[2:]).write_text("cached")
    (tmp_path / ".dvc/cache/runs/aa").mkdir(parents=True)

    assert script("forget_logged_stages").forget(tmp_path) == 2
    assert (objects / md5["ingest"][:2] / md5["ingest"][2:]).exists()
    assert not (objects / md5["backtest"][:2] / md5["backtest"][2:]).exists()
    assert not (objects / md5["promote"][:2] / md5["promote"][2:]).exists()
    assert not (tmp_path / ".dvc/cache/runs").exists()
