"""The Hydra app's command line: every user error is one `error:` line, exit 2, nothing left."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from py_finance.errors import ConfigError
from py_finance.pipeline.experiment import check_command_line, one_line

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["model.n_estimatorz=5"], "Did you mean: 'n_estimators'"),
        (
            ["model=xgboostt"],
            "Available options in 'model': lightgbm, lstm, tcn, transformer, xgboost",
        ),
        (["model.num_leaves=many"], "config key 'model.num_leaves'"),
        (["-m", "model=lightgbm,xgboostt"], "model/xgboostt"),
        (["-m", "model=xgboost", "model.max_depth=deep"], "model.max_depth"),
        (["model=lightgbm,xgboost"], "add -m"),
        (["portfolio.top_k=abc"], "portfolio.top_k"),
    ],
)
def test_a_bad_override_is_one_line_naming_it(argv, needle):
    with pytest.raises(ConfigError) as info:
        check_command_line(argv)
    text = str(info.value)
    assert needle in text and "\n" not in text and "search path" not in text


def test_good_overrides_pass_and_a_multirun_is_reported():
    assert check_command_line(["model=xgboost", "labels=h20"]) is False
    assert check_command_line(["-m", "model=lightgbm,xgboost", "hydra/launcher=parallel"])
    # hydra's own keys and sampled ranges are left to Hydra and the sweeper
    assert check_command_line(["-m", "hydra/sweeper=tpe", "hydra.sweeper.n_trials=3"])


def test_one_line_folds_hydras_option_list():
    text = "Could not find 'model/x'\nAvailable options in 'model':\n\ta\n\tb\n"
    text += "Config search path:\n\tp"
    assert one_line(text) == "Could not find 'model/x'; Available options in 'model': a, b"


@pytest.mark.parametrize("arg", ["model.n_estimatorz=5", "model.num_leaves=many"])
def test_the_app_prints_one_error_line_exits_2_and_leaves_no_folder(arg, tmp_path):
    done = subprocess.run(
        [sys.executable, str(ROOT / "pipelines" / "experiment.py"), arg],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert done.stdout == ""
    assert list(tmp_path.iterdir()) == []


def test_optuna_workers_get_distinct_reproducible_seeds(monkeypatch) -> None:
    from py_finance.pipeline.experiment import worker_seed

    assert worker_seed(42, "a") == worker_seed(42, "a")
    seeds = {worker_seed(42, w) for w in ("a", "b", "c", "0", "1")}
    assert len(seeds) == 5
    assert worker_seed(42, "a") != worker_seed(43, "a")
    monkeypatch.setenv("PY_FINANCE_WORKER", "w7")
    assert worker_seed(42) == worker_seed(42, "w7")
    monkeypatch.delenv("PY_FINANCE_WORKER")
    assert worker_seed(42) != worker_seed(42, "w7")  # host-pid, unique to this process


def test_the_tpe_sweeper_config_resolves_a_per_worker_seed(monkeypatch) -> None:
    from omegaconf import OmegaConf

    from py_finance.pipeline.experiment import worker_seed

    node = OmegaConf.load("conf/hydra/sweeper/tpe.yaml")
    cfg = OmegaConf.create({"seed": 42, "sampler": node.sampler})
    monkeypatch.setenv("PY_FINANCE_WORKER", "1")
    first = cfg.sampler.seed
    monkeypatch.setenv("PY_FINANCE_WORKER", "2")
    assert first == worker_seed(42, "1") != cfg.sampler.seed == worker_seed(42, "2")
    assert cfg.sampler.constant_liar is True


def test_the_parallel_launcher_reports_progress_while_jobs_run():
    # Regression: with hydra/launcher=parallel a sweep printed nothing between "Launching
    # jobs" and its summary (joblib's verbose=0) for the whole run.
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base=None):
        cfg = compose("experiment", ["hydra/launcher=parallel"], return_hydra_config=True)
    assert cfg.hydra.launcher.verbose >= 10  # a line per finished job, with elapsed time


def test_sweep_workers_inherit_the_apps_warning_filters():
    # Regression: each joblib worker printed hydra-ray-launcher's deprecation warning (Hydra's
    # plugin scan imports it) in sweeps that do not use Ray: workers start without the app's
    # warning filters.
    code = (
        "import runpy, subprocess, sys\n"
        f"runpy.run_path({str(ROOT / 'pipelines/experiment.py')!r}, run_name='app')\n"
        "subprocess.run([sys.executable, '-c', "
        "'import hydra_plugins.hydra_ray_launcher._config'], check=True)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "register_new_resolver" not in done.stderr, done.stderr
