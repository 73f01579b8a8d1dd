"""A loopback HTTP server that records webhook POSTs (for the demo and the tests).

It can be scripted: ``script`` lists the statuses to answer in turn (then
``status`` for every later request), ``hold`` keeps every request waiting
until it is set (a slow receiver), and ``port`` lets a test bring a receiver
up on the address a "down" one had.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class ReceivedWebhook:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    raw: bytes  # the exact bytes, for signature checks
    answered: int = 200


@dataclass
class WebhookReceiver:
    """Answers POSTs from ``script``, then with ``status``; keeps every request and the ones answered 2xx."""

    status: int = 200
    script: list[int] = field(default_factory=list)
    answer_headers: dict[str, str] = field(default_factory=dict)
    hold: threading.Event | None = None
    port: int = 0
    received: list[ReceivedWebhook] = field(default_factory=list)
    attempts: list[ReceivedWebhook] = field(default_factory=list)
    _arrived: threading.Condition = field(default_factory=threading.Condition)
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the receiver first"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/hooks"

    def _next_status(self) -> int:
        with self._arrived:
            return self.script.pop(0) if self.script else self.status

    def _record(self, hook: ReceivedWebhook, into: list[ReceivedWebhook]) -> None:
        with self._arrived:
            into.append(hook)
            self._arrived.notify_all()

    def start(self) -> WebhookReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                raw = self.rfile.read(length)
                hook = ReceivedWebhook(self.path, dict(self.headers), json.loads(raw or b"{}"), raw)
                hook.answered = receiver._next_status()
                receiver._record(hook, receiver.attempts)
                if receiver.hold is not None:
                    receiver.hold.wait()
                if hook.answered < 300:  # before answering: once the sender sees 2xx, it is here
                    receiver._record(hook, receiver.received)
                self.send_response(hook.answered)
                for name, value in receiver.answer_headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def wait_for(self, count: int, timeout: float) -> list[ReceivedWebhook]:
        """The requests answered 2xx, once there are ``count`` of them (or ``timeout`` passed)."""
        with self._arrived:
            self._arrived.wait_for(lambda: len(self.received) >= count, timeout=timeout)
            return list(self.received)

    def wait_for_attempts(self, count: int, timeout: float) -> list[ReceivedWebhook]:
        """Every request that arrived, whatever it was answered, once there are ``count``."""
        with self._arrived:
            self._arrived.wait_for(lambda: len(self.attempts) >= count, timeout=timeout)
            return list(self.attempts)

    def stop(self) -> None:
        if self.hold is not None:
            self.hold.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
