"""A cancel takes effect whatever the job is doing: between steps, during a step that
holds the job (the commit refuses its outcome), and in the middle of a stream (the
watch interrupts it) — and a cancel that comes too late says so."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import pytest

from runq.errors import JobAlreadyEndedError, JobNotFoundError
from runq.runs import keys
from runq.runs.backends.base import DeltaSink, RunState, StreamSupport, ToolCallRequest
from runq.runs.cancellation import CancelRequested
from runq.runs.events import EventLog
from runq.runs.frame import CANCEL_RECHECK
from runq.runs.job import Job, JobSpec, JobStatus
from runq.runs.steps import Steps
from runq.runs.store import JobStore
from runq.runs.stream_watch import StreamStopped, StreamWatch
from tests.unit.conftest import scripted_steps

# A watch looks at the flag every quarter second; a cancel must land well inside a second.
INTERRUPT_WITHIN = 1.0


def _steps(store, backend, scheduler, **config) -> Steps:
    return scripted_steps(store, backend, scheduler, **config)


def _submit(store: JobStore, **spec: Any) -> Job:
    job = Job.new(JobSpec(input="hello", **spec).validate())
    store.create(job, [], lease_until=time.time() + 60)
    return job


# -- asking --------------------------------------------------------------------------------
def test_a_cancel_request_says_what_the_job_was_doing(store) -> None:
    job = _submit(store)
    assert store.request_cancel(job.id) == "queued"
    assert store.cancel_requested(job.id)


def test_cancelling_a_job_that_succeeded_says_it_had_already_ended(store, fake_redis) -> None:
    job = _submit(store)
    claim = store.claim(job.id, 5)
    assert claim.job is not None
    claim.job.move(JobStatus.RUNNING)
    claim.job.move(JobStatus.SUCCEEDED)
    assert store.commit(claim.job, owner=claim.owner)
    with pytest.raises(JobAlreadyEndedError) as raised:
        store.request_cancel(job.id)
    assert raised.value.status == "succeeded"
    assert str(raised.value) == f"job {job.id} had already ended (succeeded)"
    assert not fake_redis.exists(keys.cancel(job.id)), "no flag for a job that ended"


def test_cancelling_twice_is_harmless(store, backend, scheduler) -> None:
    steps = _steps(store, backend, scheduler)
    job = _submit(store)
    store.request_cancel(job.id)
    assert steps.cancel(job.id) == "cancelled"
    assert store.request_cancel(job.id) == "cancelled"  # no error, nothing more to do


def test_cancelling_a_job_that_does_not_exist(store) -> None:
    with pytest.raises(JobNotFoundError):
        store.request_cancel("job_nope")


# -- a step that holds the job ----------------------------------------------------------
@dataclass
class RacingBackend:
    """Plays back states; the producer's cancel arrives during the call numbered `race_at`."""

    store: JobStore
    job_id: str = ""
    states: list[RunState] = field(default_factory=list)
    race_at: int = 0
    calls: list[str] = field(default_factory=list)
    cancelled: list[dict[str, str]] = field(default_factory=list)
    name: str = "responses"

    def _next(self, what: str) -> RunState:
        self.calls.append(what)
        if len(self.calls) - 1 == self.race_at:
            self.store.request_cancel(self.job_id)
        return self.states.pop(0)

    def start(self, job: Job) -> RunState:
        return self._next("start")

    def retrieve(self, job: Job) -> RunState:
        return self._next("retrieve")

    def submit_tool_outputs(self, job: Job, outputs: list[tuple[str, str]]) -> RunState:
        return self._next("submit")

    def cancel(self, job: Job) -> None:
        self.calls.append("cancel")
        self.cancelled.append(dict(job.handle))

    def streaming(self) -> StreamSupport:
        return StreamSupport()


def test_a_cancel_during_a_start_cancels_the_run_it_created(store, scheduler) -> None:
    backend = RacingBackend(store, states=[RunState("queued", handle={"response_id": "r1"})])
    steps = _steps(store, backend, scheduler)
    job = _submit(store)
    backend.job_id = job.id
    assert steps.run("start", job.id, 0) == "cancelled"
    ended = store.get(job.id)
    assert ended.status == JobStatus.CANCELLED
    assert backend.cancelled == [{"response_id": "r1"}], "the new run is cancelled too"
    assert [s for s, *_ in scheduler.scheduled] == [], "no poll was sent"
    assert store.claim(job.id, 1).acquired, "the lock was given back"


def test_a_cancel_wins_over_the_poll_that_sees_the_run_complete(store, scheduler) -> None:
    backend = RacingBackend(
        store,
        states=[
            RunState("queued", handle={"response_id": "r1"}),
            RunState("completed", handle={"response_id": "r1"}, output_text="done"),
        ],
        race_at=1,
    )
    steps = _steps(store, backend, scheduler)
    job = _submit(store)
    backend.job_id = job.id
    assert steps.run("start", job.id, 0) == "waiting"
    step, _, token, _ = scheduler.last()
    # Without the flag in the commit this poll would end the job `succeeded`, and the
    # cancel task coming after it would find nothing left to cancel.
    assert steps.run(step, job.id, token) == "cancelled"
    ended = store.get(job.id)
    assert ended.status == JobStatus.CANCELLED
    assert ended.error == {"code": "cancelled", "message": "cancelled by request"}
    assert ended.published


def test_a_cancel_during_a_tool_round_sends_no_tool(store, scheduler) -> None:
    calls = [ToolCallRequest("c1", "calculator", '{"expression": "1+1"}')]
    backend = RacingBackend(
        store, states=[RunState("requires_tools", handle={"response_id": "r"}, tool_calls=calls)]
    )
    steps = _steps(store, backend, scheduler)
    job = _submit(store, tools=["calculator"])
    backend.job_id = job.id
    assert steps.run("start", job.id, 0) == "cancelled"
    assert scheduler.dispatched == []
    assert store.get(job.id).status == JobStatus.CANCELLED


def test_a_busy_job_gets_its_cancel_back_within_half_a_second(store, backend, scheduler):
    steps = _steps(store, backend, scheduler)
    job = _submit(store)
    store.claim(job.id, lock_seconds=40, owner="a-long-step")
    store.request_cancel(job.id)
    assert steps.cancel(job.id) == "busy"
    step, _, _, countdown = scheduler.last()
    assert step == "cancel"
    assert countdown <= CANCEL_RECHECK + 0.1


def test_a_commit_refused_by_the_flag_writes_nothing(store) -> None:
    job = _submit(store)
    claim = store.claim(job.id, 5)
    assert claim.job is not None
    store.request_cancel(job.id)
    claim.job.move(JobStatus.RUNNING)
    with pytest.raises(CancelRequested):
        store.commit(claim.job, [{"type": "x"}], owner=claim.owner, unless_cancelled=True)
    assert store.get(job.id).status == JobStatus.QUEUED
    assert claim.job.version == 0
    assert not store.claim(job.id, 1).acquired, "the step still holds the job"


# -- a stream in progress ----------------------------------------------------------------
class SilentRun:
    """A stream that sends one delta, then nothing until it is closed or released."""

    def __init__(self) -> None:
        self.closed = threading.Event()
        self.release = threading.Event()

    def events(self, on_delta: DeltaSink) -> RunState | None:
        try:
            on_delta(0, "Hel")
            while not self.release.wait(0.02):
                pass
            on_delta(1, "lo")  # the step has stopped listening: this raises StreamStopped
            return RunState("completed", output_text="Hello")
        finally:
            self.closed.set()


@dataclass
class StreamingBackend:
    """A Responses-like backend whose runs stream from `SilentRun`."""

    run: SilentRun = field(default_factory=SilentRun)
    calls: list[str] = field(default_factory=list)
    name: str = "responses"

    def start(self, job: Job) -> RunState:
        self.calls.append("start")
        return RunState("queued", handle={"response_id": "r1"})

    def retrieve(self, job: Job) -> RunState:
        self.calls.append("retrieve")
        return RunState("in_progress", handle={"response_id": "r1"})

    def submit_tool_outputs(self, job: Job, outputs: list[tuple[str, str]]) -> RunState:
        raise AssertionError("no tool round here")

    def stream(self, job: Job, after: int | None, on_delta: DeltaSink) -> RunState | None:
        self.calls.append("stream")
        return self.run.events(on_delta)

    def cancel(self, job: Job) -> None:
        self.calls.append("cancel")

    def streaming(self) -> StreamSupport:
        return StreamSupport(follows_runs=self)


def _cancel_later(store: JobStore, job_id: str, after: float) -> threading.Thread:
    thread = threading.Thread(target=lambda: (time.sleep(after), store.request_cancel(job_id)))
    thread.start()
    return thread


def test_a_cancel_interrupts_a_silent_stream(store, scheduler, fake_redis) -> None:
    backend = StreamingBackend()
    steps = _steps(store, backend, scheduler)
    job = _submit(store, mode="stream")
    assert steps.run("start", job.id, 0) == "streaming"
    step, _, token, _ = scheduler.last()
    asked = _cancel_later(store, job.id, 0.3)
    began = time.monotonic()
    assert steps.run(step, job.id, token) == "cancelled"
    took = time.monotonic() - began - 0.3
    asked.join()
    assert took < INTERRUPT_WITHIN, f"the stream went on {took:.2f}s after the cancel"
    assert backend.calls == ["start", "stream", "cancel"]
    assert store.get(job.id).status == JobStatus.CANCELLED
    backend.run.release.set()
    assert backend.run.closed.wait(2), "the reader closed its stream"
    deltas = [e for e in EventLog(fake_redis).read(job.id) if e.type == "text.delta"]
    assert [d.data["delta"] for d in deltas] == ["Hel"], "nothing forwarded after the end"


def test_a_quiet_stream_keeps_its_lock(store, scheduler, fake_redis) -> None:
    """The lock is renewed by the watch, not only when deltas arrive."""
    backend = StreamingBackend()
    steps = _steps(store, backend, scheduler, stream_lock_seconds=0.6)
    job = _submit(store, mode="stream")
    steps.run("start", job.id, 0)
    step, _, token, _ = scheduler.last()
    asked = _cancel_later(store, job.id, 1.5)
    seen: list[int] = []
    watcher = threading.Thread(
        target=lambda: [
            (seen.append(fake_redis.pttl(keys.job_lock(job.id))), time.sleep(0.1))
            for _ in range(12)
        ]
    )
    watcher.start()
    assert steps.run(step, job.id, token) == "cancelled"
    asked.join()
    watcher.join()
    backend.run.release.set()
    assert all(ms > 0 for ms in seen[1:12]), f"the lock lapsed mid-stream: {seen}"


@dataclass
class ChatTurns:
    """A Chat-like backend: a turn is one streamed request, with nothing to cancel."""

    sent: list[str] = field(default_factory=list)
    closed: threading.Event = field(default_factory=threading.Event)
    on_delta: DeltaSink | None = None
    calls: list[str] = field(default_factory=list)
    name: str = "chat"

    def start(self, job: Job) -> RunState:
        self.calls.append("start")
        assert self.on_delta is not None, "a stream-mode turn streams"
        try:
            for seq in range(400):
                self.on_delta(seq, f"w{seq} ")
                self.sent.append(f"w{seq}")
                time.sleep(0.02)
        finally:
            self.closed.set()
        return RunState("completed", output_text="".join(self.sent))

    def retrieve(self, job: Job) -> RunState:
        raise AssertionError("a chat turn has no run")

    def submit_tool_outputs(self, job: Job, outputs: list[tuple[str, str]]) -> RunState:
        raise AssertionError("no tool round here")

    def cancel(self, job: Job) -> None:
        self.calls.append("cancel")

    def streaming(self) -> StreamSupport:
        return StreamSupport(streams_turns=self)

    def streaming_turns(self, on_delta: DeltaSink) -> ChatTurns:
        self.on_delta = on_delta
        return self


def test_a_cancel_stops_reading_a_chat_turn(store, scheduler, fake_redis) -> None:
    backend = ChatTurns()
    steps = _steps(store, backend, scheduler)
    job = _submit(store, mode="stream", backend="chat")
    asked = _cancel_later(store, job.id, 0.4)
    began = time.monotonic()
    assert steps.run("start", job.id, 0) == "cancelled"
    took = time.monotonic() - began - 0.4
    asked.join()
    assert took < INTERRUPT_WITHIN
    assert backend.closed.wait(2), "the turn's stream was closed"
    assert len(backend.sent) < 100, "the turn stopped being read"
    assert store.get(job.id).status == JobStatus.CANCELLED


def test_an_error_in_a_relayed_callback_reaches_the_step() -> None:
    watch = StreamWatch("job", cancelled=lambda: False, renew=lambda: True, renew_every=10)
    stopped = threading.Event()

    def boom(seq: int, delta: str) -> None:
        raise ConnectionError("redis went away")

    relay = watch.on_step_thread(boom)

    def reader() -> str:
        try:
            relay(0, "x")
        except StreamStopped:
            stopped.set()
            raise
        return "unreachable"

    with pytest.raises(ConnectionError):
        watch.run(reader)
    assert stopped.wait(1), "the reader was told to stop"
