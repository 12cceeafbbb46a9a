"""A step that waits long is kept in Redis, so it survives the worker that scheduled it.

The sweeper is switched off here (its interval is an hour): the job can only finish if
its delayed poll was in Redis, not in the memory of the worker that was killed.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import pytest

from runq.runs import keys
from runq.worker.launcher import SandboxProcess, Stack, WorkerProcess
from tests.conftest import wait_for
from tests.integration.conftest import WORKER_ENV, client_for, stack_on

pytestmark = pytest.mark.integration

ENV = {"RUNQ_SWEEP_INTERVAL": "3600", "RUNQ_POLL_INTERVAL_MAX": "30"}


@pytest.fixture(scope="module")
def stack(redis_url: str, sandbox: SandboxProcess, tmp_path_factory) -> Iterator[Stack]:
    with stack_on(redis_url, sandbox, tmp_path_factory.mktemp("delays"), env=ENV) as running:
        yield running


def test_a_long_poll_wait_survives_a_killed_worker(stack: Stack) -> None:
    assert stack.redis_url and stack.base_url
    client = client_for(stack)
    # The sandbox answers in 8 s and says so (openai-poll-after-ms): the poll waits ~8 s.
    handle = client.submit("take your time", instructions="sandbox_latency_ms: 8000")

    def parked() -> bool:
        members = client.redis.zrange(keys.delayed(), 0, -1)
        return any(m.startswith(handle.id.encode()) for m in members)

    wait_for(parked, timeout=20, what="the job's poll to wait in Redis")
    killed = stack.worker_procs[0]
    assert killed.proc is not None
    os.killpg(killed.proc.pid, signal.SIGKILL)  # no warm shutdown: nothing is handed back
    killed.proc.wait(timeout=10)
    replacement = WorkerProcess(
        stack.redis_url,
        stack.base_url,
        concurrency=2,
        env={**WORKER_ENV, **ENV},
        log_path=stack.worker_log,
    ).start()
    stack.worker_procs.append(replacement)
    result = handle.result(timeout=60)
    assert result["status"] == "succeeded", result["error"]
    # Taken out once sent (the Redis is shared with other modules' jobs: look at this one).
    assert not parked()
