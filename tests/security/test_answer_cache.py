"""The answer cache keeps each tenant's answers to itself, and keeps nothing it will
never read: an answer is stored only for a job whose chain has a `cache` link."""

from __future__ import annotations

import time
from typing import Any

from runq.errors import BackendError
from runq.runs.backends.base import RunState
from runq.runs.chains import fingerprint, parse_chains
from runq.runs.job import Job, JobSpec, JobStatus
from runq.runs.links import LinkServices
from runq.runs.retry import RetryPolicies
from runq.runs.steps import Steps
from runq.runs.store import JobStore

CHAINS = parse_chains(
    {
        "cached": [{"backend": "responses", "model": "big"}, {"kind": "cache"}],
        "plain": [
            {"backend": "responses", "model": "big"},
            {"kind": "template", "message": "Busy."},
        ],
    }
)
DONE = RunState("completed", handle={"response_id": "r"}, output_text="tenant a's private answer")
BAD = BackendError("bad request", code="bad_request", status_code=400)


def _steps(store: JobStore, backend: Any, scheduler: Any, fake_redis: Any) -> Steps:
    services = LinkServices(fake_redis, chains=CHAINS)
    return Steps(store, lambda job, link: backend, scheduler, lambda j, r: {},
                 services=services, retry=RetryPolicies(test_mode=True))  # fmt: skip


def _run(steps: Steps, scheduler: Any, **spec: Any) -> Job:
    job = Job.new(JobSpec(input="What is our refund window?", **spec).validate())
    steps.store.create(job, [], lease_until=time.time() + 60)
    steps.run("start", job.id, 0)
    for _ in range(10):
        current = steps.store.get(job.id)
        if current.terminal:
            return current
        step, job_id, token, _ = scheduler.last()
        steps.run(step, job_id, token)
    raise AssertionError("the job did not end")


def _cache_keys(fake_redis: Any) -> list[bytes]:
    return list(fake_redis.scan_iter("runq:cache:*"))


def test_another_tenant_misses_the_cache(store, backend, scheduler, fake_redis) -> None:
    steps = _steps(store, backend, scheduler, fake_redis)
    backend.states = [DONE, BAD, BAD]
    first = _run(steps, scheduler, tenant="a", chain="cached")
    assert first.output_text == "tenant a's private answer"
    # The same question from tenant b, whose model link fails: the cache link must not
    # answer with tenant a's answer.
    other = _run(steps, scheduler, tenant="b", chain="cached")
    assert other.status == JobStatus.FAILED
    assert [a["code"] for a in other.attempts] == ["bad_request", "cache_miss"]
    assert other.output_text is None
    # Tenant a itself still gets its answer from the cache (the cache works).
    again = _run(steps, scheduler, tenant="a", chain="cached")
    assert (again.status, again.source) == (JobStatus.SUCCEEDED, "cache")


def test_no_tenant_and_a_tenant_do_not_share_answers() -> None:
    question = {"input": "What is our refund window?"}
    assert fingerprint(JobSpec(**question)) != fingerprint(JobSpec(**question, tenant="a"))
    assert fingerprint(JobSpec(**question, tenant="a")) != fingerprint(
        JobSpec(**question, tenant="b")
    )


def test_nothing_is_cached_for_a_job_without_a_cache_link(
    store, backend, scheduler, fake_redis
) -> None:
    steps = _steps(store, backend, scheduler, fake_redis)
    backend.states = [DONE, DONE]
    assert _run(steps, scheduler, tenant="a").status == JobStatus.SUCCEEDED  # no chain
    assert _run(steps, scheduler, tenant="a", chain="plain").status == JobStatus.SUCCEEDED
    assert _cache_keys(fake_redis) == []
    backend.states = [DONE]
    _run(steps, scheduler, tenant="a", chain="cached")
    assert len(_cache_keys(fake_redis)) == 1
