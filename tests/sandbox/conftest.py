"""Fixtures: a real sandbox served by uvicorn in a thread, and official clients."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest
from sandbox_helpers import admin

from runq.sandbox.engine.config import SandboxConfig
from runq.sandbox.server.serve import SandboxServer

LATENCY_MS = 150
CLIENT_TIMEOUT = SandboxConfig().code_wall_seconds + 30
"""The clients wait longer than a code-interpreter run may take (the sandbox's own
wall-clock limit), with room for a loaded machine: a test fails on what the sandbox
answered, never because a busy CI host ran matplotlib slower than a fixed 10 s."""


@pytest.fixture(scope="session")
def server() -> Iterator[SandboxServer]:
    config = SandboxConfig(port=0, latency_ms=LATENCY_MS, hang_seconds=5.0)
    with SandboxServer(config) as srv:
        yield srv


@pytest.fixture(autouse=True)
def _fresh_state(request: pytest.FixtureRequest) -> None:
    """Each test starts from an empty sandbox (only when it uses the shared server)."""
    if "server" in request.fixturenames:
        srv = request.getfixturevalue("server")
        admin(srv.url, "/sandbox/reset", "POST")


@pytest.fixture
def client(server: SandboxServer) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=server.base_url, api_key="sk-test", max_retries=0, timeout=CLIENT_TIMEOUT
    )


@pytest.fixture
def aclient(server: SandboxServer) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        base_url=server.base_url, api_key="sk-test", max_retries=0, timeout=CLIENT_TIMEOUT
    )
