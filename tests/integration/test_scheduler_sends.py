"""The worker's scheduler sends its steps and tool calls without subscribing to results.

runq's tasks store no result (a job's result goes under the job id). In a worker
process, Celery never subscribes a sender to the sent task's result channel; in any
other (the wake runner's own process, `runq.worker.wake_process`) it does,
unless the send says `ignore_result`: a pub/sub connection, and a SUBSCRIBE and an
UNSUBSCRIBE for every tool call. A real Celery app on a Redis of the test's own (its
command counts are the whole server's) shows which it is.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from runq.runs.job import Job, JobSpec
from runq.worker.celery_app import make_app
from runq.worker.launcher import embedded_redis
from runq.worker.runtime import CeleryScheduler

pytestmark = pytest.mark.integration


def queued(client: redis.Redis, queue: str) -> int:
    """Messages in a queue, over the lists kombu keeps for its priority levels."""
    lists = [queue, *client.scan_iter(match=f"{queue}\x06\x16*")]
    return sum(int(client.llen(name)) for name in lists)


def calls(client: redis.Redis, command: str) -> int:
    return int(client.info("commandstats").get(f"cmdstat_{command}", {}).get("calls", 0))


def test_steps_and_tool_calls_are_sent_without_a_result_subscription(tmp_path: Path) -> None:
    with embedded_redis(tmp_path) as server:
        app = make_app(server.url, name="runq-scheduler-test")
        client = redis.Redis.from_url(server.url)
        try:
            scheduler = CeleryScheduler(app)
            job = Job.new(JobSpec(input="x", tools=["calculator"]))
            job.pending_calls = [
                {"call_id": f"call-{n}", "name": "calculator", "arguments": "{}"} for n in range(3)
            ]
            scheduler.dispatch_tools(job, token=1)
            scheduler.send("poll", job.id, 1)
            scheduler.send("start", job.id, 0)
            assert queued(client, "tools") == 3 and queued(client, "runs") == 2
            assert calls(client, "subscribe") == 0
            assert calls(client, "unsubscribe") == 0
        finally:
            app.close()
            client.close()
