"""runq's conversation records on fakeredis: the record, truncation, replay rendering,
and what the steps do with them (a recording backend, no servers)."""

from __future__ import annotations

import json
import time
from typing import Any

import fakeredis
import pytest

from runq.errors import InvalidJobError
from runq.runs import keys
from runq.runs.backends.base import NO_STREAMING, RunState, StreamSupport
from runq.runs.chains import Link
from runq.runs.conversations import replay
from runq.runs.conversations.history import ConversationHistory
from runq.runs.conversations.record import Conversation, ConversationStore, link_key
from runq.runs.conversations.truncation import TruncationPolicy, window
from runq.runs.job import Job, JobSpec, JobStatus
from runq.runs.links import LinkServices
from runq.runs.retry import RetryPolicies
from runq.runs.steps import Steps
from runq.runs.store import JobStore


def _turns(n: int) -> list[dict[str, Any]]:
    return [{"role": "user" if i % 2 == 0 else "assistant", "text": f"turn {i}"} for i in range(n)]


# -- the record ------------------------------------------------------------------------
def test_a_record_round_trips_with_a_ttl(fake_redis: fakeredis.FakeRedis) -> None:
    store = ConversationStore(fake_redis, ttl=600, max_bytes=10_000)
    record = Conversation("rqc_1", tenant="acme", instructions="Be brief.", turns=_turns(2))
    record.record_handle("k", {"response_id": "resp_1"})
    store.save(record)
    assert 0 < fake_redis.ttl(keys.conversation("rqc_1")) <= 600
    again = store.load("rqc_1", "acme")
    assert again.turns == _turns(2)
    assert again.handle_for("k") == {"response_id": "resp_1"}
    assert again.transcript()[0] == {"role": "system", "text": "Be brief."}


def test_another_tenant_does_not_find_a_conversation(fake_redis: fakeredis.FakeRedis) -> None:
    store = ConversationStore(fake_redis, ttl=600, max_bytes=10_000)
    store.save(Conversation("rqc_1", tenant="acme", turns=_turns(2)))
    with pytest.raises(Exception, match="no conversation 'rqc_1'"):
        store.load("rqc_1", "other")
    with pytest.raises(Exception, match="no conversation"):
        store.load("rqc_1", None)


def test_a_handle_holds_only_while_it_covers_every_turn() -> None:
    record = Conversation("rqc_1", turns=_turns(2))
    record.record_handle("responses", {"response_id": "resp_1"})
    assert record.handle_for("responses") == {"response_id": "resp_1"}
    record.add_turns(_turns(2))  # another link answered the next turn
    assert record.handle_for("responses") is None
    assert record.handle_for("never-recorded") is None


def test_past_the_size_cap_the_oldest_turns_are_dropped(fake_redis: fakeredis.FakeRedis) -> None:
    store = ConversationStore(fake_redis, ttl=600, max_bytes=1200)
    record = Conversation(
        "rqc_1",
        instructions="Keep me.",
        turns=[
            {"role": "user" if i % 2 == 0 else "assistant", "text": f"{i} " + "x" * 100}
            for i in range(20)
        ],
    )
    store.save(record)
    raw = fake_redis.get(keys.conversation("rqc_1"))
    assert len(raw) <= 1200
    saved = json.loads(raw)
    assert saved["instructions"] == "Keep me."
    assert saved["dropped"] > 0 and saved["dropped"] % 2 == 0
    assert saved["turns"][0]["role"] == "user"
    assert saved["turns"][-1]["text"].startswith("19 ")
    assert len(saved["turns"]) + saved["dropped"] == 20


def test_link_keys_hold_no_host_and_tell_endpoints_apart() -> None:
    own = link_key("responses", "gpt-5", None)
    other = link_key("responses", "gpt-5", "http://10.0.0.1:8000/v1")
    assert own != other and "10.0.0.1" not in other
    assert link_key("responses", "gpt-5-mini", None) != own  # a response id is per model
    assert link_key("assistants", "a", None) == link_key("assistants", "b", None)  # per server


def test_a_conversation_id_must_be_a_plain_name() -> None:
    with pytest.raises(InvalidJobError, match="conversation"):
        JobSpec(input="hi", conversation="bad id with spaces").validate()
    JobSpec(input="hi", conversation="rqc_abc-1.2").validate()


# -- truncation ------------------------------------------------------------------------
def test_the_window_keeps_the_last_turns() -> None:
    record = Conversation("rqc_1", turns=_turns(6))
    whole = window(record, TruncationPolicy(max_turns=50, max_tokens=10_000))
    assert (len(whole.turns), whole.truncated) == (6, False)
    last = window(record, TruncationPolicy(max_turns=4, max_tokens=10_000))
    assert [t["text"] for t in last.turns] == ["turn 2", "turn 3", "turn 4", "turn 5"]
    assert last.truncated


def test_the_window_fits_the_token_budget_and_starts_with_a_user_turn() -> None:
    record = Conversation(
        "rqc_1",
        turns=[
            {"role": "user", "text": "a" * 400},
            {"role": "assistant", "text": "b" * 400},
            {"role": "user", "text": "c" * 40},
            {"role": "assistant", "text": "d" * 40},
        ],
    )
    kept = window(record, TruncationPolicy(max_turns=50, max_tokens=120))
    # 100 + 100 + 10 + 10 tokens: the first user turn goes; its answer would lead, so it goes
    assert [t["text"][0] for t in kept.turns] == ["c", "d"]
    assert kept.truncated


def test_turns_the_record_dropped_make_every_window_truncated() -> None:
    record = Conversation("rqc_1", turns=_turns(2), dropped=2)
    assert window(record, TruncationPolicy()).truncated


# -- replay rendering --------------------------------------------------------------------
TURNS = [
    {"role": "user", "text": "What is 2+2? See the file.", "files": ["file-1"]},
    {
        "role": "assistant",
        "text": "2 + 2 = 4.",
        "citations": [{"file_id": "file-1"}],
        "tool_calls": [
            {"call_id": "c1", "name": "calculator", "arguments": '{"e":"2+2"}', "output": "4"}
        ],
    },
]


def test_chat_replay_is_messages_with_tool_calls_and_outputs() -> None:
    assert replay.chat_messages(TURNS) == [
        {"role": "user", "content": "What is 2+2? See the file."},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "calculator", "arguments": '{"e":"2+2"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "4"},
        {"role": "assistant", "content": "2 + 2 = 4."},
    ]


def test_responses_replay_is_input_items() -> None:
    assert replay.responses_items(TURNS) == [
        {"role": "user", "content": "What is 2+2? See the file."},
        {
            "type": "function_call",
            "call_id": "c1",
            "name": "calculator",
            "arguments": '{"e":"2+2"}',
        },
        {"type": "function_call_output", "call_id": "c1", "output": "4"},
        {"role": "assistant", "content": "2 + 2 = 4."},
    ]


def test_assistants_replay_seeds_messages_with_files_and_tells_tool_calls() -> None:
    user, answer = replay.thread_messages(TURNS)
    assert user["attachments"] == [{"file_id": "file-1", "tools": [{"type": "file_search"}]}]
    assert answer["role"] == "assistant"
    assert answer["content"] == '[tool calls: calculator({"e":"2+2"}) -> 4]\n2 + 2 = 4.'


def test_a_jobs_input_becomes_turns() -> None:
    assert replay.input_turns("hi") == [{"role": "user", "text": "hi"}]
    listed = replay.input_turns(
        [
            {"role": "system", "content": "ignored: instructions"},
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "look"},
                    {"type": "input_file", "file_id": "file-9"},
                ],
            },
            {"type": "function_call_output", "call_id": "x", "output": "1"},
        ]
    )
    assert listed == [{"role": "user", "text": "look", "files": ["file-9"]}]


# -- the steps ---------------------------------------------------------------------------
class RecordingBackend:
    """Answers every start at once, and keeps what history each request carried."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.seen: list[dict[str, Any]] = []

    def start(self, job: Job) -> RunState:
        self.seen.append(
            {
                "replayed": replay.chat_messages(replay.replayed(job)),
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


def _drive(
    store: JobStore, fake_redis, scheduler, backends, history, **spec: Any
) -> dict[str, Any]:
    steps = Steps(
        store,
        lambda job, link: backends[link.backend],
        scheduler,
        lambda job_id, rnd: {},
        retry=RetryPolicies(test_mode=True),
        services=LinkServices(fake_redis, breaker_failures=0),
        history=history,
    )
    job = Job.new(JobSpec(**spec).validate())
    store.create(job, [], lease_until=time.time() + 60)
    assert steps.run("start", job.id, 0) == JobStatus.SUCCEEDED
    return store.get(job.id).result()


def test_continuations_replay_or_go_native(store, fake_redis, scheduler) -> None:
    history = ConversationHistory(
        ConversationStore(fake_redis, ttl=600, max_bytes=100_000), TruncationPolicy()
    )
    backends = {"chat": RecordingBackend("chat"), "responses": RecordingBackend("responses")}
    first = _drive(
        store,
        fake_redis,
        scheduler,
        backends,
        history,
        input="My name is Zed.",
        backend="chat",
        instructions="Be kind.",
    )
    assert first["history"] == {"carried": "none", "items": 0, "truncated": False}
    assert first["conversation"].startswith("rqc_")
    # On responses: no handle covers the chat turn, so the turns are replayed.
    second = _drive(
        store,
        fake_redis,
        scheduler,
        backends,
        history,
        input="And my name?",
        backend="responses",
        continue_job=first["job_id"],
    )
    assert second["conversation"] == first["conversation"]
    assert second["history"] == {"carried": "replayed", "items": 2, "truncated": False}
    assert backends["responses"].seen[0]["replayed"] == [
        {"role": "user", "content": "My name is Zed."},
        {"role": "assistant", "content": "answer 1"},
    ]
    # Responses again: its response covers every turn now, so it continues natively.
    third = _drive(
        store,
        fake_redis,
        scheduler,
        backends,
        history,
        input="Once more?",
        backend="responses",
        continue_job=second["job_id"],
    )
    assert third["history"] == {"carried": "native", "items": 4, "truncated": False}
    assert backends["responses"].seen[1] == {"replayed": [], "response_id": "resp_1"}
    record = ConversationStore(fake_redis, ttl=600, max_bytes=100_000).load(
        first["conversation"], None
    )
    assert [t["text"] for t in record.turns] == [
        "My name is Zed.",
        "answer 1",
        "And my name?",
        "answer 1",
        "Once more?",
        "answer 2",
    ]
    assert record.instructions == "Be kind."


def test_a_small_window_says_it_truncated(store, fake_redis, scheduler) -> None:
    history = ConversationHistory(
        ConversationStore(fake_redis, ttl=600, max_bytes=100_000), TruncationPolicy(max_turns=2)
    )
    backends = {"chat": RecordingBackend("chat")}
    first = _drive(store, fake_redis, scheduler, backends, history, input="one", backend="chat")
    second = _drive(
        store,
        fake_redis,
        scheduler,
        backends,
        history,
        input="two",
        backend="chat",
        conversation=first["conversation"],
    )
    assert second["history"]["truncated"] is False
    third = _drive(
        store,
        fake_redis,
        scheduler,
        backends,
        history,
        input="three",
        backend="chat",
        conversation=first["conversation"],
    )
    assert third["history"] == {"carried": "replayed", "items": 2, "truncated": True}
    assert [m["content"] for m in backends["chat"].seen[-1]["replayed"]] == ["two", "answer 2"]


def test_a_job_cannot_continue_another_tenants_conversation(store, fake_redis, scheduler) -> None:
    history = ConversationHistory(
        ConversationStore(fake_redis, ttl=600, max_bytes=100_000), TruncationPolicy()
    )
    backends = {"chat": RecordingBackend("chat")}
    mine = _drive(
        store,
        fake_redis,
        scheduler,
        backends,
        history,
        input="secret",
        backend="chat",
        tenant="alice",
    )
    steps = Steps(
        store,
        lambda job, link: backends["chat"],
        scheduler,
        lambda j, r: {},
        services=LinkServices(fake_redis, breaker_failures=0),
        history=history,
    )
    job = Job.new(
        JobSpec(
            input="tell me", backend="chat", tenant="bob", conversation=mine["conversation"]
        ).validate()
    )
    store.create(job, [], lease_until=time.time() + 60)
    steps.run("start", job.id, 0)
    failed = store.get(job.id)
    assert failed.status == JobStatus.FAILED
    assert "no conversation" in failed.error["message"]
    assert len(backends["chat"].seen) == 1  # the model never saw bob's request


def test_links_name_their_handles_by_key() -> None:
    link = Link(backend="responses", model="gpt-5")
    assert link_key(link.backend, link.model, link.base_url).startswith("responses:gpt-5@")
