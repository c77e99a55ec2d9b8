"""Tracking helpers that need no MLflow store: import hygiene, params, URIs, git tags."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from py_finance.tracking import (
    default_requirements,
    flatten_params,
    git_sha,
    resolve_artifact_location,
    resolve_tracking_uri,
    standard_tags,
)


def test_importing_tracking_does_not_import_mlflow() -> None:
    code = (
        "import sys, py_finance.tracking, py_finance.tracking.registry, "
        "py_finance.tracking.promotion, py_finance.tracking.runs\n"
        "print(sorted(m for m in sys.modules if m == 'mlflow' or m.startswith('mlflow.')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert done.stdout.strip() == "[]", done.stdout


def test_flatten_params_dots_nested_keys_and_stringifies_values() -> None:
    @dataclass
    class Costs:
        bps: float = 5.0

    flat = flatten_params(
        {
            "risk": {"max_position": 0.1, "caps": {"sector": 0.3}},
            "costs": Costs(),
            "horizons": [1, 5, 20],
            "empty": {},
            "note": None,
        }
    )
    assert flat == {
        "risk.max_position": "0.1",
        "risk.caps.sector": "0.3",
        "costs.bps": "5.0",
        "horizons": "[1, 5, 20]",
        "empty": "{}",
        "note": "None",
    }


def test_flatten_params_truncates_long_values_and_cleans_keys() -> None:
    flat = flatten_params({"universe": "X" * 7000, "model": {"a=b@c": 1}})
    assert len(flat["universe"]) == 6000
    assert flat["model.a_b_c"] == "1"


def test_flatten_params_resolves_omegaconf_interpolations() -> None:
    omegaconf = pytest.importorskip("omegaconf")
    cfg = omegaconf.OmegaConf.create(
        {"horizon": 5, "model": {"name": "lgbm", "label": "fwd_${horizon}d"}, "xs": [1, 2]}
    )
    assert flatten_params(cfg) == {
        "horizon": "5",
        "model.name": "lgbm",
        "model.label": "fwd_5d",
        "xs": "[1, 2]",
    }


def test_relative_sqlite_uri_resolves_against_root(tmp_path: Path) -> None:
    assert resolve_tracking_uri("sqlite:///mlflow.db", tmp_path) == (
        f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    )
    assert resolve_tracking_uri("sqlite:////abs/x.db", tmp_path) == "sqlite:////abs/x.db"
    assert resolve_tracking_uri("http://mlflow:5000", tmp_path) == "http://mlflow:5000"
    assert resolve_artifact_location("mlruns", tmp_path) == (tmp_path.resolve() / "mlruns").as_uri()
    assert resolve_artifact_location("s3://bucket/a", tmp_path) == "s3://bucket/a"


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def test_git_sha_reports_commit_dirty_and_unknown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    assert git_sha(repo) == "unknown"  # no commit yet
    (repo / "a.txt").write_text("a")
    _git(repo, "add", "a.txt")
    _git(repo, "commit", "-q", "-m", "a")
    head = _git(repo, "rev-parse", "HEAD")
    assert git_sha(repo) == head
    (repo / "a.txt").write_text("b")
    assert git_sha(repo) == f"{head}-dirty"
    outside = tmp_path / "not-a-repo"
    outside.mkdir()
    # GIT_CEILING_DIRECTORIES stops git from finding a repository above tmp_path.
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    assert git_sha(outside) == "unknown"


def test_git_sha_is_unknown_without_git(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert git_sha(tmp_path) == "unknown"


def test_standard_tags_carry_contract_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    tags = standard_tags(
        horizon=5, model="lightgbm", regime_policy="hmm2", data_hash="abc123", cwd=tmp_path
    )
    assert tags == {
        "horizon": "5",
        "model": "lightgbm",
        "regime_policy": "hmm2",
        "data_hash": "abc123",
        "git_sha": "unknown",
    }


def test_default_requirements_pin_installed_versions() -> None:
    import importlib.metadata

    pins = default_requirements()
    assert f"pandas=={importlib.metadata.version('pandas')}" in pins
    assert f"scikit-learn=={importlib.metadata.version('scikit-learn')}" in pins
    assert {p.split("==")[0] for p in pins} <= {
        "lightgbm",
        "scikit-learn",
        "pandas",
        "numpy",
        "cloudpickle",
    }
