"""Double-texting strategies on fakeredis: reject fails, interrupt asks the holder to stop
once (only a holder of the same tenant), and the turn taken keeps or rolls back the
interrupted turn in the conversation's record."""

from __future__ import annotations

import json
import time

import fakeredis
import pytest

from runq.errors import ConversationBusyError, InvalidJobError
from runq.runs import keys
from runq.runs.conversations.record import Conversation, ConversationStore
from runq.runs.job import Job, JobSpec, JobStatus
from runq.runs.multitask import Multitask, remove_turn
from runq.runs.store import JobStore


def _job(store: JobStore, text: str, multitask: str | None = None, tenant: str = "acme") -> Job:
    job = Job.new(JobSpec(input=text, conversation="c1", multitask=multitask, tenant=tenant))
    job.status = JobStatus.RUNNING
    store.create(job, [], lease_until=time.time() + 60)
    return job


@pytest.fixture
def conversations(fake_redis: fakeredis.FakeRedis) -> ConversationStore:
    return ConversationStore(fake_redis, ttl=600, max_bytes=100_000)


def test_an_unknown_strategy_is_refused_by_name() -> None:
    with pytest.raises(InvalidJobError, match="multitask"):
        JobSpec(input="x", multitask="shout").validate()


def test_reject_fails_and_enqueue_waits(store: JobStore) -> None:
    holder = _job(store, "first")
    sent: list[str] = []
    multitask = Multitask(store, sent.append, None)
    with pytest.raises(ConversationBusyError) as busy:
        multitask.busy(_job(store, "second", "reject"), holder.id)
    assert busy.value.code == "conversation_busy" and holder.id in str(busy.value)
    assert multitask.busy(_job(store, "third", "enqueue"), holder.id) == holder.id
    assert multitask.busy(_job(store, "fourth"), holder.id) == holder.id
    assert sent == [] and not store.cancel_requested(holder.id)


def test_interrupt_asks_the_holder_to_stop_once(store: JobStore) -> None:
    holder = _job(store, "first")
    sent: list[str] = []
    multitask = Multitask(store, sent.append, None)
    newcomer = _job(store, "second", "interrupt")
    for _ in range(3):  # the start step comes back while the holder ends
        assert multitask.busy(newcomer, holder.id) == holder.id
    assert sent == [holder.id]
    assert store.cancel_requested(holder.id)

    stranger = _job(store, "theirs", tenant="other")
    assert multitask.busy(_job(store, "mine", "rollback"), stranger.id) == stranger.id
    assert not store.cancel_requested(stranger.id), "another tenant's job is never stopped"


@pytest.mark.parametrize("strategy", ["interrupt", "rollback"])
def test_the_turn_taken_keeps_or_drops_the_interrupted_turn(
    store: JobStore, conversations: ConversationStore, strategy: str
) -> None:
    record = Conversation("c1", tenant="acme")
    record.add_turns([{"role": "user", "text": "My name is Zed."},
                      {"role": "assistant", "text": "Hi Zed.", "job_id": "job_0"}])  # fmt: skip
    record.record_handle("responses:m@x", {"response_id": "resp_0"})
    conversations.save(record)
    holder = _job(store, "Tell me a story.")
    multitask = Multitask(store, lambda _: None, conversations)
    newcomer = _job(store, "What is my name?", strategy)
    multitask.busy(newcomer, holder.id)
    data = store.get(holder.id)
    data.status = JobStatus.CANCELLED
    store.redis.set(keys.job(holder.id), json.dumps(data.to_dict()))
    multitask.took_turn(newcomer)
    multitask.took_turn(newcomer)  # a start step run twice changes nothing more
    turns = conversations.get("c1").turns  # type: ignore[union-attr]
    if strategy == "interrupt":
        assert turns[-1] == {"role": "user", "text": "Tell me a story.", "job_id": holder.id,
                             "interrupted": True}  # fmt: skip
        assert len(turns) == 3
    else:
        assert [t["text"] for t in turns] == ["My name is Zed.", "Hi Zed."]


def test_remove_turn_takes_an_answer_with_its_question(conversations: ConversationStore) -> None:
    record = Conversation("c1", tenant="acme")
    record.add_turns([{"role": "user", "text": "one"},
                      {"role": "assistant", "text": "1", "job_id": "job_a"},
                      {"role": "user", "text": "two"},
                      {"role": "assistant", "text": "2", "job_id": "job_b"}])  # fmt: skip
    record.record_handle("responses:m@x", {"response_id": "resp_b"})
    conversations.save(record)
    assert remove_turn(conversations, "c1", "job_b", "other") == 0, "another tenant's record"
    assert remove_turn(conversations, "c1", "job_b", "acme") == 2
    kept = conversations.get("c1")
    assert kept is not None and [t["text"] for t in kept.turns] == ["one", "1"]
    assert kept.handles == {}, "a handle that covered the removed turn is dropped"
