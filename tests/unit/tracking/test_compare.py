"""Comparing runs: one chart and one table from runs of a real (temporary) MLflow store."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from py_finance import tracking
from py_finance.tracking.sweeps import SWEEP_TAG

ROOT = Path(__file__).resolve().parents[3]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _client():
    import mlflow

    return mlflow.MlflowClient()


def _equity(variant: str, drift: float, seed: int, n: int = 300) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    index = pd.bdate_range("2010-01-04", periods=n, name="session")
    strat = np.cumprod(1.0 + drift + 0.01 * rng.standard_normal(n))
    bench = np.cumprod(1.0 + 0.0002 + 0.008 * np.random.default_rng(0).standard_normal(n))
    return pd.DataFrame({variant: strat, "benchmark": bench}, index=index)


def _backtest_run(
    name: str,
    metrics: dict[str, float],
    *,
    variant: str = "regime_aware",
    drift: float = 0.0003,
    seed: int = 1,
    params: dict[str, str] | None = None,
    parent_run_id: str | None = None,
    extra_tags: dict[str, str] | None = None,
) -> str:
    tags = {"variant": variant, "horizon": "5", "model": "lightgbm", **(extra_tags or {})}
    with tracking.start_run(name, tags=tags, parent_run_id=parent_run_id) as run_id:
        tracking.log_params(params or {"portfolio.top_k": "10"})
        tracking.log_metrics(metrics)
        tracking.log_frame(_equity(variant, drift, seed), "equity.parquet")
    return run_id


@pytest.fixture
def three_runs(store) -> list[str]:
    """Three backtests, logged worst Sharpe first, differing in ``portfolio.top_k``."""
    tag = uuid.uuid4().hex[:6]
    figures = [(0.31, 0.04, 5), (1.24, 0.15, 20), (0.82, 0.09, 10)]
    return [
        _backtest_run(
            f"cmp-{tag}-{i}",
            {"sharpe": sharpe, "cagr": cagr, "max_drawdown": -0.2, "dsr": 0.5, "n_trials": 3.0},
            drift=cagr / 252,
            seed=i,
            params={"portfolio.top_k": str(top_k), "seed": "7"},
        )
        for i, (sharpe, cagr, top_k) in enumerate(figures)
    ]


def _artifact_names(run_id: str) -> set[str]:
    return {f.path for f in _client().list_artifacts(run_id)}


def test_log_comparison_logs_a_png_chart_and_the_table_on_the_parent(
    store, three_runs, tmp_path: Path
) -> None:
    import mlflow
    from matplotlib.image import imread

    parent = tracking.create_parent_run(f"sweep-{uuid.uuid4().hex[:6]}")
    table = tracking.log_comparison(parent, three_runs)

    assert {"compare.png", "compare.md"} <= _artifact_names(parent)
    png = Path(
        mlflow.artifacts.download_artifacts(
            run_id=parent, artifact_path="compare.png", dst_path=str(tmp_path)
        )
    )
    assert png.read_bytes().startswith(PNG_SIGNATURE)
    pixels = imread(png)
    assert pixels.shape[0] > 300 and pixels.shape[1] > 500
    md = Path(
        mlflow.artifacts.download_artifacts(
            run_id=parent, artifact_path="compare.md", dst_path=str(tmp_path)
        )
    ).read_text()
    rows = [line for line in md.splitlines() if "cmp-" in line]
    assert [three_runs[1], three_runs[2], three_runs[0]] == [
        next(r for r in three_runs if r in row) for row in rows
    ]
    assert list(table["run_id"]) == [three_runs[1], three_runs[2], three_runs[0]]
    # the compared runs themselves got nothing
    assert "compare.png" not in _artifact_names(three_runs[0])


def test_metrics_table_is_best_sharpe_first_with_nan_for_missing_metrics(store) -> None:
    tag = uuid.uuid4().hex[:6]
    low = _backtest_run(f"tab-{tag}-low", {"sharpe": 0.2, "cagr": 0.03, "oos_rank_ic": 0.02})
    high = _backtest_run(f"tab-{tag}-high", {"sharpe": 0.9, "cagr": 0.11, "dsr": 0.97})
    none = _backtest_run(f"tab-{tag}-none", {"cagr": 0.05})

    table = tracking.metrics_table([low, none, high])

    assert list(table["run_id"]) == [high, low, none]
    # A DSR is shown only deflated for the trials its research question holds now: these
    # runs name no question, so the logged 0.97 (of an unknown count) is not shown.
    assert list(table.columns) == ["run_id", "sharpe", "cagr", "rank_ic"]
    assert table.loc[table["run_id"] == low, "rank_ic"].item() == pytest.approx(0.02)
    assert math.isnan(table.loc[table["run_id"] == none, "sharpe"].item())
    md = tracking.table_markdown(table)
    assert md.splitlines()[0] == "| run | run_id | sharpe | cagr | rank_ic |"
    assert "n/a" in md


def test_dsr_columns_are_deflated_for_the_trials_of_the_question_now(store) -> None:
    from py_finance.tracking.promotion import trial_tags

    question = f"q-{uuid.uuid4().hex[:8]}"
    runs = []
    # Logged as the ledger grew: 1, 2 then 3 trials. The table deflates all for 3.
    for i, top_k in enumerate(("5", "10", "20")):
        tags = trial_tags(question, {"portfolio.top_k": top_k}, "regime_aware")
        runs.append(
            _backtest_run(
                f"dsr-{question}-{i}",
                {"sharpe": 0.5 + i / 10, "dsr": 0.99, "n_trials": float(i + 1)},
                drift=0.0004 + i * 0.0001,
                seed=i,
                params={"portfolio.top_k": top_k},
                extra_tags=tags,
            )
        )
    table = tracking.metrics_table(runs)
    assert "n_trials" not in table.columns and table.attrs["n_trials"] == 3
    assert (table["dsr"] < 0.99).all()
    assert ((table["dsr"] >= 0.0) & (table["dsr"] <= 1.0)).all()
    md = tracking.table_markdown(table)
    assert md.rstrip().endswith("DSR deflated for the 3 trials its research question holds now.")
    assert md.count("trials") == 1


def test_legend_labels_name_the_params_that_differ(store, three_runs) -> None:
    curves = tracking.load_curves(three_runs)

    assert [c.run_id for c in curves] == three_runs
    labels = [c.label for c in curves]
    assert labels[0].endswith("(top_k=5)"), labels
    assert "seed" not in labels[0]  # the same in every run
    assert len(set(labels)) == 3


def test_sweep_job_curve_is_its_candidate_backtest_and_summary_is_best_first(store) -> None:
    tag = uuid.uuid4().hex[:6]
    from py_finance.tracking.promotion import candidate_returns, gate_evidence, trial_tags

    parent = tracking.create_parent_run(f"sweep-{tag}")
    question = f"q-{tag}"
    jobs = {}
    for name, sharpe in (("slow", 0.4), ("fast", 1.1)):
        job_tags = {SWEEP_TAG: "job", "model": name}
        with tracking.start_run(f"job-{tag}-{name}", tags=job_tags, parent_run_id=parent) as job:
            tracking.log_metrics({"sharpe": sharpe, "dsr": sharpe / 2, "n_trials": 4.0})
            _backtest_run("backtest-h5-baseline", {"sharpe": 0.0}, variant="baseline", seed=8)
            _backtest_run(
                "backtest-h5-regime_aware",
                {"sharpe": sharpe},
                seed=9,
                extra_tags=trial_tags(question, {"model": name}, "regime_aware"),
            )
        jobs[name] = job
    failed = tracking.record_failed_run(f"job-{tag}-broken", {}, {SWEEP_TAG: "job"})
    _client().set_tag(failed, "mlflow.parentRunId", parent)

    (curve,) = tracking.load_curves([jobs["fast"]])
    expected = _equity("regime_aware", 0.0003, 9)["regime_aware"]
    assert curve.run_id == jobs["fast"]
    assert curve.source_run_id != jobs["fast"]
    np.testing.assert_allclose(curve.equity.to_numpy(), expected.to_numpy())

    summary = tracking.sweep_summary(parent)
    assert list(summary["run_id"]) == [jobs["fast"], jobs["slow"], failed]
    assert list(summary["status"]) == ["FINISHED", "FINISHED", "FAILED"]
    # Deflated again, from the candidate's curve, for the 2 trials its question holds now
    # (not the 4 the jobs logged).
    assert summary.attrs["n_trials"] == 2 and "n_trials" not in summary.columns
    now = gate_evidence(
        candidate_returns(expected), float("nan"), n_trials=2, trial_sharpes=[0.4, 1.1]
    )
    assert summary["dsr"].iloc[0] == pytest.approx(now.dsr)
    assert tracking.sweep_job_ids(parent) == [jobs["slow"], jobs["fast"]]
    assert tracking.latest_sweep() == parent


def test_run_without_curves_is_a_user_error(store) -> None:
    from py_finance.errors import PyFinanceError

    with tracking.start_run(f"no-equity-{uuid.uuid4().hex[:6]}") as run_id:
        tracking.log_metrics({"sharpe": 1.0})
    with pytest.raises(PyFinanceError, match=r"has no equity\.parquet"):
        tracking.load_curves([run_id])


def _params_file(store, tmp_path: Path) -> Path:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["tracking"].update(
        tracking_uri=store.uri,
        artifact_location=(store.root / "mlruns").resolve().as_uri(),
        experiment=store.cfg.experiment,
    )
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "GIT_PYTHON_REFRESH": "quiet"}
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "compare_runs.py"), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_cli_with_an_unknown_run_prints_one_error_line_and_exits_2(
    store, three_runs, tmp_path: Path
) -> None:
    params = _params_file(store, tmp_path)
    proc = _cli(three_runs[0], "no-such-run", "--params", str(params), cwd=tmp_path)

    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "error: unknown run 'no-such-run': no run has this id, and no run of experiment "
        f"'{store.cfg.experiment}' has this name (list runs with `make ui`)"
    ]
    assert not (tmp_path / "outputs").exists()


def _load_cli():
    import importlib.util

    spec = importlib.util.spec_from_file_location("compare_runs", ROOT / "scripts/compare_runs.py")
    assert spec is not None and spec.loader is not None
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    return cli


def test_cli_writes_the_chart_and_prints_the_table(store, three_runs, tmp_path: Path) -> None:
    cli = _load_cli()
    params = _params_file(store, tmp_path)
    parent = tracking.create_parent_run(f"sweep-{uuid.uuid4().hex[:6]}")

    cli.main(
        [*three_runs, "--params", str(params), "--out", str(tmp_path / "cmp"), "--log-to", parent]
    )

    assert (tmp_path / "cmp" / "compare.png").read_bytes().startswith(PNG_SIGNATURE)
    assert (tmp_path / "cmp" / "compare.md").read_text().count("cmp-") == 3
    assert {"compare.png", "compare.md"} <= _artifact_names(parent)


def test_cli_sweep_latest_compares_the_newest_sweeps_jobs(
    store, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tag = uuid.uuid4().hex[:6]
    parent = tracking.create_parent_run(f"sweep-{tag}")
    with tracking.start_run(f"job-{tag}", tags={SWEEP_TAG: "job"}, parent_run_id=parent) as job:
        tracking.log_metrics({"sharpe": 0.7})
        _backtest_run("backtest-h5-regime_aware", {"sharpe": 0.7}, seed=4)
    params = _params_file(store, tmp_path)

    _load_cli().main(["--sweep", "latest", "--params", str(params), "--out", str(tmp_path)])

    rows = [line for line in capsys.readouterr().out.splitlines() if job in line]
    assert len(rows) == 1 and f"job-{tag}" in rows[0]
    assert (tmp_path / "compare.png").is_file()


def test_a_run_name_that_several_runs_share_is_an_error_listing_them(store) -> None:
    # Regression: a name named "the newest run of that name", silently: after the docs' flows
    # six runs were called backtest-h5-baseline and an old slice's run was compared.
    name = f"shared-{uuid.uuid4().hex[:6]}"
    old = _backtest_run(name, {"sharpe": 0.4}, params={"portfolio.top_k": "5"}, seed=1)
    new = _backtest_run(name, {"sharpe": 0.9}, params={"portfolio.top_k": "10"}, seed=2)

    with pytest.raises(tracking.AmbiguousRunError) as err:
        tracking.resolve_run(name)
    message = str(err.value)
    assert "\n" not in message
    assert f"run name '{name}' names 2 runs" in message
    assert message.index(new) < message.index(old)  # newest first
    assert f"{new} (" in message and "top_k=10" in message and "top_k=5" in message
    assert "UTC" in message and "--latest" in message
    assert tracking.resolve_run(name, latest=True).info.run_id == new
    assert tracking.resolve_run(old).info.run_id == old  # an id is never ambiguous


def test_cli_with_a_shared_run_name_fails_in_one_line_unless_latest(
    store, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    name = f"shared-{uuid.uuid4().hex[:6]}"
    for seed in (1, 2):
        _backtest_run(name, {"sharpe": 0.5 + seed}, seed=seed)
    newest = _backtest_run(f"{name}-other", {"sharpe": 0.3}, seed=3)
    params = _params_file(store, tmp_path)
    cli = _load_cli()

    with pytest.raises(SystemExit) as stop:
        cli.main([name, newest, "--params", str(params), "--out", str(tmp_path / "a")])
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: run name '{name}' names 2 runs")
    assert not (tmp_path / "a").exists()

    cli.main([name, newest, "--latest", "--params", str(params), "--out", str(tmp_path / "b")])
    assert (tmp_path / "b" / "compare.md").read_text().count(name) == 2


def test_legend_labels_round_a_float_drawn_with_17_digits() -> None:
    # Regression: an Optuna draw went into legends and the sweep table with all its digits.
    from types import SimpleNamespace

    from py_finance.tracking.compare import run_labels

    def run(run_id: str, rate: str) -> SimpleNamespace:
        params = {"model.learning_rate": rate, "seed": "7"}
        return SimpleNamespace(
            info=SimpleNamespace(run_id=run_id, run_name="job-lightgbm-h5-fixed"),
            data=SimpleNamespace(tags={"model": "lightgbm"}, params=params),
        )

    labels = run_labels([run("a" * 32, "0.051234567890123456"), run("b" * 32, "0.1")])
    assert labels == [
        "job-lightgbm-h5-fixed (learning_rate=0.05123)",
        "job-lightgbm-h5-fixed (learning_rate=0.1)",
    ]
