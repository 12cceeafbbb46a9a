"""The safety poll of webhook mode grows: RUNQ_SAFETY_POLL_INTERVAL, tripled (by default:
RUNQ_SAFETY_POLL_GROWTH) after each look that finds the run still going, up to
RUNQ_SAFETY_POLL_MAX, never past the deadline; a lost webhook still only delays its job
(fakeredis, the core's steps)."""

from __future__ import annotations

import time

import pytest

from runq.config.settings import load_settings
from runq.errors import ConfigurationError
from runq.runs.backends.base import RunState
from runq.runs.job import Job, JobSpec, JobStatus
from runq.runs.looks import LookCounts
from runq.runs.steps import Steps
from runq.runs.store import JobStore
from tests.unit.conftest import scripted_steps


def _steps(store, backend, scheduler, **config) -> Steps:
    return scripted_steps(store, backend, scheduler, **config)


def _submit(store: JobStore, **spec) -> Job:
    job = Job.new(JobSpec(input="hello", mode="webhook", **spec).validate())
    store.create(job, [], lease_until=time.time() + 60)
    return job


def _going(n: int) -> list[RunState]:
    return [RunState("in_progress", handle={"response_id": "resp_1"}) for _ in range(n)]


def _safety_waits(steps, scheduler, job, looks: int) -> list[float]:
    """Start the job, then run each safety poll as it comes: the waits scheduled."""
    steps.run("start", job.id, 0)
    waits = [scheduler.last()[3]]
    for _ in range(looks):
        step, job_id, token, _ = scheduler.last()
        steps.run(step, job_id, token)
        waits.append(scheduler.last()[3])
    return waits


def test_the_safety_poll_grows_up_to_its_cap(store, backend, scheduler) -> None:
    backend.states = [RunState("queued", handle={"response_id": "resp_1"}), *_going(5)]
    steps = _steps(store, backend, scheduler, safety_poll_interval=60.0, safety_poll_max=600.0,
                   safety_poll_growth=2.0)  # fmt: skip
    job = _submit(store, deadline=86400)
    assert _safety_waits(steps, scheduler, job, 5) == [60.0, 120.0, 240.0, 480.0, 600.0, 600.0]
    assert LookCounts(store.redis).pending(job.id) == 5  # the record's `polls` at the end


def test_the_safety_poll_grows_three_times_by_default(store, backend, scheduler) -> None:
    backend.states = [RunState("queued", handle={"response_id": "resp_1"}), *_going(3)]
    steps = _steps(store, backend, scheduler, safety_poll_interval=60.0, safety_poll_max=600.0)
    assert load_settings().safety_poll_growth == 3.0
    job = _submit(store, deadline=86400)
    assert _safety_waits(steps, scheduler, job, 3) == [60.0, 180.0, 540.0, 600.0]


def test_a_growth_below_one_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="RUNQ_SAFETY_POLL_GROWTH"):
        load_settings(safety_poll_growth=0.5)


def test_the_safety_poll_never_waits_past_the_deadline(store, backend, scheduler) -> None:
    backend.states = [RunState("queued", handle={"response_id": "resp_1"}), *_going(2)]
    steps = _steps(store, backend, scheduler, safety_poll_interval=60.0, safety_poll_max=600.0)
    job = _submit(store, deadline=100)
    waits = _safety_waits(steps, scheduler, job, 1)
    assert waits[0] == 60.0
    assert 90.0 < waits[1] <= 100.0  # not 120: the look comes at the deadline


def test_a_lost_webhook_delays_the_job_and_the_safety_poll_finishes_it(
    store, backend, scheduler
) -> None:
    """No delivery comes: the growing safety polls keep looking, and the one that finds
    the run ended finishes the job."""
    done = RunState("completed", handle={"response_id": "resp_1"}, output_text="Echo: hello")
    backend.states = [RunState("queued", handle={"response_id": "resp_1"}), *_going(2), done]
    steps = _steps(store, backend, scheduler, safety_poll_interval=60.0, safety_poll_max=600.0)
    job = _submit(store, deadline=86400)
    assert _safety_waits(steps, scheduler, job, 2) == [60.0, 180.0, 540.0]
    step, job_id, token, _ = scheduler.last()
    assert steps.run(step, job_id, token) == JobStatus.SUCCEEDED
    ended = store.get(job.id)
    assert ended.status == JobStatus.SUCCEEDED and ended.output_text == "Echo: hello"
    assert ended.polls == 2  # the looks at a run still going; the last one fetched the end


def test_a_cap_below_the_interval_is_refused_naming_both() -> None:
    with pytest.raises(
        ConfigurationError, match=r"RUNQ_SAFETY_POLL_MAX.*RUNQ_SAFETY_POLL_INTERVAL"
    ):
        load_settings(safety_poll_interval=120.0, safety_poll_max=60.0)


def test_a_safety_look_leaves_the_response_index_as_its_run_wrote_it(
    store, backend, scheduler, fake_redis
) -> None:
    # The start wrote `response -> token|job` for the job's whole deadline; a look that finds
    # the run still going writes nothing there (nor looks for an early mark again).
    from runq.runs import keys

    backend.states = [RunState("queued", handle={"response_id": "resp_1"}), *_going(2)]
    steps = _steps(store, backend, scheduler, safety_poll_interval=60.0, safety_poll_max=600.0)
    job = _submit(store, deadline=3600)
    steps.run("start", job.id, 0)
    index = keys.webhook_response("resp_1")
    step, job_id, token, _ = scheduler.last()
    assert fake_redis.get(index) == f"{token}|{job.id}".encode()
    fake_redis.set(index, f"{token}|{job.id}", ex=5000)  # a TTL no write of a step would give
    assert steps.run(step, job_id, token) == "waiting"
    assert fake_redis.ttl(index) > 4500  # a rewrite would set deadline + 600 s (4200)
    assert LookCounts(store.redis).pending(job.id) == 1
