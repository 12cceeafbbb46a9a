"""The sweeper inside a real worker: jobs whose messages were lost still end, and publish.

Each test writes the state a crash leaves behind (a record whose next message was never
sent) straight into Redis, with its lease already run out, and waits for the workers'
sweeper (every second here) to re-drive it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from celery.result import AsyncResult

from runq.producers.client.sync import Client
from runq.runs.job import Job, JobSpec, JobStatus
from runq.worker.launcher import SandboxProcess, Stack
from tests.conftest import wait_for
from tests.integration.conftest import stack_on

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack(redis_url: str, sandbox: SandboxProcess, tmp_path_factory) -> Iterator[Stack]:
    home = tmp_path_factory.mktemp("sweeper")
    with stack_on(redis_url, sandbox, home, env={"RUNQ_SWEEP_INTERVAL": "1"}) as running:
        yield running


def test_a_job_whose_start_was_never_sent_is_started(client: Client) -> None:
    # The producer died between writing the record and sending `runq.jobs.start`.
    job = Job.new(JobSpec(input="lost start").validate())
    client.store.create(job, [{"type": "job.status", "status": "queued"}],
                        lease_until=time.time() - 1)  # fmt: skip
    result = client.get_job(job.id).result(timeout=30)
    assert result["status"] == JobStatus.SUCCEEDED
    assert result["output_text"]


def test_an_ended_job_whose_finish_was_lost_is_published(client: Client) -> None:
    # The worker died between committing the job's end and sending `runq.jobs.finish`.
    job = Job.new(JobSpec(input="lost finish").validate())
    client.store.create(job, [], lease_until=time.time() - 1)
    job.move(JobStatus.RUNNING)
    job.move(JobStatus.SUCCEEDED)
    job.output_text = "answered before the crash"
    job.mark("finished_at")
    job.due("finish")
    assert client.store.commit(job, lease_until=time.time() - 1)
    assert not client.redis.exists(f"celery-task-meta-{job.id}")

    wait_for(lambda: client.store.get(job.id).published, timeout=30,
             what="the sweeper to re-send the finish")  # fmt: skip
    published = AsyncResult(job.id, app=client.app).get(timeout=10)
    assert published["status"] == JobStatus.SUCCEEDED
    assert published["output_text"] == "answered before the crash"
    assert job.id not in client.store.expired_leases(time.time() + 3600)
