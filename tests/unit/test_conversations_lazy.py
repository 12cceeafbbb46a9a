"""A conversation's record is written only when a conversation has more than one job,
and a job's turn only with the commit that ends it (fakeredis with Lua, no servers)."""

from __future__ import annotations

import time
from typing import Any

import fakeredis
import pytest

from runq.runs import keys
from runq.runs.backends.base import NO_STREAMING, RunState, StreamSupport
from runq.runs.conversations import migration, replay
from runq.runs.conversations.history import ConversationHistory
from runq.runs.conversations.ids import of_job
from runq.runs.conversations.record import ConversationStore
from runq.runs.conversations.truncation import TruncationPolicy
from runq.runs.job import Job, JobSpec, JobStatus
from runq.runs.links import LinkServices
from runq.runs.outcomes import Outcome
from runq.runs.retry import RetryPolicies
from runq.runs.steps import Steps
from runq.runs.store import JobStore


class CountingRedis(fakeredis.FakeRedis):
    """Keeps every command sent (a Lua script is one EVALSHA, with its keys)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.commands: list[tuple[Any, ...]] = []

    def execute_command(self, *args: Any, **options: Any) -> Any:
        self.commands.append(args)
        return super().execute_command(*args, **options)

    def naming(self, fragment: str) -> list[tuple[Any, ...]]:
        return [c for c in self.commands if any(fragment in str(a) for a in c)]


class AnsweringBackend:
    """Answers every start at once; `during_start` runs while the run is being made."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.seen: list[dict[str, Any]] = []
        self.during_start: Any = None

    def start(self, job: Job) -> RunState:
        if self.during_start is not None:
            self.during_start(job)
        self.seen.append(
            {
                "replayed": [t["text"] for t in replay.replayed(job)],
                "response_id": replay.native(job, "response_id"),
            }
        )
        n = len(self.seen)
        handle = {"response_id": f"resp_{n}"} if self.name == "responses" else {}
        return RunState("completed", handle=handle, output_text=f"answer {n}")

    def retrieve(self, job: Job) -> RunState:
        raise AssertionError("never polled")

    def submit_tool_outputs(self, job: Job, outputs: list[tuple[str, str]]) -> RunState:
        raise AssertionError("no tools")

    def cancel(self, job: Job) -> None:
        pass

    def streaming(self) -> StreamSupport:
        return NO_STREAMING


@pytest.fixture
def redis_client() -> CountingRedis:
    return CountingRedis()


@pytest.fixture
def job_store(redis_client: CountingRedis) -> JobStore:
    return JobStore(redis_client, events_maxlen=50, events_ttl=600, result_ttl=900)


@pytest.fixture
def conversations(redis_client: CountingRedis) -> ConversationStore:
    return ConversationStore(redis_client, ttl=600, max_bytes=100_000)


@pytest.fixture
def backend() -> AnsweringBackend:
    return AnsweringBackend("responses")


@pytest.fixture
def steps(job_store, redis_client, scheduler, conversations, backend) -> Steps:
    return Steps(
        job_store,
        lambda job, link: backend,
        scheduler,
        lambda job_id, rnd: {},
        retry=RetryPolicies(test_mode=True),
        services=LinkServices(redis_client, breaker_failures=0),
        history=ConversationHistory(conversations, TruncationPolicy()),
    )


def _submit(job_store: JobStore, **spec: Any) -> Job:
    job = Job.new(JobSpec(**spec).validate())
    job_store.create(job, [], lease_until=time.time() + 60)
    return job


def _run(steps: Steps, job_store: JobStore, **spec: Any) -> dict[str, Any]:
    job = _submit(job_store, **spec)
    assert steps.run("start", job.id, 0) == JobStatus.SUCCEEDED
    return job_store.get(job.id).result()


# -- a one-shot job writes no record ---------------------------------------------------------
def test_a_one_shot_job_writes_no_conversation_record(steps, job_store, redis_client) -> None:
    redis_client.commands.clear()
    result = _run(steps, job_store, input="What is 6*7?")
    assert result["conversation"] == of_job(result["job_id"])
    assert result["history"] == {"carried": "none", "items": 0, "truncated": False}
    # No command named a conversation key: no record read or written, no turn lock.
    assert redis_client.naming(keys.conversation("")) == []
    assert redis_client.naming(keys.conversation_lock("")) == []
    assert redis_client.keys("runq:conversation*") == []


def test_a_one_turn_conversation_is_built_from_its_job(
    steps, job_store, conversations, backend
) -> None:
    first = _run(steps, job_store, input="My name is Zed.", instructions="Be kind.")
    # Read (and exported) from the job record while it lives, with the answering handle.
    record = conversations.load(first["conversation"], None)
    assert [t["text"] for t in record.turns] == ["My name is Zed.", "answer 1"]
    assert record.instructions == "Be kind."
    assert migration.to_jsonl(record).splitlines()[1] == '{"role":"user","text":"My name is Zed."}'
    # Its continuation on the same link goes on natively from the job's response id, and
    # then writes the record: both turns, and the handle that now covers them.
    second = _run(steps, job_store, input="My name?", continue_job=first["job_id"])
    assert second["conversation"] == first["conversation"]
    assert second["history"] == {"carried": "native", "items": 2, "truncated": False}
    assert backend.seen[1] == {"replayed": [], "response_id": "resp_1"}
    written = conversations.load(first["conversation"], None)
    assert [t["text"] for t in written.turns] == ["My name is Zed.", "answer 1", "My name?",
                                                  "answer 2"]  # fmt: skip
    assert written.handles and all(h["covers"] == 4 for h in written.handles.values())


def test_a_named_conversation_is_written_from_its_first_job(
    steps, job_store, redis_client, conversations
) -> None:
    result = _run(steps, job_store, input="hello", conversation="talk-1")
    assert result["conversation"] == "talk-1"
    assert [t["text"] for t in conversations.load("talk-1", None).turns] == ["hello", "answer 1"]
    assert 0 < redis_client.ttl(keys.conversation("talk-1")) <= 600
    # The record went with the commit that ended the job: no SET of its own.
    assert [c[0] for c in redis_client.naming(keys.conversation("talk-1"))
            if c[0] == "SET"] == []  # fmt: skip


def test_a_conversation_whose_first_job_expired_is_refused(steps, job_store) -> None:
    gone = of_job("job_" + "0" * 32)
    job = _submit(job_store, input="And then?", conversation=gone)
    steps.run("start", job.id, 0)
    failed = job_store.get(job.id)
    assert failed.status == JobStatus.FAILED
    assert "ended with the record of the job that began it" in failed.error["message"]


# -- turns ---------------------------------------------------------------------------------
def test_a_job_on_a_conversation_waits_for_the_job_that_began_it(steps, job_store, backend) -> None:
    first = _submit(job_store, input="My name is Zed.")  # queued: not run yet
    second = _submit(job_store, input="My name?", conversation=of_job(first.id))
    assert steps.run("start", second.id, 0) == Outcome.WAITING_TURN
    assert backend.seen == []
    assert steps.run("start", first.id, 0) == JobStatus.SUCCEEDED
    assert steps.run("start", second.id, 0) == JobStatus.SUCCEEDED
    assert backend.seen[1]["response_id"] == "resp_1"  # it saw the first turn


def test_the_end_of_a_turn_starts_the_job_waiting_for_it(steps, job_store, scheduler) -> None:
    first = _submit(job_store, input="My name is Zed.")
    second = _submit(job_store, input="My name?", conversation=of_job(first.id))
    third = _submit(job_store, input="And yours?", conversation=of_job(first.id))
    assert steps.run("start", third.id, 0) == Outcome.WAITING_TURN  # not first in line
    assert steps.run("start", second.id, 0) == Outcome.WAITING_TURN
    # Each job's start is sent by the end of the job before it in line, so both look
    # again only late: the look is the safety net for a hand-over lost with its worker.
    assert [(s[1], s[3]) for s in scheduler.scheduled] == [(third.id, 30.0), (second.id, 30.0)]
    scheduler.scheduled.clear()
    assert steps.run("start", first.id, 0) == JobStatus.SUCCEEDED
    # The end starts the job first in line now, with the token its start waits with.
    assert ("start", second.id, 0, 0) in scheduler.scheduled
    assert all(s[1] != third.id for s in scheduler.scheduled)
    scheduler.scheduled.clear()
    assert steps.run("start", second.id, 0) == JobStatus.SUCCEEDED
    assert ("start", third.id, 0, 0) in scheduler.scheduled  # and its end, the next
    # Its own look comes later with the same token and finds the start done.
    assert steps.run("start", second.id, 0) == Outcome.STALE
    assert steps.run("start", third.id, 0) == JobStatus.SUCCEEDED


def test_an_interrupting_job_further_back_keeps_looking_often(steps, job_store, scheduler) -> None:
    # Each of its looks stops the job then in its way: waiting for the end of the job
    # before it would let that job run to its end.
    first = _submit(job_store, input="My name is Zed.")
    second = _submit(job_store, input="My name?", conversation=of_job(first.id))
    third = _submit(
        job_store, input="No, my age?", conversation=of_job(first.id), multitask="interrupt"
    )
    assert steps.run("start", second.id, 0) == Outcome.WAITING_TURN
    assert steps.run("start", third.id, 0) == Outcome.WAITING_TURN
    looks = {s[1]: s[3] for s in scheduler.scheduled if s[0] == "start"}
    assert looks == {second.id: 30.0, third.id: 0.5}


def test_the_end_of_a_job_starts_its_waiting_continuation(steps, job_store, scheduler) -> None:
    first = _submit(job_store, input="My name is Zed.")
    then = _submit(job_store, input="My name?", continue_job=first.id)
    assert steps.run("start", then.id, 0) == Outcome.WAITING_TURN
    assert scheduler.last() == ("start", then.id, 0, 30.0)
    scheduler.scheduled.clear()
    assert steps.run("start", first.id, 0) == JobStatus.SUCCEEDED
    assert ("start", then.id, 0, 0) in scheduler.scheduled
    assert steps.run("start", then.id, 0) == JobStatus.SUCCEEDED


def test_one_end_starts_both_its_continuation_and_the_next_in_line(
    steps, job_store, scheduler
) -> None:
    first = _submit(job_store, input="My name is Zed.")
    then = _submit(job_store, input="My name?", continue_job=first.id)
    second = _submit(job_store, input="And yours?", conversation=of_job(first.id))
    assert steps.run("start", then.id, 0) == Outcome.WAITING_TURN
    assert steps.run("start", second.id, 0) == Outcome.WAITING_TURN
    scheduler.scheduled.clear()
    assert steps.run("start", first.id, 0) == JobStatus.SUCCEEDED
    assert {("start", then.id, 0, 0), ("start", second.id, 0, 0)} <= set(scheduler.scheduled)


def test_an_end_between_the_look_and_the_request_starts_the_waiting_job(
    steps, job_store, scheduler
) -> None:
    # The job first in line asks for the hand-over once it is given back, then looks at
    # the job it waits for again: an end that came in between (and so found no request)
    # is seen by that look, and the start is sent there and then.
    first = _submit(job_store, input="My name is Zed.")
    second = _submit(job_store, input="My name?", conversation=of_job(first.id))
    finish_first = steps.run  # ends `first` while `second` is being given back
    job_store_release = job_store.release

    def release_then_end(job_id: str, owner: str) -> None:
        job_store_release(job_id, owner)
        if job_id == second.id and job_store.get(first.id).status == JobStatus.QUEUED:
            assert finish_first("start", first.id, 0) == JobStatus.SUCCEEDED

    job_store.release = release_then_end  # type: ignore[method-assign]
    assert steps.run("start", second.id, 0) == Outcome.WAITING_TURN
    assert scheduler.last() == ("start", second.id, 0, 0)  # the look that saw the end
    assert steps.run("start", second.id, 0) == JobStatus.SUCCEEDED


def test_a_job_cancelled_before_it_starts_hands_its_turn_over(steps, job_store, scheduler) -> None:
    # Every end is a step's, even of a job that never ran: the cancel task ends it.
    first = _submit(job_store, input="My name is Zed.")
    second = _submit(job_store, input="My name?", conversation=of_job(first.id))
    assert steps.run("start", second.id, 0) == Outcome.WAITING_TURN
    job_store.request_cancel(first.id)
    scheduler.scheduled.clear()
    assert steps.cancel(first.id) == JobStatus.CANCELLED
    assert ("start", second.id, 0, 0) in scheduler.scheduled
    assert steps.run("start", second.id, 0) == JobStatus.SUCCEEDED


def test_a_job_nobody_waits_for_ends_in_one_call(steps, job_store, redis_client) -> None:
    _run(steps, job_store, input="What is 5*7?")  # the scripts loaded (SCRIPT LOAD, again)
    job = _submit(job_store, input="What is 6*7?")
    redis_client.commands.clear()
    assert steps.run("start", job.id, 0) == JobStatus.SUCCEEDED
    # Whether a job waits for this end is read by the ending commit's own MGET.
    assert [c[0] for c in redis_client.naming(keys.turn_next(job.id))] == ["EVALSHA"]


def test_a_named_conversations_lock_is_given_back_by_the_ending_commit(
    steps, job_store, redis_client
) -> None:
    result = _run(steps, job_store, input="hello", conversation="talk-2")
    assert redis_client.get(keys.conversation_lock("talk-2")) is None
    # One call ends the job, writes the turn and gives the lock back (a first EVALSHA of
    # a script is sent again after SCRIPT LOAD: the same call, twice).
    (commit,) = {c for c in redis_client.naming(keys.conversation_lock("talk-2"))
                 if c[0] == "EVALSHA" and keys.conversation("talk-2") in c}  # fmt: skip
    assert result["status"] == "succeeded"
    assert keys.job(result["job_id"]) in commit


# -- cancel -----------------------------------------------------------------------------------
def test_a_cancel_that_refuses_the_end_leaves_no_turn(
    steps, job_store, redis_client, conversations, backend
) -> None:
    _run(steps, job_store, input="first", conversation="talk-3")
    job = _submit(job_store, input="second", conversation="talk-3")
    # The cancel arrives while the run is being made: the success's commit is refused.
    backend.during_start = lambda running: job_store.request_cancel(running.id)
    assert steps.run("start", job.id, 0) == JobStatus.CANCELLED
    assert job_store.get(job.id).status == JobStatus.CANCELLED
    assert [t["text"] for t in conversations.load("talk-3", None).turns] == ["first", "answer 1"]
    assert redis_client.get(keys.conversation_lock("talk-3")) is None  # the next may go
    backend.during_start = None
    after = _run(steps, job_store, input="third", conversation="talk-3")
    assert after["history"]["items"] == 2
