"""The Makefile's experiment and cleaning flows as a new user runs them, in a fresh copy.

`make exp` refuses a typo in one line and runs an experiment without chatter, `make exps`
shows the figures of every horizon in 120 columns, `promote.py --apply` leaves `dvc status`
clean, and `make clean` then `make run` really runs again: the stages that log to MLflow
run, the new store gets its champion, and the Optuna study is gone with the runs.
"""

from __future__ import annotations

import shutil

import pytest

from tests.integration._clone import run, snapshot

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        shutil.which("git") is None or shutil.which("make") is None, reason="git and make"
    ),
]
MAKE = ["make", "--no-print-directory"]


def test_experiments_and_clean_then_run_as_a_new_user_runs_them(tmp_path):
    repo = snapshot(tmp_path / "repo")
    first = run(repo, [*MAKE, "run"], timeout=1800)
    assert "Use `dvc push`" not in first.stdout  # no remote: nothing to push to
    assert "skipping the live dry run" not in first.stdout
    run(repo, "git add dvc.lock && git -c user.name=t -c user.email=t@e.invalid commit -qm lock")

    # A typo: one error line (make adds its own), nothing rewritten.
    typo = run(repo, [*MAKE, "exp", "ARGS=-S portfolio.top_kk=3"], check=False)
    assert typo.returncode == 2, typo.stdout + typo.stderr
    errors = [line for line in typo.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Did you mean: 'top_k'?" in errors[0], typo.stderr
    assert len(typo.stderr.strip().splitlines()) <= 2, typo.stderr  # + make's "Error 2"
    assert run(repo, ["git", "status", "--porcelain"]).stdout == ""

    # An experiment on another horizon: no warning that is not about it.
    exp = run(repo, [*MAKE, "exp", "ARGS=-S labels=h20"], timeout=1800)
    said = exp.stdout + exp.stderr
    for chatter in ("No file hash info", "Hydra plugins scanner", "register_new_resolver"):
        assert chatter not in said, said[-3000:]

    # Two metrics files now (h5 and h20): the figures are still there, in 120 columns.
    table = run(repo, [*MAKE, "exps"]).stdout
    lines = table.splitlines()
    assert max(len(line) for line in lines) <= 120, table
    assert lines[0].split()[:8] == [
        *("Experiment", "model", "h", "Sharpe", "CAGR", "MaxDD", "DSR", "trials")
    ], table
    h20 = [line for line in lines[1:] if line.split()[3:4] == ["20"] or " 20 " in line]
    assert h20 and "lightgbm" in h20[0] and "%" in h20[0], table
    assert sum("lightgbm" in line and "%" in line for line in lines[1:]) >= 3, table

    # Back to the committed pipeline; a deliberate promotion leaves nothing for DVC to redo.
    run(repo, "git checkout params.yaml dvc.lock && .venv/bin/dvc checkout")
    run(repo, [".venv/bin/python", "scripts/promote.py", "--apply"])
    assert "up to date" in run(repo, [".venv/bin/dvc", "status"]).stdout

    (repo / "outputs").mkdir(exist_ok=True)
    (repo / "outputs" / "optuna.db").write_bytes(b"a study whose runs are about to go")
    run(repo, [*MAKE, "clean"])
    assert not (repo / "outputs" / "optuna.db").exists()
    assert not (repo / "mlflow.db").exists()

    again = run(repo, [*MAKE, "run"], timeout=1800)
    for stage in ("backtest", "promote"):  # they log to MLflow: run, not restored
        assert f"Running stage '{stage}'" in again.stdout, again.stdout[-3000:]
    assert "skipping the live dry run" not in again.stdout, again.stdout[-3000:]
    assert "@champion is v1" in again.stdout, again.stdout[-3000:]
    assert run(repo, ["git", "status", "--porcelain"]).stdout == ""
