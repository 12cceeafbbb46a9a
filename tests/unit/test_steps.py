"""The steps, driven by hand: fakeredis for the store, a scripted backend, a recording scheduler."""

from __future__ import annotations

import time

import pytest

from runq.errors import BackendError, ConfigurationError, ToolError
from runq.runs import keys
from runq.runs.backends.base import Backend, RunState, ToolCallRequest
from runq.runs.chains import Link
from runq.runs.events import EventLog
from runq.runs.job import Job, JobSpec, JobStatus
from runq.runs.metrics import Metrics
from runq.runs.retry import RetryPolicies
from runq.runs.step_config import StepConfig
from runq.runs.steps import Steps
from runq.runs.store import JobStore
from runq.runs.toolcalls import StoredOutput


def _steps(store, backend, scheduler, outputs=None, **config) -> Steps:
    return Steps(
        store,
        lambda job, link: backend,
        scheduler,
        lambda job_id, rnd: dict(outputs or {}),
        config=StepConfig(**config),
        retry=RetryPolicies(test_mode=True),
    )


def _submit(store: JobStore, **spec) -> Job:
    job = Job.new(JobSpec(input="hello", **spec).validate())
    store.create(job, [], lease_until=time.time() + 60)
    return job


def _run_due(steps: Steps, scheduler) -> str:
    step, job_id, token, _ = scheduler.last()
    return steps.run(step, job_id, token)


def test_a_job_goes_start_poll_finish(store, backend, scheduler, fake_redis) -> None:
    backend.states = [
        RunState("queued", handle={"response_id": "resp_1"}),
        RunState("in_progress", handle={"response_id": "resp_1"}),
        RunState(
            "completed",
            handle={"response_id": "resp_1"},
            output_text="Echo: hello",
            usage={"input_tokens": 1, "output_tokens": 2, "total_tokens": 3},
        ),
    ]
    steps = _steps(store, backend, scheduler, poll_interval_min=0.2)
    job = _submit(store)
    assert steps.run("start", job.id, 0) == "waiting"
    assert store.get(job.id).handle == {"response_id": "resp_1"}  # persisted before polling
    assert scheduler.last()[0] == "poll"
    assert scheduler.last()[3] == pytest.approx(0.2)
    assert _run_due(steps, scheduler) == "waiting"
    assert scheduler.last()[3] == pytest.approx(0.3)  # adaptive: min * 1.5^polls
    assert _run_due(steps, scheduler) == JobStatus.SUCCEEDED
    done = store.get(job.id)
    assert done.status == JobStatus.SUCCEEDED
    assert done.output_text == "Echo: hello"
    assert done.usage["total_tokens"] == 3
    assert {"queued_at", "run_created_at", "finished_at"} <= set(done.timings)
    events = EventLog(fake_redis).read(job.id)
    assert events[-1].final and events[-1].data["result"]["output_text"] == "Echo: hello"
    # The step that saw the end also published it: no finish task was needed.
    assert done.published
    assert [s for s, *_ in scheduler.scheduled] == ["poll", "poll"]
    assert scheduler.published == [done.result()]
    assert scheduler.published[0]["output_text"] == "Echo: hello"


def test_the_result_goes_out_with_the_end(store, backend, scheduler, fake_redis) -> None:
    # The commit that ends the job writes its result backend entry and says published
    # in the same Lua call; the job's lease is dropped right after, in the same task.
    backend.states = [RunState("completed", handle={"response_id": "r"}, output_text="ok")]
    steps = _steps(store, backend, scheduler)
    job = _submit(store)
    assert steps.run("start", job.id, 0) == JobStatus.SUCCEEDED
    done = store.get(job.id)
    assert done.published and scheduler.published == [done.result()]
    assert scheduler.stored == []  # nothing was published after the end
    assert fake_redis.ttl(f"celery-task-meta-{job.id}") > 0
    assert fake_redis.zscore(keys.leases(), job.id) is None
    assert not fake_redis.exists(keys.job_lock(job.id))


def test_what_follows_an_end_that_failed_is_done_by_the_finish_task(
    store, backend, scheduler, fake_redis
) -> None:
    # The result went out with the end, but giving back the job's place in flight
    # raised: the job keeps its lease, and the finish task does what was left, once.
    backend.states = [RunState("completed", handle={"response_id": "r"}, output_text="ok")]
    metrics = Metrics(fake_redis, prices={})
    steps = Steps(store, lambda job, link: backend, scheduler, lambda job_id, rnd: {},
                  retry=RetryPolicies(test_mode=True), metrics=metrics)  # fmt: skip
    released: list[str] = []

    def release(ended: Job) -> None:
        released.append(ended.id)
        if len(released) == 1:
            raise ConnectionError("admission unreachable")

    steps.after_publish(release)
    job = _submit(store)
    assert steps.run("start", job.id, 0) == JobStatus.SUCCEEDED
    assert store.get(job.id).published and len(scheduler.published) == 1
    assert fake_redis.zscore(keys.leases(), job.id) is not None  # the sweeper's safety net
    step, job_id, token, countdown = scheduler.last()
    assert (step, job_id, countdown) == ("finish", job.id, 0)
    assert steps.finish(job_id, token) == "published"
    assert steps.finish(job_id, token) == "stale"  # a duplicate: no lease left to drop
    assert fake_redis.zscore(keys.leases(), job.id) is None
    assert released == [job.id] * 3  # idempotent, so a repeat is harmless
    jobs = {k: v for k, v in metrics.snapshot().items() if k[0] == "jobs"}
    assert list(jobs.values()) == [1.0]


def test_a_failed_publication_is_handed_to_the_finish_task(
    store, backend, scheduler, fake_redis
) -> None:
    # A result backend that is not the job store's Redis: the result is published after
    # the end, and a publication that raises goes to the finish task.
    scheduler.entries = False
    scheduler.publish_failures = 1
    backend.states = [RunState("completed", handle={"response_id": "r"}, output_text="ok")]
    steps = _steps(store, backend, scheduler)
    job = _submit(store)
    # The end is committed whatever happens to its publication.
    assert steps.run("start", job.id, 0) == JobStatus.SUCCEEDED
    ended = store.get(job.id)
    assert ended.status == JobStatus.SUCCEEDED and not ended.published
    assert fake_redis.zscore(keys.leases(), job.id) is not None  # the sweeper's safety net
    step, job_id, token, countdown = scheduler.last()
    assert (step, job_id, countdown) == ("finish", job.id, 0)
    # The failed attempt gave its lock back, so the finish task publishes at once.
    assert steps.finish(job_id, token) == "published"
    assert scheduler.published[0]["output_text"] == "ok"
    assert store.get(job.id).published
    assert fake_redis.zscore(keys.leases(), job.id) is None


def test_finish_publishes_once_and_counts_metrics_once(store, backend, scheduler, fake_redis):
    backend.states = [
        RunState(
            "completed",
            handle={"response_id": "r"},
            output_text="done",
            usage={"input_tokens": 10, "output_tokens": 5, "total_tokens": 15},
        )
    ]
    metrics = Metrics(fake_redis, prices={})
    steps = Steps(
        store,
        lambda job, link: backend,
        scheduler,
        lambda job_id, rnd: {},
        retry=RetryPolicies(test_mode=True),
        metrics=metrics,
    )
    job = _submit(store)
    assert steps.run("start", job.id, 0) == JobStatus.SUCCEEDED  # ends and publishes
    token = store.get(job.id).token
    assert steps.finish(job.id, token) == "stale"  # a redelivered finish does nothing
    assert steps.finish(job.id, token) == "stale"
    assert len(scheduler.published) == 1
    assert store.get(job.id).published
    assert fake_redis.zscore(keys.leases(), job.id) is None
    jobs = {k: v for k, v in metrics.snapshot().items() if k[0] == "jobs"}
    assert list(jobs.values()) == [1.0]


def test_finish_waits_for_a_job_that_has_not_ended(store, backend, scheduler) -> None:
    backend.states = [RunState("queued", handle={"response_id": "r"})]
    steps = _steps(store, backend, scheduler)
    job = _submit(store)
    steps.run("start", job.id, 0)
    token = store.get(job.id).token
    assert steps.finish(job.id, token) == "stale"
    assert scheduler.published == []
    assert not store.get(job.id).published


def test_server_poll_hint_is_honoured(store, backend, scheduler) -> None:
    backend.states = [RunState("queued", handle={"response_id": "r"}, poll_after=1.25)]
    steps = _steps(store, backend, scheduler)
    job = _submit(store)
    steps.run("start", job.id, 0)
    assert scheduler.last()[3] == pytest.approx(1.25)


def test_a_stale_duplicate_does_nothing(store, backend, scheduler) -> None:
    backend.states = [RunState("queued", handle={"response_id": "r"})]
    steps = _steps(store, backend, scheduler)
    job = _submit(store)
    steps.run("start", job.id, 0)
    assert steps.run("start", job.id, 0) == "stale"  # a redelivered start: no second run
    assert backend.calls == ["start"]


def test_a_busy_job_is_retried_after_the_lock(store, backend, scheduler) -> None:
    steps = _steps(store, backend, scheduler)
    job = _submit(store)
    store.claim(job.id, lock_seconds=5, owner="someone-else")
    assert steps.run("start", job.id, 0) == "busy"
    step, _, token, countdown = scheduler.last()
    assert (step, token) == ("start", 0)
    assert 4.9 < countdown <= 5.1
    assert backend.calls == []


def test_cancel_flag_cancels_the_run(store, backend, scheduler) -> None:
    backend.states = [RunState("queued", handle={"response_id": "r"})]
    steps = _steps(store, backend, scheduler)
    job = _submit(store)
    steps.run("start", job.id, 0)
    store.request_cancel(job.id)
    assert _run_due(steps, scheduler) == "cancelled"
    assert store.get(job.id).status == JobStatus.CANCELLED
    assert backend.calls == ["start", "cancel"]


def test_cancel_step_ends_a_job_waiting_for_tools(store, backend, scheduler) -> None:
    backend.states = [
        RunState(
            "requires_tools",
            handle={"response_id": "r"},
            tool_calls=[ToolCallRequest("c1", "calculator", "{}")],
        )
    ]
    steps = _steps(store, backend, scheduler)
    job = _submit(store)
    steps.run("start", job.id, 0)
    assert store.get(job.id).status == JobStatus.WAITING_TOOLS
    store.request_cancel(job.id)
    assert steps.cancel(job.id) == "cancelled"
    assert store.get(job.id).status == JobStatus.CANCELLED
    assert "cancel" in backend.calls


def test_deadline_fails_the_job_and_cancels_the_run(store, backend, scheduler) -> None:
    backend.states = [RunState("queued", handle={"response_id": "r"})]
    steps = _steps(store, backend, scheduler)
    job = _submit(store, deadline=30)
    steps.run("start", job.id, 0)
    aged = store.get(job.id)
    aged.timings["queued_at"] -= 31  # as if the job had been queued 31 s ago
    assert store.commit(aged)
    assert _run_due(steps, scheduler) == "deadline_exceeded"
    failed = store.get(job.id)
    assert failed.status == JobStatus.FAILED
    assert failed.error["code"] == "deadline_exceeded"
    assert backend.calls[-1] == "cancel"


def test_tool_round_dispatches_then_submits(store, backend, scheduler) -> None:
    calls = [
        ToolCallRequest("c1", "calculator", '{"expression": "2+2"}'),
        ToolCallRequest("c2", "current_time", "{}"),
    ]
    backend.states = [
        RunState("requires_tools", handle={"response_id": "r1"}, tool_calls=calls),
        RunState("queued", handle={"response_id": "r2"}),
    ]
    outputs = {"c1": StoredOutput("4", None), "c2": StoredOutput("noon", None)}
    steps = _steps(store, backend, scheduler, outputs=outputs)
    job = _submit(store, tools=["calculator", "current_time"])
    assert steps.run("start", job.id, 0) == "tools"
    job_id, token, call_ids = scheduler.dispatched[0]
    assert call_ids == ["c1", "c2"]
    assert steps.run("submit_tool_outputs", job_id, token) == "waiting"
    assert backend.submitted == [[("c1", "4"), ("c2", "noon")]]
    after = store.get(job.id)
    assert after.handle["response_id"] == "r2"
    assert [c["round"] for c in after.tool_calls] == [1, 1]
    assert steps.run("submit_tool_outputs", job_id, token) == "stale"  # fan-in duplicate


def test_tool_errors_can_fail_the_job(store, backend, scheduler) -> None:
    backend.states = [
        RunState(
            "requires_tools",
            handle={"response_id": "r1"},
            tool_calls=[ToolCallRequest("c1", "nope", "{}")],
        )
    ]
    outputs = {"c1": StoredOutput('{"error": {"code": "unknown_tool"}}', "unknown_tool")}
    steps = _steps(store, backend, scheduler, outputs=outputs, tool_errors_fail_job=True)
    job = _submit(store)
    steps.run("start", job.id, 0)
    _, token, _ = scheduler.dispatched[0]
    assert steps.run("submit_tool_outputs", job.id, token) == "tool_error"
    assert store.get(job.id).status == JobStatus.FAILED


def test_too_many_tool_rounds_fail_the_job(store, backend, scheduler) -> None:
    round_state = RunState(
        "requires_tools",
        handle={"response_id": "r"},
        tool_calls=[ToolCallRequest("c1", "calculator", "{}")],
    )
    backend.states = [round_state, round_state]
    steps = _steps(store, backend, scheduler, outputs={"c1": StoredOutput("1", None)})
    job = _submit(store, max_tool_rounds=1)
    steps.run("start", job.id, 0)
    _, token, _ = scheduler.dispatched[0]
    assert steps.run("submit_tool_outputs", job.id, token) == "max_tool_rounds_exceeded"


def test_retryable_error_reschedules_the_step(store, backend, scheduler) -> None:
    backend.states = [
        BackendError("slow down", code="rate_limited", retryable=True, retry_after=0.0),
        RunState("queued", handle={"response_id": "r"}),
    ]
    steps = _steps(store, backend, scheduler)
    job = _submit(store)
    assert steps.run("start", job.id, 0) == "retrying"
    assert store.get(job.id).status == JobStatus.RETRYING
    assert store.get(job.id).attempt == 1
    assert _run_due(steps, scheduler) == "waiting"
    assert store.get(job.id).status == "running"


def test_final_error_fails_with_the_reason(store, backend, scheduler) -> None:
    backend.states = [
        BackendError("bad model", code="bad_request", retryable=False, status_code=400)
    ]
    steps = _steps(store, backend, scheduler)
    job = _submit(store)
    assert steps.run("start", job.id, 0) == "bad_request"
    failed = store.get(job.id)
    assert failed.status == JobStatus.FAILED
    assert failed.error == {"code": "bad_request", "message": "bad model"}
    assert failed.attempts[0]["code"] == "bad_request"
    assert failed.published
    assert scheduler.published[0]["status"] == JobStatus.FAILED
    assert scheduler.published[0]["error"]["code"] == "bad_request"


def test_failed_run_restarts_with_a_fresh_run(store, backend, scheduler) -> None:
    backend.states = [
        RunState("queued", handle={"response_id": "r1"}),
        RunState("failed", handle={"response_id": "r1"}, error_code="server_error"),
        RunState("queued", handle={"response_id": "r2"}),
    ]
    steps = _steps(store, backend, scheduler)
    job = _submit(store)
    steps.run("start", job.id, 0)
    assert _run_due(steps, scheduler) == "retrying"
    assert scheduler.last()[0] == "start"
    assert store.get(job.id).handle == {}
    assert _run_due(steps, scheduler) == "waiting"
    assert store.get(job.id).handle == {"response_id": "r2"}


def _drive(steps: Steps, scheduler, store: JobStore, job: Job, limit: int = 50) -> Job:
    """Start the job, then run each step it schedules until it ends (at most `limit`)."""
    steps.run("start", job.id, 0)
    for _ in range(limit):
        current = store.get(job.id)
        if current.terminal:
            return current
        _run_due(steps, scheduler)
    raise AssertionError(f"job still {store.get(job.id).status} after {limit} steps")


def test_call_errors_count_in_a_row_not_over_the_job(store, backend, scheduler) -> None:
    """Eight timeouts spread over a long run's polls, each followed by a poll that answers:
    more than the transient policy's 5 attempts in all, never more than 1 in a row."""
    timeout = BackendError("read timed out", code="timeout", retryable=True)
    waiting = RunState("in_progress", handle={"response_id": "r"})
    backend.states = [RunState("queued", handle={"response_id": "r"})]
    backend.states += [timeout, waiting] * 8
    backend.states += [RunState("completed", handle={"response_id": "r"}, output_text="ok")]
    steps = _steps(store, backend, scheduler)
    job = _submit(store)
    done = _drive(steps, scheduler, store, job)
    assert done.status == JobStatus.SUCCEEDED
    assert done.attempt == 8  # every timeout was retried


def test_call_errors_in_a_row_still_end_in_failure(store, backend, scheduler) -> None:
    timeout = BackendError("read timed out", code="timeout", retryable=True)
    backend.states = [RunState("queued", handle={"response_id": "r"})] + [timeout] * 5
    steps = _steps(store, backend, scheduler)
    job = _submit(store)
    failed = _drive(steps, scheduler, store, job)
    assert failed.status == JobStatus.FAILED
    assert failed.error["code"] == "timeout"
    assert backend.states == []  # the policy's 5 attempts, all of them polls in a row


def test_failed_runs_count_over_the_job_even_when_calls_answer(store, backend, scheduler) -> None:
    """A run that fails at the backend is answered by a call, yet must not reset the count
    of failed runs: three failed runs (the run_failed policy) fail the job."""
    backend.states = []
    for n in range(3):
        backend.states += [
            RunState("queued", handle={"response_id": f"r{n}"}),
            RunState("failed", handle={"response_id": f"r{n}"}, error_code="server_error"),
        ]
    steps = _steps(store, backend, scheduler)
    job = _submit(store)
    failed = _drive(steps, scheduler, store, job)
    assert failed.status == JobStatus.FAILED
    assert failed.error["code"] == "run_failed"
    assert backend.states == []


def test_a_bug_inside_a_step_propagates_and_leaves_the_job_alone(store, scheduler) -> None:
    """A plain ValueError is a bug, not a bad job: the task fails loudly (Celery logs it),
    the job keeps its state and lease, and the lock is free for the step to come back."""

    def broken(job: Job, link: Link) -> Backend:
        raise ValueError("a bug in the worker, not in the job")

    steps = Steps(store, broken, scheduler, lambda job_id, rnd: {})
    job = _submit(store)
    with pytest.raises(ValueError, match="a bug in the worker"):
        steps.run("start", job.id, 0)
    after = store.get(job.id)
    assert after.status == JobStatus.QUEUED
    assert after.error is None
    assert (after.step, after.token) == ("start", 0)
    assert scheduler.published == [] and scheduler.scheduled == []
    assert store.claim(job.id, lock_seconds=1).acquired  # the lock was given back


@pytest.mark.parametrize(
    ("raised", "code"),
    [
        (ToolError("unknown tool 'teleport'", code="unknown_tool"), "unknown_tool"),
        # A job's only link that this worker cannot use: skipped, and no link is left.
        (
            ConfigurationError("link reads its API key from KEY, which is not set"),
            "link_unusable",
        ),
    ],
)
def test_a_bad_job_fails_alone_with_its_reason(store, scheduler, raised, code) -> None:
    def refusing(job: Job, link: Link) -> Backend:
        raise raised

    steps = Steps(store, refusing, scheduler, lambda job_id, rnd: {})
    job = _submit(store)
    assert steps.run("start", job.id, 0) == code
    failed = store.get(job.id)
    assert failed.status == JobStatus.FAILED
    assert failed.error == {"code": code, "message": str(raised)}


def test_continuing_a_job_that_is_gone_fails_the_job(store, backend, scheduler) -> None:
    steps = _steps(store, backend, scheduler)
    job = _submit(store, continue_job="job_expired_long_ago")
    assert steps.run("start", job.id, 0) == "InvalidJobError"
    failed = store.get(job.id)
    assert failed.status == JobStatus.FAILED
    assert "job_expired_long_ago" in failed.error["message"]
    assert backend.calls == []
