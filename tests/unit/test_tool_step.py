"""The tool-call task's core: run the call once, honour a cancel, send the submit once."""

from __future__ import annotations

import time

from runq.runs.events import EventLog
from runq.runs.job import Job, JobSpec
from runq.runs.tool_step import ToolCallStep
from runq.runs.toolcalls import ToolCall, ToolCalls
from runq.runs.tools import ToolRegistry


def _step(store, scheduler, fake_redis, ran: list[str]) -> ToolCallStep:
    registry = ToolRegistry()

    @registry.tool
    def add(a: int, b: int) -> int:
        """Add two integers."""
        ran.append("add")
        return a + b

    return ToolCallStep(store, ToolCalls(fake_redis, registry, EventLog(fake_redis)), scheduler)


def _job(store) -> Job:
    job = Job.new(JobSpec(input="sum", tools=["add"]).validate())
    store.create(job, [], lease_until=time.time() + 60)
    return job


def test_the_call_that_completes_the_round_sends_the_submit(store, scheduler, fake_redis):
    ran: list[str] = []
    step = _step(store, scheduler, fake_redis, ran)
    job = _job(store)
    first = ToolCall(job.id, 1, "c1", "add", '{"a": 1, "b": 2}', expected=2)
    second = ToolCall(job.id, 1, "c2", "add", '{"a": 3, "b": 4}', expected=2)
    assert step.run(first, token=7) is False
    assert scheduler.scheduled == []
    assert step.run(second, token=7) is True
    assert step.run(second, token=7) is False  # a redelivered call: no second submit
    assert scheduler.scheduled == [("submit_tool_outputs", job.id, 7, 0)]
    assert ran == ["add", "add"]


def test_a_cancelled_job_does_not_run_its_tools(store, scheduler, fake_redis):
    ran: list[str] = []
    step = _step(store, scheduler, fake_redis, ran)
    job = _job(store)
    store.request_cancel(job.id)
    call = ToolCall(job.id, 1, "c1", "add", '{"a": 1, "b": 2}', expected=1)
    assert step.run(call, token=3) is True  # the round completes; the submit step ends it
    assert ran == []
    assert step.tools.outputs(job.id, 1)["c1"].error == "cancelled"


def test_a_call_of_a_job_that_is_gone_does_nothing(store, scheduler, fake_redis):
    ran: list[str] = []
    step = _step(store, scheduler, fake_redis, ran)
    call = ToolCall("job_gone", 1, "c1", "add", '{"a": 1, "b": 2}', expected=1)
    assert step.run(call, token=1) is False
    assert ran == [] and scheduler.scheduled == []


def test_the_completing_call_runs_the_submit_in_process(store, scheduler, fake_redis):
    ran: list[str] = []
    step = _step(store, scheduler, fake_redis, ran)
    submitted: list[tuple[str, int]] = []
    step.submit = lambda job_id, token: submitted.append((job_id, token))
    job = _job(store)
    call = ToolCall(job.id, 1, "c1", "add", '{"a": 1, "b": 2}', expected=1)
    assert step.run(call, token=5) is True
    assert step.run(call, token=5) is False  # redelivered: the round was already completed
    assert submitted == [(job.id, 5)]
    assert scheduler.scheduled == []  # no submit_tool_outputs task


def test_a_submit_that_raises_is_handed_to_its_task(store, scheduler, fake_redis):
    ran: list[str] = []
    step = _step(store, scheduler, fake_redis, ran)

    def broken(job_id: str, token: int) -> None:
        raise ConnectionError("redis went away")

    step.submit = broken
    job = _job(store)
    call = ToolCall(job.id, 1, "c1", "add", '{"a": 1, "b": 2}', expected=1)
    assert step.run(call, token=9) is True
    assert scheduler.scheduled == [("submit_tool_outputs", job.id, 9, 0)]


def test_a_chat_or_stream_round_sends_its_submit_to_the_runs_queue(store, scheduler, fake_redis):
    ran: list[str] = []
    step = _step(store, scheduler, fake_redis, ran)
    submitted: list[tuple[str, int]] = []
    step.submit = lambda job_id, token: submitted.append((job_id, token))
    for spec in (
        JobSpec(input="sum", tools=["add"], backend="chat"),
        JobSpec(input="sum", tools=["add"], mode="stream"),
    ):
        job = Job.new(spec.validate())
        store.create(job, [], lease_until=time.time() + 60)
        call = ToolCall(job.id, 1, "c1", "add", '{"a": 1, "b": 2}', expected=1)
        assert step.run(call, token=4) is True
        assert scheduler.scheduled[-1] == ("submit_tool_outputs", job.id, 4, 0)
    assert submitted == []
