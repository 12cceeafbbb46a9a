"""A worker's buffered metrics reach Redis when it stops (runs.metrics_buffer), for real.

Workers sum their metric increments in-process and flush them once per
RUNQ_METRICS_FLUSH_INTERVAL. Here the interval is an hour, so nothing leaves on the
timer: the figures show up only because a warm shutdown flushes them, from the main
process (threads pool: `worker_shutdown`) and from each prefork child (which exits
through `os._exit`, past `atexit`: `worker_process_shutdown`).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis

from runq.config.settings import load_settings
from runq.producers.client.sync import Client
from runq.runs.metrics import Metrics
from runq.worker.launcher import SandboxProcess, Stack
from tests.integration.conftest import WORKER_ENV, own_database

pytestmark = pytest.mark.integration

CALCULATOR_SCRIPT = json.dumps([[{"name": "calculator", "arguments": {"expression": "6*7"}}]])


def count(metrics: Metrics, series: str) -> float:
    return sum(v for (name, _), v in metrics.snapshot().items() if name == series)


@pytest.mark.parametrize("pool", ["threads", "prefork"])
def test_a_warm_shutdown_flushes_what_the_workers_summed(
    pool: str, redis_url: str, sandbox: SandboxProcess, tmp_path: Path
) -> None:
    # A database of its own: on the shared one, these workers would also run (and
    # count) a job another module left waiting.
    redis_url = own_database(redis_url, 8)
    reader = Metrics(redis.Redis.from_url(redis_url))  # unbuffered, as the gateway's
    jobs_before = count(reader, "jobs")
    tools_before = count(reader, "tool_latency_seconds_bucket")
    env = {**WORKER_ENV, "RUNQ_METRICS_FLUSH_INTERVAL": "3600"}
    stack = Stack(home=tmp_path, redis_url=redis_url, base_url=sandbox.base_url, pool=pool,
                  concurrency=2, worker_env=env, worker_log=tmp_path / "worker.log")  # fmt: skip
    with stack:
        stack.wait_ready()
        client = Client(redis_url, load_settings(redis_url=redis_url))
        handles = [client.submit(f"Question {i}?") for i in range(3)]
        script = f"sandbox_script: {CALCULATOR_SCRIPT}"
        handles.append(client.submit("Six times?", tools=["calculator"], instructions=script))
        assert [h.result(timeout=60)["status"] for h in handles] == ["succeeded"] * 4
        # An hour's interval: the jobs ended, their figures are still in the workers.
        assert count(reader, "jobs") == jobs_before
    # The stack stopped its workers (SIGTERM, a warm shutdown): each process flushed.
    assert count(reader, "jobs") - jobs_before == 4
    assert count(reader, "tool_latency_seconds_bucket") - tools_before == 1
