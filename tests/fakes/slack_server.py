"""A loopback Slack incoming-webhook server that records every POST.

``with FakeSlack() as slack: slack.webhook_url`` is a URL shaped like Slack's
(``/services/T.../B.../token``); ``slack.posts`` holds each request's path and JSON body.
Scripted replies (status, delay) are served in order, then ``default`` answers (200 "ok").
Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TOKEN_PATH = "/services/T0FAKETEAM/B0FAKEHOOK/fakeWebhookToken0123456789"


@dataclass
class SlackReply:
    status: int = 200
    body: str = "ok"
    delay_s: float = 0.0


@dataclass
class SlackPost:
    path: str
    headers: dict[str, str]
    raw: bytes
    json: Any = field(default=None)


class FakeSlack:
    def __init__(self, path: str = TOKEN_PATH, default: SlackReply | None = None) -> None:
        self.path = path
        self.replies: list[SlackReply] = []
        self.default = default or SlackReply()
        self.posts: list[SlackPost] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    doc = json.loads(raw)
                except ValueError:
                    doc = None
                with fake._lock:
                    fake.posts.append(SlackPost(self.path, dict(self.headers.items()), raw, doc))
                    reply = fake.replies.pop(0) if fake.replies else fake.default
                if self.path != fake.path:
                    reply = SlackReply(404, "no_service")
                if reply.delay_s:
                    fake._stop.wait(reply.delay_s)
                data = reply.body.encode()
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "text/plain")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:  # the client gave up (timeout test)
                    pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def base_url(self) -> str:
        port = self._server.server_address[1]
        return f"http://127.0.0.1:{port}"

    @property
    def webhook_url(self) -> str:
        return self.base_url + self.path

    def script(self, *replies: SlackReply) -> FakeSlack:
        with self._lock:
            self.replies.extend(replies)
        return self

    def texts(self) -> list[str]:
        return [p.json["text"] for p in self.posts if isinstance(p.json, dict)]

    def __enter__(self) -> FakeSlack:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()
