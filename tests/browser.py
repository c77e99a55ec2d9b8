"""Headless Chromium for tests: render a page as a person sees it, read its text, screenshot it.

Chromium runs headless with a fresh, empty profile (no cookies, no local storage: a first
visit), on the flags a closed network needs, and is driven over the DevTools protocol on a
pipe (``--remote-debugging-pipe``), so no Python package beyond the standard library is used.

API
---
``render(target, *, wait_for=None, timeout=60.0, screenshot=None, width=1600, height=1000)``
    Open ``target`` (an ``http://127.0.0.1:...`` URL, any URL, or a local HTML file as a
    ``Path``), wait until the page has loaded and, when given, until the JavaScript
    expression ``wait_for`` is truthy (polled every 0.25 s), then return a :class:`Page`:
    ``url`` (the address after any client-side redirect), ``title``, ``text`` (what
    ``document.body.innerText`` shows: the rendered text, scripts and styles excluded),
    ``html`` (the rendered DOM, ``document.documentElement.outerHTML``) and ``screenshot``
    (the PNG written to the ``screenshot`` path, the viewport of ``width`` x ``height`` CSS
    pixels, or None). ``page.evaluate``-style checks go in ``wait_for`` or in ``probe``.
    When ``wait_for`` stays falsy for ``timeout`` seconds it raises :class:`PageTimeout`,
    whose ``page`` holds what was rendered by then (screenshot included): print
    ``err.page.text`` in the failure message.
``render(..., probe="<js expression>")``
    Also evaluates ``probe`` once the wait is over and returns its JSON value in
    ``page.probe`` (e.g. the texts of a table's header cells).
``chromium()``
    The Chromium executable. Where none is installed it skips the calling test with the
    reason and the install command, except under ``CI=true``, where it fails: CI installs
    Chromium (``.ci/run``), so a missing browser there is an error, not a skip.

Example (an offline HTML report)::

    from tests.browser import render

    def test_report_renders(tmp_path):
        page = render(tmp_path / "report.html", screenshot=tmp_path / "report.png",
                      wait_for="document.querySelectorAll('table tr').length > 3")
        assert "Sharpe" in page.text

Each call starts and ends its own browser (about 1 s), so tests stay independent; the
profile directory is a temporary one removed afterwards.
"""

from __future__ import annotations

import base64
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
INSTALL_HINT = "apt-get install -y chromium"
# Without these a browser on a machine with no outside network stalls or crashes: it tries to
# reach Google's services (sync, component updates, QUIC), and root cannot sandbox.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--mute-audio",
)
_POLL_S = 0.25


@dataclass(frozen=True, slots=True)
class Page:
    """What the browser showed: address, title, visible text, DOM and screenshot."""

    url: str
    title: str
    text: str
    html: str
    screenshot: Path | None
    probe: Any = None


class PageTimeout(AssertionError):
    """``wait_for`` never became true; ``page`` is what was rendered by the deadline."""

    def __init__(self, message: str, page: Page) -> None:
        super().__init__(message)
        self.page = page


class BrowserError(RuntimeError):
    """Chromium failed to start, crashed, or answered a command with an error."""


def chromium() -> str:
    """The Chromium executable; skips the test where none is installed (fails under CI)."""
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    reason = f"headless Chromium not installed (tried {', '.join(CANDIDATES)}): {INSTALL_HINT}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true and {reason}", pytrace=False)
    pytest.skip(reason)


def render(
    target: str | Path,
    *,
    wait_for: str | None = None,
    probe: str | None = None,
    timeout: float = 60.0,
    screenshot: Path | None = None,
    width: int = 1600,
    height: int = 1000,
) -> Page:
    """Open ``target`` in a fresh headless Chromium and return what it rendered.

    Parameters
    ----------
    target
        A URL, or a local HTML file (a ``Path``, opened as ``file://``).
    wait_for
        JavaScript expression polled after the load event until it is truthy.
    probe
        JavaScript expression evaluated once at the end; its JSON value is ``Page.probe``.
    timeout
        Seconds for the load and ``wait_for`` together.
    screenshot
        Where to write a PNG of the viewport (parents are created).
    width, height
        Viewport, CSS pixels.

    Raises
    ------
    PageTimeout
        ``wait_for`` was still falsy at the deadline (``err.page`` has the page then).
    BrowserError
        Chromium did not start or a protocol command failed.
    """
    url = Path(target).resolve().as_uri() if isinstance(target, Path) else target
    with _Browser(chromium(), width, height) as browser:
        deadline = time.monotonic() + timeout
        browser.navigate(url, deadline)
        ok = wait_for is None or browser.poll(wait_for, deadline)
        page = browser.snapshot(screenshot, probe)
    if not ok:
        raise PageTimeout(
            f"{url}: `{wait_for}` still false after {timeout:.0f} s; the page showed:\n"
            + page.text[:2000],
            page,
        )
    return page


class _Browser:
    """One Chromium process and one page session on the DevTools pipe (fds 3 and 4)."""

    def __init__(self, executable: str, width: int, height: int) -> None:
        self._executable = executable
        self._size = (width, height)
        self._next_id = 0
        self._buffer = b""
        self._session: str | None = None

    def __enter__(self) -> _Browser:
        self._profile = tempfile.mkdtemp(prefix="chromium-profile-")
        self._log = tempfile.TemporaryFile()
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()
        width, height = self._size
        args = [
            self._executable,
            *FLAGS,
            f"--user-data-dir={self._profile}",
            f"--window-size={width},{height}",
            "--remote-debugging-pipe",
            "about:blank",
        ]

        def wire_fds() -> None:  # in the child: the pipe's ends as fds 3 and 4
            os.dup2(to_chrome_r, 3)
            os.dup2(from_chrome_w, 4)

        self._proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=self._log,
            preexec_fn=wire_fds,  # dup2 only: safe after fork
            close_fds=False,
        )
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        try:
            targets = self._call("Target.getTargets", deadline=time.monotonic() + 30)
            page = next(t for t in targets["targetInfos"] if t["type"] == "page")
            attached = self._call(
                "Target.attachToTarget", {"targetId": page["targetId"], "flatten": True}
            )
            self._session = attached["sessionId"]
            self._call("Page.enable")
            self._call(
                "Emulation.setDeviceMetricsOverride",
                {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
            )
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if self._proc.poll() is None:
                self._session = None
                self._send("Browser.close")
                self._proc.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            self._proc.kill()
            self._proc.wait()
        finally:
            for fd in (self._to_chrome, self._from_chrome):
                try:
                    os.close(fd)
                except OSError:
                    pass
            self._log.close()
            shutil.rmtree(self._profile, ignore_errors=True)

    def navigate(self, url: str, deadline: float) -> None:
        result = self._call("Page.navigate", {"url": url}, deadline=deadline)
        if result.get("errorText"):
            raise BrowserError(f"{url}: {result['errorText']}")
        # about:blank is complete too: wait for the new document
        self.poll("location.href !== 'about:blank' && document.readyState === 'complete'", deadline)

    def poll(self, expression: str, deadline: float) -> bool:
        while True:
            if self.evaluate(f"Boolean({expression})"):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(_POLL_S)

    def evaluate(self, expression: str) -> Any:
        result = self._call(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
        )
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            error = details.get("exception", {}).get("description") or details.get("text")
            raise BrowserError(f"`{expression}` raised {error}")
        return result["result"].get("value")

    def snapshot(self, screenshot: Path | None, probe: str | None) -> Page:
        state = self.evaluate(
            "({url: location.href, title: document.title,"
            " text: document.body ? document.body.innerText : '',"
            " html: document.documentElement.outerHTML})"
        )
        if screenshot is not None:
            png = self._call("Page.captureScreenshot", {"format": "png"})["data"]
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            screenshot.write_bytes(base64.b64decode(png))
        return Page(
            url=state["url"],
            title=state["title"],
            text=state["text"],
            html=state["html"],
            screenshot=screenshot,
            probe=None if probe is None else self.evaluate(probe),
        )

    def _send(self, method: str, params: dict[str, Any] | None = None) -> int:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if self._session is not None and not method.startswith(("Target.", "Browser.")):
            message["sessionId"] = self._session
        os.write(self._to_chrome, json.dumps(message).encode() + b"\0")
        return self._next_id

    def _call(
        self, method: str, params: dict[str, Any] | None = None, *, deadline: float | None = None
    ) -> dict[str, Any]:
        """Send one command and wait for its answer (events in between are dropped)."""
        wanted = self._send(method, params)
        deadline = time.monotonic() + 30 if deadline is None else max(deadline, time.monotonic())
        while True:
            for message in self._messages(deadline, method):
                if message.get("id") == wanted:
                    if "error" in message:
                        raise BrowserError(f"{method}: {message['error']}")
                    result: dict[str, Any] = message.get("result", {})
                    return result

    def _messages(self, deadline: float, method: str) -> list[dict[str, Any]]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self._from_chrome], [], [], max(left, 0))
            if not ready:
                raise BrowserError(f"Chromium did not answer {method} in time{self._tail()}")
            chunk = os.read(self._from_chrome, 1 << 20)
            if not chunk:
                raise BrowserError(f"Chromium exited during {method}{self._tail()}")
            self._buffer += chunk
        *complete, self._buffer = self._buffer.split(b"\0")
        return [json.loads(raw) for raw in complete]

    def _tail(self) -> str:
        self._log.seek(0)
        lines = self._log.read().decode(errors="replace").strip().splitlines()
        return ":\n" + "\n".join(lines[-15:]) if lines else ""
