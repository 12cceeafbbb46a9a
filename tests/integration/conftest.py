"""Integration fixtures: a real Redis, the sandbox over HTTP, and real Celery workers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from config.settings import load_settings
from producers.api import Client
from worker.launcher import SandboxProcess, Stack

# The example tools, and a slow one for tests that act while a tool round runs.
TOOL_MODULES = "examples.tools,tests.integration.slow_tools"


@pytest.fixture(scope="session")
def sandbox() -> Iterator[SandboxProcess]:
    proc = SandboxProcess(latency_ms=200).start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def stack(redis_url: str, sandbox: SandboxProcess, tmp_path_factory) -> Iterator[Stack]:
    """One worker (concurrency 2) on the session Redis and the module's sandbox."""
    home = tmp_path_factory.mktemp("stack")
    with Stack(
        home=home,
        redis_url=redis_url,
        base_url=sandbox.base_url,
        concurrency=2,
        worker_log=home / "worker.log",
        worker_env={
            "RUNQ_TEST_MODE": "1",
            "RUNQ_LOG_FORMAT": "json",
            "RUNQ_TOOL_MODULES": TOOL_MODULES,
        },
    ) as running:
        yield running


@pytest.fixture(scope="module")
def client(stack: Stack) -> Client:
    assert stack.redis_url is not None
    return Client(stack.redis_url, load_settings(redis_url=stack.redis_url))


def worker_log(stack: Stack) -> str:
    path = stack.worker_log
    return Path(path).read_text() if path else ""
