"""Shared fixtures: a real Redis from the project's launcher, and helpers to wait on conditions.

A test that needs Redis gets it from `redis_url`; if the launcher cannot start one the
fixture errors, so the test fails (never skips) — under CI and everywhere else.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from runq.worker.launcher import EmbeddedRedis

T = TypeVar("T")

# The checkout's example tools, for every worker the tests start (they inherit the
# environment), as a user of a checkout sets it; an installed runq loads no tools by default.
os.environ.setdefault("RUNQ_TOOL_MODULES", "examples.tools")


# The session's Redis databases, one owner each (a worker on a database runs every job
# waiting there, so two modules sharing one would run each other's jobs):
#   0 the shared stacks; 1 test_launcher; 3 test_ask; 4 test_event_hub; 5 test_aio;
#   6 unit tests no worker reads; 7 test_gateway (heartbeats); 8 test_metrics_flush;
#   9 test_gateway_fuzz; 10 test_webhook_endpoints_live; 11 test_gateway_limits_live;
#   12, 13, 14, 15 test_webhook_mode.


@pytest.fixture(autouse=True)
def fresh_settings() -> Iterator[None]:
    """Each test reads the environment it set: `get_settings()` is cached per process,
    and a CLI test run after one that cached other settings would see those."""
    from runq.config.settings import get_settings

    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def runq_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("runq-home")


@pytest.fixture(scope="session")
def redis_server(runq_home: Path) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(runq_home).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_url(redis_server: EmbeddedRedis) -> str:
    return redis_server.url


def wait_for(
    condition: Callable[[], T | None],
    *,
    timeout: float = 30.0,
    interval: float = 0.05,
    what: str = "condition",
) -> T:
    """Return the first truthy value of `condition()`, or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def imported_modules(stderr: str) -> set[str]:
    """The modules a `python -X importtime` process imported, from its stderr."""
    return {
        line.rsplit("|", 1)[1].strip()
        for line in stderr.splitlines()
        if line.startswith("import time:")
    }
