"""Integration fixtures: a real Redis, the sandbox over HTTP, and real Celery workers."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from runq.config.settings import load_settings
from runq.producers.client.sync import Client
from runq.worker.launcher import SandboxProcess, Stack

# The example tools, and a slow one for tests that act while a tool round runs.
TOOL_MODULES = "examples.tools,tests.integration.slow_tools"


@pytest.fixture(scope="session")
def sandbox() -> Iterator[SandboxProcess]:
    proc = SandboxProcess(latency_ms=200).start()
    try:
        yield proc
    finally:
        proc.stop()


# What every test worker runs with; a module's own stack may add to it.
# The bearer token the `gateway` fixture's /metrics asks for (an operator's, no tenant's).
METRICS_TOKEN = "metrics-scraper-token"
WORKER_ENV = {"RUNQ_TEST_MODE": "1", "RUNQ_LOG_FORMAT": "json", "RUNQ_TOOL_MODULES": TOOL_MODULES}


def own_database(redis_url: str, db: int) -> str:
    """The session's Redis, database `db` (its owner is listed in tests/conftest.py),
    emptied first: a module whose figures or reuse must be its own alone. On the shared
    database 0 a worker runs every job left waiting there, and `runq ask` reuses what an
    earlier module asked of the same corpus; which modules ran before depends on the
    order pytest (or pytest-xdist) gives them."""
    import redis

    url = redis_url.rsplit("/", 1)[0] + f"/{db}"
    redis.Redis.from_url(url).flushdb()
    return url


@contextmanager
def stack_on(
    redis_url: str,
    sandbox: SandboxProcess,
    home: Path,
    *,
    env: dict[str, str] | None = None,
    tool_workers: int = 0,
) -> Iterator[Stack]:
    """Workers (concurrency 2) on the session's Redis and sandbox, logging to one file."""
    with Stack(
        home=home,
        redis_url=redis_url,
        base_url=sandbox.base_url,
        concurrency=2,
        tool_workers=tool_workers,
        worker_log=home / "worker.log",
        worker_env={**WORKER_ENV, **(env or {})},
    ) as running:
        # The first test submits at once: its tools must be in the workers' catalog.
        yield running.wait_ready()


def client_for(stack: Stack) -> Client:
    assert stack.redis_url is not None
    return Client(stack.redis_url, load_settings(redis_url=stack.redis_url))


@pytest.fixture(scope="module")
def stack(redis_url: str, sandbox: SandboxProcess, tmp_path_factory) -> Iterator[Stack]:
    """One worker for both queues, for the module."""
    with stack_on(redis_url, sandbox, tmp_path_factory.mktemp("stack")) as running:
        yield running


@pytest.fixture(scope="module")
def client(stack: Stack) -> Client:
    return client_for(stack)


def worker_log(stack: Stack) -> str:
    path = stack.worker_log
    return Path(path).read_text() if path else ""


@pytest.fixture(scope="module")
def gateway(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`runq gateway` on the module's stack; tokens `token-a` (alice) and `token-b` (bob)."""
    from tests.integration.gateway_process import start_gateway, stop

    tmp = tmp_path_factory.mktemp("gateway")
    proc, base = start_gateway(
        str(stack.redis_url), tmp, tokens="token-a:alice,token-b:bob",
        env={"RUNQ_METRICS_TOKEN": METRICS_TOKEN},
    )  # fmt: skip
    try:
        yield base
    finally:
        stop(proc)
