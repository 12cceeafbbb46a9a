"""A real webhook endpoint for the sandbox's webhook tests: stdlib HTTP on 127.0.0.1.

It records every delivery (raw body, headers, arrival time) and answers each with the
next status of a script (then ``default_status``), so a test can make the sandbox retry.
``hold`` makes it stall until released, to show a slow receiver does not slow the API.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any


@dataclass
class Received:
    body: bytes
    headers: dict[str, str]
    received_at: float
    status: int  # what the receiver answered

    @property
    def event(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed


class Receiver:
    def __init__(self, script: list[int] | None = None, default_status: int = 200) -> None:
        self.script = list(script or [])
        self.default_status = default_status
        self.hold = threading.Event()
        self.hold.set()  # set = answer at once
        self._lock = threading.Lock()
        self._received: list[Received] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/hooks/openai"

    def received(self) -> list[Received]:
        with self._lock:
            return list(self._received)

    def clear(self, script: list[int] | None = None) -> None:
        with self._lock:
            self._received.clear()
            self.script = list(script or [])

    def wait_for(
        self, done: Callable[[list[Received]], bool], timeout: float = 15.0
    ) -> list[Received]:
        """The deliveries once ``done(deliveries)``; fails after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            got = self.received()
            if done(got):
                return got
            if time.monotonic() > deadline:
                raise AssertionError(f"deliveries not as expected within {timeout}s: {got!r}")
            time.sleep(0.02)

    def _next_status(self) -> int:
        with self._lock:
            return self.script.pop(0) if self.script else self.default_status

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                receiver.hold.wait(30)
                status = receiver._next_status()
                got = Received(body, dict(self.headers.items()), time.time(), status)
                with receiver._lock:
                    receiver._received.append(got)
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass  # quiet: the test reads what it needs from `received()`

        return Handler

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.hold.set()
        self._server.shutdown()
        self._server.server_close()
