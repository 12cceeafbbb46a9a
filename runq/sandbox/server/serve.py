"""Run the sandbox with uvicorn: in the foreground (CLI) or in a thread (tests, launcher).

``SandboxServer`` binds its socket itself before uvicorn starts, so ``port=0`` gives a
free port that is known before the first request and no other process can take it.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from types import TracebackType

import uvicorn

from runq.sandbox.engine.config import SandboxConfig
from runq.sandbox.server.app import create_app


class _DropInjectedResets(logging.Filter):
    """Injected connection resets are on purpose: do not log them as crashes."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not (isinstance(exc, ConnectionResetError) and "injected" in str(exc))


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket whose connections asyncio will set to TCP_NODELAY.

    asyncio sets TCP_NODELAY only on sockets whose `proto` is IPPROTO_TCP, and a socket
    made with the default proto 0 passes that 0 on to every accepted connection. Without
    it, Nagle's algorithm holds a response's body until the client acknowledges its
    headers, and the client delays that acknowledgement: every keep-alive request took
    about 44 ms instead of under one.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


class SandboxServer:
    """A sandbox served by uvicorn; use ``start()``/``stop()`` or as a context manager."""

    def __init__(self, config: SandboxConfig | None = None, log_level: str = "warning") -> None:
        self.config = config or SandboxConfig.from_env()
        self.app = create_app(self.config)
        self.sock = bind_socket(self.config.host, self.config.port)
        self.port: int = self.sock.getsockname()[1]
        logging.getLogger("uvicorn.error").addFilter(_DropInjectedResets())
        self._server = uvicorn.Server(
            uvicorn.Config(
                self.app,
                log_level=log_level,
                access_log=False,
                timeout_graceful_shutdown=1,
                timeout_keep_alive=30,
                backlog=2048,
            )
        )
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The root URL (``http://host:port``); the API is under ``/v1``."""
        host = self.config.host
        return f"http://{f'[{host}]' if ':' in host else host}:{self.port}"

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    def serve_forever(self) -> None:
        """Serve in the calling thread until interrupted."""
        self._server.run(sockets=[self.sock])

    def start(self, timeout: float = 10.0) -> SandboxServer:
        """Serve in a daemon thread; return once it accepts connections."""
        self._thread = threading.Thread(target=self.serve_forever, name="sandbox", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the sandbox server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        with contextlib.suppress(OSError):
            self.sock.close()

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
