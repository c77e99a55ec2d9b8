"""tests/browser.py: headless Chromium on a local page, and what happens without a browser."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests import browser

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PAGE = """<!doctype html>
<html><head><title>report</title><style>td { color: red }</style>
<script>
setTimeout(() => { document.getElementById("late").textContent = "Sharpe 0.81"; }, 300)
</script>
</head><body><h1>Backtest</h1><table><tr><td>a</td></tr><tr><td>b</td></tr></table>
<p id="late"></p></body></html>
"""


def test_without_chromium_a_test_skips_with_the_install_command(monkeypatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.delenv("CI", raising=False)

    with pytest.raises(pytest.skip.Exception, match="apt-get install -y chromium"):
        browser.chromium()


def test_without_chromium_a_test_fails_under_ci(monkeypatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setenv("CI", "true")

    with pytest.raises(pytest.fail.Exception, match="CI=true"):
        browser.chromium()


def test_render_waits_for_the_page_and_returns_text_dom_probe_and_png(tmp_path: Path) -> None:
    html = tmp_path / "report.html"
    html.write_text(PAGE)

    page = browser.render(
        html,
        wait_for="document.getElementById('late').textContent !== ''",
        probe="document.querySelectorAll('td').length",
        screenshot=tmp_path / "shots" / "report.png",
        width=800,
        height=600,
    )

    assert page.url == html.resolve().as_uri()
    assert page.title == "report"
    assert [line for line in page.text.splitlines() if line] == [
        "Backtest",
        "a",
        "b",
        "Sharpe 0.81",
    ]
    assert "color: red" not in page.text  # rendered text, not the source
    assert '<p id="late">Sharpe 0.81</p>' in page.html
    assert page.probe == 2
    assert page.screenshot == tmp_path / "shots" / "report.png"
    png = page.screenshot.read_bytes()
    assert png.startswith(PNG_SIGNATURE)
    assert int.from_bytes(png[16:20], "big") == 800  # IHDR width: the viewport asked for


def test_render_raises_with_the_page_when_the_wait_never_ends(tmp_path: Path) -> None:
    html = tmp_path / "report.html"
    html.write_text(PAGE)

    with pytest.raises(browser.PageTimeout, match="never") as timeout:
        browser.render(html, wait_for="document.title === 'never'", timeout=2)

    assert "Backtest" in timeout.value.page.text
