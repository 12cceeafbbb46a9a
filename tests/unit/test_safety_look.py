"""The safety look (runs.look_step): a look at a run still going takes no lock and writes
no record, only its count, the lease and the next look; anything else is the poll step's,
with the state the look fetched (fakeredis, the core's steps)."""

from __future__ import annotations

import time

from runq.errors import BackendError
from runq.runs import keys
from runq.runs.backends.base import RunState, ToolCallRequest
from runq.runs.events import EventLog
from runq.runs.job import Job, JobSpec, JobStatus
from runq.runs.looks import LookCounts
from runq.runs.retry import RetryPolicies
from runq.runs.step_config import StepConfig
from runq.runs.steps import Steps
from runq.runs.store import JobStore
from tests.unit.conftest import scripted_steps


def _steps(store, backend, scheduler, **config) -> Steps:
    return scripted_steps(store, backend, scheduler, **{"safety_poll_interval": 60.0, **config})


def _waiting(store: JobStore, steps: Steps, backend, scheduler, **spec) -> Job:
    """A webhook-mode job whose run was created and waits for its webhook."""
    job = Job.new(JobSpec(input="hello", mode="webhook", deadline=3600, **spec).validate())
    store.create(job, [], lease_until=time.time() + 60)
    backend.states.insert(0, RunState("queued", handle={"response_id": "resp_1"}))
    assert steps.run("start", job.id, 0) == "waiting"
    return store.get(job.id)


def _going() -> RunState:
    return RunState("in_progress", handle={"response_id": "resp_1"})


def test_a_look_at_a_run_still_going_writes_no_record(store, backend, scheduler, fake_redis):
    steps = _steps(store, backend, scheduler)
    job = _waiting(store, steps, backend, scheduler)
    assert scheduler.last() == ("look", job.id, job.token, 60.0)
    events_before = len(EventLog(fake_redis).read(job.id))
    backend.states.append(_going())
    before = time.time()

    assert steps.run("look", job.id, job.token) == "waiting"

    after = store.get(job.id)
    assert after.version == job.version and after.polls == 0  # not written
    assert fake_redis.get(keys.job_lock(job.id)) is None  # no lock was taken
    assert len(EventLog(fake_redis).read(job.id)) == events_before
    assert LookCounts(fake_redis).pending(job.id) == 1
    assert scheduler.last() == ("look", job.id, job.token, 180.0)  # the next look, grown
    lease = fake_redis.zscore(keys.leases(), job.id)
    assert lease is not None and lease >= before + 180.0  # past the next look
    assert backend.calls == ["start", "retrieve"]


def test_the_look_that_finds_the_end_hands_its_state_to_the_poll(store, backend, scheduler):
    steps = _steps(store, backend, scheduler)
    job = _waiting(store, steps, backend, scheduler)
    done = RunState("completed", handle={"response_id": "resp_1"}, output_text="Echo: hello")
    backend.states += [_going(), _going(), done]
    for _ in range(3):
        step, job_id, token, _ = scheduler.last()
        result = steps.run(step, job_id, token)
    assert result == JobStatus.SUCCEEDED
    ended = store.get(job.id)
    assert ended.status == JobStatus.SUCCEEDED and ended.output_text == "Echo: hello"
    assert backend.calls == ["start", "retrieve", "retrieve", "retrieve"]  # no second fetch
    # The two looks at the run still going are in the record now, and gone from beside it.
    assert ended.polls == 2
    assert LookCounts(store.redis).pending(job.id) == 0


def test_a_look_that_finds_a_tool_round_dispatches_it(store, backend, scheduler):
    steps = _steps(store, backend, scheduler)
    job = _waiting(store, steps, backend, scheduler, tools=["add"])
    call = ToolCallRequest("call_1", "add", '{"a": 1, "b": 2}')
    backend.states.append(
        RunState("requires_tools", handle={"response_id": "resp_1"}, tool_calls=[call])
    )
    assert steps.run("look", job.id, job.token) == "tools"
    assert store.get(job.id).status == JobStatus.WAITING_TOOLS
    assert [d[0] for d in scheduler.dispatched] == [job.id]
    assert backend.calls == ["start", "retrieve"]


def test_a_stale_look_does_nothing(store, backend, scheduler):
    steps = _steps(store, backend, scheduler)
    job = _waiting(store, steps, backend, scheduler)
    assert steps.run("look", job.id, job.token - 1) == "stale"
    assert steps.run("look", "job_nobody", 1) == "not_found"
    assert backend.calls == ["start"]
    assert LookCounts(store.redis).pending(job.id) == 0


def test_a_look_with_the_cancel_flag_up_lets_the_poll_step_cancel(store, backend, scheduler):
    steps = _steps(store, backend, scheduler)
    job = _waiting(store, steps, backend, scheduler)
    store.redis.set(keys.cancel(job.id), "1")
    assert steps.run("look", job.id, job.token) == JobStatus.CANCELLED
    assert backend.calls == ["start", "cancel"]  # the run is cancelled, not fetched


def test_a_failed_look_leaves_the_retry_to_the_poll_step(store, backend, scheduler):
    steps = _steps(store, backend, scheduler)
    job = _waiting(store, steps, backend, scheduler)
    backend.states += [BackendError("connection reset", code="connection_error"), _going()]
    assert steps.run("look", job.id, job.token) == "waiting"
    # The poll called again and saw the run going: it waits for the next look, counted.
    assert backend.calls == ["start", "retrieve", "retrieve"]
    after = store.get(job.id)
    assert after.polls == 1 and after.status == JobStatus.RUNNING
    assert scheduler.last()[0] == "look"


def test_a_look_that_raced_the_end_leaves_no_count_behind(store, backend, scheduler):
    """A look saw the run going just as the woken poll ended the job, and counted itself
    after the end added the counts up; its next look finds the job ended and drops it."""
    steps = _steps(store, backend, scheduler)
    job = _waiting(store, steps, backend, scheduler)
    backend.states.append(RunState("completed", handle={"response_id": "resp_1"}))
    assert steps.run("poll", job.id, job.token) == JobStatus.SUCCEEDED  # the woken poll
    LookCounts(store.redis).add(job.id)  # the racing look's count, after the end
    assert steps.run("look", job.id, job.token) == "stale"  # the look it scheduled
    assert LookCounts(store.redis).pending(job.id) == 0
    assert store.get(job.id).polls == 0


def test_a_look_without_rate_capacity_comes_back_uncounted(store, backend, scheduler, fake_redis):
    """A look takes a request from the link's bucket like any poll; with none left it
    calls nothing, counts nothing, and comes back after the bucket's wait."""
    from runq.runs.links import LinkServices

    services = LinkServices(fake_redis, default_rpm=1)  # the start takes the only request
    steps = Steps(store, lambda job, link: backend, scheduler, lambda job_id, rnd: {},
                  config=StepConfig(safety_poll_interval=60.0),
                  retry=RetryPolicies(test_mode=True), services=services)  # fmt: skip
    job = _waiting(store, steps, backend, scheduler)
    assert steps.run("look", job.id, job.token) == "rate_limited"
    assert backend.calls == ["start"]
    assert LookCounts(fake_redis).pending(job.id) == 0
    step, job_id, token, wait = scheduler.last()
    assert (step, job_id, token) == ("look", job.id, job.token) and 0 < wait <= 60.0
