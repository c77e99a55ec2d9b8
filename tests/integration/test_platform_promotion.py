"""The promotion lifecycle as a user meets it through DVC: experiments, a sweep, temporary and
queued experiments, and the README's way back, in a fresh clone on a small slice."""

from __future__ import annotations

import json
import shutil
import time

import pytest

from tests.conftest import OPEN_GATE, SMALL_SEQUENCE
from tests.integration._clone import SMALL_CONF, run, snapshot

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("git") is None, reason="git is needed for a DVC repository"),
]
DVC = ".venv/bin/dvc"
PY = ".venv/bin/python"
# The slice without its tree sizes: the sequence model's come as `-S` overrides.
TREE_SIZES = "model:\n  n_estimators: 20\n  learning_rate: 0.05\n"
assert TREE_SIZES in SMALL_CONF
SEQUENCE_SLICE = SMALL_CONF.replace(TREE_SIZES, "")


def _store(repo):
    """Runs and registry of the clone's own tracking store."""
    import mlflow

    from py_finance import tracking
    from py_finance.tracking.config import TrackingConfig

    tracking.setup(TrackingConfig(), root=repo)
    return mlflow.MlflowClient()


def _champion(repo, name):
    from py_finance import tracking

    _store(repo)
    return tracking.get_alias_version(name, tracking.CHAMPION)


def _deployment(repo, horizon=5):
    from py_finance.config import build, load_params
    from py_finance.pipeline.context import Context

    return Context(build(load_params(repo / "params.yaml")), repo).deployment.replace(
        "-h5", f"-h{horizon}"
    )


def test_experiments_and_a_sweep_leave_the_champion_and_what_the_paper_day_trades(tmp_path):
    repo = snapshot(tmp_path / "repo")
    run(repo, [DVC, "repro"])
    # The slice's results are the committed baseline the README's way back returns to.
    run(repo, "git add dvc.lock && git -c user.name=t -c user.email=t@e.invalid commit -qm lock")
    name = _deployment(repo)
    first = _champion(repo, name)
    assert first is not None, "the fresh clone's first model is the champion"
    day = run(repo, [PY, "scripts/run_live_loop.py", "--dry-run", "--as-of", "last-session"])
    assert f"{name} v{first}" in day.stdout

    for override in ("model=xgboost", "labels=h20", "portfolio.top_k=3"):
        exp = run(repo, [DVC, "exp", "run", "-S", override])
        assert "Running stage 'promote'" in exp.stdout
    run(repo, [PY, "pipelines/experiment.py", "-m", "model=lightgbm,xgboost"])
    # The README's way back.
    run(repo, "git checkout params.yaml dvc.lock && .venv/bin/dvc checkout")

    assert _champion(repo, name) == first
    assert _champion(repo, _deployment(repo, 20)) is None, "an h20 experiment deployed"
    file = json.loads((repo / "data/promotion/h5.json").read_text())
    assert file["champion"] == first
    said = run(repo, [PY, "scripts/promote.py", "--has-champion"]).stdout
    assert f"is version {first}" in said
    day = run(repo, [PY, "scripts/run_live_loop.py", "--dry-run", "--as-of", "last-session"])
    assert f"{name} v{first}" in day.stdout
    assert run(repo, "git status --porcelain --untracked-files=no").stdout == ""


def test_temporary_and_queued_experiments_log_to_the_projects_store(tmp_path):
    from py_finance import tracking

    repo = snapshot(tmp_path / "repo")
    run(repo, [DVC, "repro"])
    client = _store(repo)
    question = json.loads((repo / "data/backtest/h5/model_ref.json").read_text())["question"]
    before = tracking.count_trials(question).n_trials

    temp = run(repo, [DVC, "exp", "run", "--temp", "-S", "model=xgboost"])
    assert ".dvc/tmp/exps" not in temp.stdout + temp.stderr, "a store inside the copy"
    assert tracking.count_trials(question).n_trials == before + 2  # its two variants

    for override in ("portfolio.top_k=3", "portfolio.top_k=2"):
        run(repo, [DVC, "exp", "run", "--queue", "-S", override])
    # DVC's queue workers run `dvc` from PATH: the documented command puts the venv's there.
    run(repo, 'PATH="$PWD/.venv/bin:$PATH" .venv/bin/dvc queue start -j 2')
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        status = run(repo, [DVC, "queue", "status"]).stdout
        if "Queued" not in status and "Running" not in status:
            break
        time.sleep(5)
    assert "Failed" not in status, status
    assert tracking.count_trials(question).n_trials == before + 6
    top_ks = {
        r.data.params.get("portfolio.top_k")
        for r in client.search_runs(
            [e.experiment_id for e in client.search_experiments()],
            filter_string=f"tags.`trial.question` = '{question}'",
        )
    }
    assert {"2", "3", "4"} <= top_ks
    stray = [p for p in (repo / ".dvc" / "tmp").rglob("mlflow.db")]
    assert stray == [], stray
    # Experiments propose: the champion is still the first model.
    assert _champion(repo, _deployment(repo)) == "1"


def test_dvc_exp_run_with_a_tcn_promotes_it_and_the_paper_day_trades_it(tmp_path):
    # `dvc exp run -S model=tcn` on a fresh clone: every stage through promote, where the TCN
    # passes the gate (one the slice passes) and proposes itself; `promote.py --apply` makes
    # it the first champion, and the paper dry run trades it with the MC-dropout std sizing
    # the book (uncertainty weighting).
    import mlflow

    repo = snapshot(tmp_path / "repo", slice_conf=SEQUENCE_SLICE)
    weighting = ["portfolio.weighting=uncertainty", "risk.max_position=0.5", "risk.max_sector=1.0"]
    sets = ["model=tcn", *SMALL_SEQUENCE, *weighting, *OPEN_GATE]
    exp = run(repo, [DVC, "exp", "run", *[a for s in sets for a in ("-S", s)]])
    for stage in ("train", "backtest", "report", "promote"):
        assert f"Running stage '{stage}'" in exp.stdout, stage
    decision = json.loads((repo / "data/promotion/h5.json").read_text())
    assert decision["decision"] == "challenger", decision["reasons"]
    name = _deployment(repo)
    assert _champion(repo, name) is None, "an experiment promoted itself"
    applied = run(repo, [PY, "scripts/promote.py", "--apply"])
    version = decision["challenger"]
    assert f"@champion before: none; after: {version}" in applied.stdout
    assert _champion(repo, name) == version

    day = run(repo, [PY, "scripts/run_live_loop.py", "--dry-run", "--as-of", "last-session"])
    assert f"{name} v{version}" in day.stdout
    log = day.stdout.split("log: ", 1)[1].splitlines()[0].strip()
    payload = json.loads((repo / log).read_text())
    assert payload["status"] == "ok", payload.get("errors")
    run_id = payload["model_run_id"]
    params = mlflow.MlflowClient().get_run(run_id).data.params
    assert params["model._target_"].endswith("TCNModel"), params.get("model._target_")
    assert params["portfolio.weighting"] == "uncertainty"
    weights = payload["target_weights"]
    assert weights and len({round(w, 9) for w in weights.values()}) > 1, weights
