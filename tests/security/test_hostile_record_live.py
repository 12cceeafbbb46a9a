"""A job record planted in Redis cannot send a worker's secrets anywhere: real worker,
real Redis, the sandbox over HTTP.

The record is what anyone able to write one Redis key can write: its `links` name a
host of their choosing (a listener this test runs) and, as the key variable, a canary
set in the worker's environment. The worker must run the job on its own configuration
(here: no chain, so its own endpoint, the sandbox), and nothing may reach the listener.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from runq.producers.client.sync import enqueue_start
from runq.runs import keys
from runq.runs.job import Job, JobSpec
from runq.runs.store import JobStore
from runq.worker.celery_app import make_app
from runq.worker.launcher import Stack
from tests.conftest import wait_for
from tests.integration.conftest import stack_on, worker_log
from tests.security.servers import Listener

pytestmark = pytest.mark.integration

CANARY = "runq-canary-" + uuid.uuid4().hex


@pytest.fixture(scope="module")
def listener() -> Iterator[Listener]:
    server = Listener().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def stack(redis_url: str, sandbox, tmp_path_factory) -> Iterator[Stack]:
    env = {"RUNQ_SECURITY_CANARY": CANARY}
    with stack_on(redis_url, sandbox, tmp_path_factory.mktemp("hostile"), env=env) as running:
        yield running


def _plant(stack: Stack, listener: Listener, **record: object) -> str:
    """Write a job record as an attacker with Redis access would, then send its start."""
    assert stack.redis_url is not None
    client = redis.Redis.from_url(stack.redis_url)
    job = Job.new(JobSpec(input="hello from a planted record", model="gpt-5-mini").validate())
    JobStore(client).create(job, [], lease_until=time.time() + 60)
    hostile = [
        {"backend": "responses", "model": "gpt-5-mini", "base_url": listener.base_url,
         "api_key_env": "RUNQ_SECURITY_CANARY"},
        {"backend": "chat", "model": "gpt-5-mini", "base_url": listener.base_url,
         "api_key_env": "RUNQ_SECURITY_CANARY"},
    ]  # fmt: skip
    data = {**job.to_dict(), "links": hostile, "link_index": 0, **record}
    data.pop("version")
    client.set(keys.job(job.id), json.dumps({"version": 0, **data}))
    enqueue_start(make_app(stack.redis_url), job.id)
    return job.id


def _everything_stored(stack: Stack, job_id: str) -> str:
    """The record, the event stream and the Celery result meta, as one text."""
    assert stack.redis_url is not None
    client = redis.Redis.from_url(stack.redis_url)
    events = client.xrange(keys.events(job_id))
    meta = client.get(f"celery-task-meta-{job_id}") or b""
    return "\n".join(
        [
            client.get(keys.job(job_id)).decode(),
            *(fields[b"data"].decode() for _, fields in events),
            meta.decode(),
        ]
    )


def _ended(stack: Stack, job_id: str) -> Job:
    assert stack.redis_url is not None
    store = JobStore(redis.Redis.from_url(stack.redis_url))
    return wait_for(
        lambda: (job := store.get(job_id)).terminal and job.published and job,
        timeout=60,
        what="the planted job to end and be published",
    )


@pytest.mark.parametrize("record", [{}, {"chain": ""}], ids=["pre-0.3 record", "named own"])
def test_a_planted_record_chooses_neither_host_nor_key(
    stack: Stack, listener: Listener, record: dict
) -> None:
    job_id = _plant(stack, listener, **record)
    job = _ended(stack, job_id)
    assert job.status == "succeeded", job.error
    assert "hello from a planted record" in (job.output_text or "")  # the sandbox answered
    assert job.source == "responses:gpt-5-mini"
    assert listener.seen == [], "a request reached the host the record named"
    assert CANARY not in _everything_stored(stack, job_id)
    assert CANARY not in worker_log(stack)


def test_a_planted_record_naming_a_chain_the_worker_lacks_fails_without_a_call(
    stack: Stack, listener: Listener
) -> None:
    job_id = _plant(stack, listener, chain="exfiltrate")
    job = _ended(stack, job_id)
    assert job.status == "failed"
    assert "unknown chain 'exfiltrate'" in job.error["message"]
    assert listener.seen == []
    assert CANARY not in _everything_stored(stack, job_id)


def test_the_worker_log_was_written(stack: Stack) -> None:
    """The log checks above mean something only if the worker logs to that file."""
    assert Path(str(stack.worker_log)).is_file()
    assert "job.finished" in worker_log(stack)
