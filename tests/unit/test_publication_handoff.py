"""The step that ends a job hands it, still locked, to the publication in the same task:
no second claim, and the lock is given back by the publication's commit."""

from __future__ import annotations

import time

from runq.runs import keys
from runq.runs.backends.base import RunState
from runq.runs.job import Job, JobSpec, JobStatus
from runq.runs.retry import RetryPolicies
from runq.runs.steps import Steps


def _steps(store, backend, scheduler) -> Steps:
    return Steps(
        store,
        lambda job, link: backend,
        scheduler,
        lambda job_id, rnd: {},
        retry=RetryPolicies(test_mode=True),
    )


def _counting_claims(store) -> list[str]:
    claimed: list[str] = []
    claim = store.claim

    def counted(job_id, lock_seconds, owner=None):
        claimed.append(job_id)
        return claim(job_id, lock_seconds, owner)

    store.claim = counted
    return claimed


def test_the_ending_step_publishes_without_claiming_again(
    store, backend, scheduler, fake_redis
) -> None:
    backend.states = [RunState("completed", handle={"response_id": "r"}, output_text="ok")]
    steps = _steps(store, backend, scheduler)
    job = Job.new(JobSpec(input="hello").validate())
    store.create(job, [], lease_until=time.time() + 60)
    claimed = _counting_claims(store)
    assert steps.run("start", job.id, 0) == JobStatus.SUCCEEDED
    assert claimed == [job.id]  # the start's claim only
    done = store.get(job.id)
    assert done.published and scheduler.published == [done.result()]
    assert not fake_redis.exists(keys.job_lock(job.id))  # the publication gave it back
    assert fake_redis.zscore(keys.leases(), job.id) is None
    # A late `finish` task (a duplicate) claims, finds the job published, does nothing.
    assert steps.finish(job.id, done.token) == "stale"
    assert not fake_redis.exists(keys.job_lock(job.id))


def test_a_cancel_that_ends_the_job_publishes_it_the_same_way(
    store, backend, scheduler, fake_redis
) -> None:
    backend.states = [RunState("queued", handle={"response_id": "r"})]
    steps = _steps(store, backend, scheduler)
    job = Job.new(JobSpec(input="hello").validate())
    store.create(job, [], lease_until=time.time() + 60)
    assert steps.run("start", job.id, 0) == "waiting"
    store.request_cancel(job.id)
    assert steps.cancel(job.id) == JobStatus.CANCELLED
    ended = store.get(job.id)
    assert ended.status == JobStatus.CANCELLED and ended.published
    assert not fake_redis.exists(keys.job_lock(job.id))
