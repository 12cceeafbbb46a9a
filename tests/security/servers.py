"""Tiny HTTP servers for the security tests, each on 127.0.0.1 in a thread of the test.

`Listener` stands for a host an attacker chose: it records every request and answers
500, so a request that reaches it is seen, whatever came of it. `KeyEcho` stands for a
backend that refuses a key by quoting it, as OpenAI does (`Incorrect API key provided:
...`), so the key is in the error a worker receives.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class _Server:
    status: int = 500
    seen: list[Seen] = field(default_factory=list)
    _httpd: ThreadingHTTPServer | None = None

    def answer(self, request: Seen) -> dict[str, Any]:
        return {"error": {"message": "no", "type": "server_error", "code": None}}

    @property
    def base_url(self) -> str:
        assert self._httpd is not None
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def start(self) -> Self:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _any(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                headers = {name.lower(): value for name, value in self.headers.items()}
                body = self.rfile.read(length) if length else b""
                request = Seen(self.command, self.path, headers, body)
                server.seen.append(request)
                answer = json.dumps(server.answer(request)).encode()
                self.send_response(server.status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            do_GET = do_POST = do_DELETE = _any

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                return

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()


class Listener(_Server):
    """Records what reaches it; answers 500."""


@dataclass
class KeyEcho(_Server):
    """Answers 401 quoting the bearer key it was sent."""

    status: int = 401

    def answer(self, request: Seen) -> dict[str, Any]:
        key = request.headers.get("authorization", "").removeprefix("Bearer ")
        return {
            "error": {
                "message": f"Incorrect API key provided: {key}. You can find your API key "
                "at the dashboard.",
                "type": "invalid_request_error",
                "param": None,
                "code": "invalid_api_key",
            }
        }
