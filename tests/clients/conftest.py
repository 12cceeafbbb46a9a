"""Real client libraries against the sandbox: one server for the session, no network.

Every library here is pointed at the sandbox explicitly, and the environment turns off
what each would send elsewhere (Agents SDK tracing, LangSmith, litellm's telemetry and
model-cost download, Logfire, Hugging Face). The autouse ``loopback_only`` fixture
then proves it: a connection to anything but this machine fails the test.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from runq.sandbox.engine.config import SandboxConfig
from runq.sandbox.server.serve import SandboxServer

# Before any client library is imported: they read these at import time.
OFFLINE_ENV = {
    "OPENAI_AGENTS_DISABLE_TRACING": "1",
    "OPENAI_API_KEY": "sk-sandbox",
    "LANGSMITH_TRACING": "false",
    "LANGCHAIN_TRACING_V2": "false",
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    "LITELLM_TELEMETRY": "False",
    "LOGFIRE_SEND_TO_LOGFIRE": "false",
    "HF_HUB_OFFLINE": "1",
    "DO_NOT_TRACK": "1",
    "OTEL_SDK_DISABLED": "true",
}
os.environ.update(OFFLINE_ENV)
for leak in ("LANGSMITH_API_KEY", "LANGCHAIN_API_KEY", "LOGFIRE_TOKEN"):
    os.environ.pop(leak, None)

LOOPBACK = ("127.", "::1", "localhost")


@pytest.fixture(scope="session")
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(SandboxConfig(port=0, latency_ms=20)) as server:
        os.environ["OPENAI_BASE_URL"] = server.base_url  # a client left unpointed lands here
        yield server


@pytest.fixture
def base_url(sandbox: SandboxServer) -> str:
    return sandbox.base_url


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """Refuse, and fail the test on, any connection that leaves this machine."""
    attempts: list[Any] = []
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex

    def allowed(address: Any) -> bool:
        host = address[0] if isinstance(address, tuple) else str(address)
        return self_path(address) or str(host).startswith(LOOPBACK)

    def self_path(address: Any) -> bool:
        return isinstance(address, (str, bytes))  # a Unix socket

    def connect(sock: socket.socket, address: Any) -> None:
        if not allowed(address):
            attempts.append(address)
            raise ConnectionRefusedError(f"tests/clients: no network ({address!r})")
        real_connect(sock, address)

    def connect_ex(sock: socket.socket, address: Any) -> int:
        if not allowed(address):
            attempts.append(address)
            return 111
        return real_connect_ex(sock, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    yield attempts
    assert not attempts, f"a client tried to leave this machine: {attempts}"
