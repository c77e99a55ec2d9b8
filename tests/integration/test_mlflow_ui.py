"""`make ui` in a real browser: the printed address lands on the runs with the key metrics.

The UI is started as `make ui` starts it (scripts/mlflow_ui.py on the project's config, only
--root and --port differ) on a small store with two backtest runs, and opened in headless
Chromium with a fresh profile, as a first visit. MLflow 3.17 opens such a browser in GenAI
mode: its home page, no model registry in the sidebar, no metric column in any runs table.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.browser import Page, PageTimeout, chromium, render
from tests.integration.conftest import free_port

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
PARAMS = ROOT / "params.yaml"
# Two backtests whose order by Sharpe is the reverse of their creation order, so a table
# sorted by creation time (the UI's default) shows them the other way round.
RUNS = {
    "backtest-h5-lightgbm": {"sharpe": 0.81, "dsr": 0.93, "cagr": 0.071, "max_drawdown": -0.32},
    "backtest-h5-xgboost": {"sharpe": 0.64, "dsr": 0.55, "cagr": 0.052, "max_drawdown": -0.27},
}
BEST, OTHER = "backtest-h5-lightgbm", "backtest-h5-xgboost"
START_TIMEOUT_S = 180.0
# The texts of the table's header cells as laid out on screen (the grid positions its cells
# absolutely, so the DOM order is not the order a person sees): rows top down, left to right.
HEADERS_JS = (
    "Array.from(new Set(Array.from(document.querySelectorAll('[role=columnheader]'))"
    ".map(h => [h.getBoundingClientRect(), h.innerText.trim()]).filter(([, t]) => t)"
    ".sort(([a], [b]) => a.top - b.top || a.left - b.left).map(([, t]) => t)))"
)
PROBE_JS = (
    f"({{headers: {HEADERS_JS}, links: Array.from(document.querySelectorAll('a'))"
    ".map(a => [a.innerText.trim(), a.getAttribute('href')])})"
)


@dataclass(frozen=True)
class UiServer:
    base: str
    landing: str
    experiment_id: str
    log: Path


@pytest.fixture(scope="module")
def ui_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UiServer]:
    from py_finance import tracking
    from py_finance.config import instantiate, load_params
    from py_finance.tracking import ui

    chromium()  # skip (or fail under CI) before spending a minute on the server
    root = tmp_path_factory.mktemp("ui")
    cfg = instantiate(load_params(PARAMS).tracking)
    tracking.setup(cfg, root)
    for name in (OTHER, BEST):  # the better one last: newest first would show it second
        model = name.rsplit("-", 1)[1]
        with tracking.start_run(name, tags={"model": model, "horizon": "5"}):
            tracking.log_metrics(RUNS[name])
    experiment_id = ui.experiment_id(cfg.experiment)

    port = free_port()
    log = root / "ui.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    command = [sys.executable, "scripts/mlflow_ui.py", "--root", str(root)]
    command += ["--params", str(PARAMS), "--port", str(port)]
    with log.open("w") as out:
        proc = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        landing = _wait_until_serving(proc, log, f"http://127.0.0.1:{port}")
        yield UiServer(f"http://127.0.0.1:{port}", landing, experiment_id, log)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the script execs mlflow, which starts uvicorn
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _wait_until_serving(proc: subprocess.Popen[bytes], log: Path, base: str) -> str:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"`make ui` exited with {proc.returncode}:\n{log.read_text()}")
        lines = [line for line in log.read_text().splitlines() if line.startswith("open ")]
        if lines:
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=5) as response:
                    if response.status == 200:
                        return lines[0].removeprefix("open ").strip()
            except OSError:
                pass
        time.sleep(0.5)
    pytest.fail(f"the UI did not serve within {START_TIMEOUT_S:.0f} s:\n{log.read_text()}")


def open_runs_table(url: str, screenshot: Path, timeout: float = 60.0) -> Page:
    """Open ``url`` on a first visit; wait for a runs table with a sharpe column, best first."""
    landed = (
        f"{HEADERS_JS}.includes('sharpe') && document.body.innerText.includes('{OTHER}')"
        f" && document.body.innerText.indexOf('{BEST}')"
        f" < document.body.innerText.indexOf('{OTHER}')"
    )
    return render(url, wait_for=landed, probe=PROBE_JS, screenshot=screenshot, timeout=timeout)


def test_make_ui_prints_the_runs_of_the_experiment_in_model_training_mode(
    ui_server: UiServer,
) -> None:
    from py_finance.tracking import ui

    assert ui_server.landing == ui.landing_url(ui_server.base, ui_server.experiment_id)
    assert ui_server.landing.startswith(f"{ui_server.base}/#/experiments/")
    assert "workflowType=machine_learning" in ui_server.landing


def test_landing_shows_runs_with_key_metric_columns_best_sharpe_first(
    ui_server: UiServer, tmp_path: Path
) -> None:
    page = open_runs_table(ui_server.landing, tmp_path / "landing.png")

    headers = page.probe["headers"]
    for metric in ("sharpe", "dsr", "cagr", "max_drawdown"):
        assert metric in headers, (metric, headers)
    # the key metrics first, in the view's order, right after the run's name and time
    assert headers.index("sharpe") < headers.index("dsr") < headers.index("cagr")
    assert f"/experiments/{ui_server.experiment_id}/runs" in page.url
    for name, metrics in RUNS.items():
        assert name in page.text
        assert str(metrics["sharpe"]) in page.text  # the value is in the table
    assert page.text.index(BEST) < page.text.index(OTHER)
    # model-training mode: the registry is in the sidebar, GenAI's home and prompts are not
    links = {text: href for text, href in page.probe["links"]}
    assert links.get("Model registry") == "#/models", links
    assert "Prompts" not in links, links
    assert "Welcome to MLflow" not in page.text
    assert page.screenshot is not None and page.screenshot.stat().st_size > 10_000


def test_registry_is_one_click_from_the_landing_and_opens(
    ui_server: UiServer, tmp_path: Path
) -> None:
    from py_finance.tracking import ui

    landing = open_runs_table(ui_server.landing, tmp_path / "landing.png")
    links = {text: href for text, href in landing.probe["links"]}
    assert f"{ui_server.base}/{links['Model registry']}" == ui.registry_url(ui_server.base)

    page = render(
        ui.registry_url(ui_server.base),
        wait_for="document.body.innerText.includes('Registered Models')",
        screenshot=tmp_path / "registry.png",
    )
    assert "Create Model" in page.text


def test_bare_address_of_the_old_make_ui_lands_in_genai_mode(
    ui_server: UiServer, tmp_path: Path
) -> None:
    # What `make ui` used to leave the user with (http://127.0.0.1:5000): the check above
    # must tell it apart, or it proves nothing.
    with pytest.raises(PageTimeout) as missed:
        open_runs_table(f"{ui_server.base}/", tmp_path / "bare.png", timeout=20)

    page = missed.value.page
    assert "Welcome to MLflow" in page.text
    assert "Model registry" not in page.text
    assert "sharpe" not in page.text


def test_runs_without_the_saved_view_have_no_metric_column(
    ui_server: UiServer, tmp_path: Path
) -> None:
    # The experiment's own runs page in model-training mode (what the model-training tag
    # alone gives) still shows no metric: the columns come from the view.
    experiment = ui_server.experiment_id
    runs = f"{ui_server.base}/#/experiments/{experiment}/runs?workflowType=machine_learning"
    with pytest.raises(PageTimeout) as missed:
        open_runs_table(runs, tmp_path / "runs.png", timeout=20)

    page = missed.value.page
    assert BEST in page.text and OTHER in page.text
    assert "sharpe" not in page.probe["headers"], page.probe["headers"]
