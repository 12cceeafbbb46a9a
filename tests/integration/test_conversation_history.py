"""Conversations that survive fallbacks and backend changes, for real: a Redis, a worker,
the sandbox over HTTP (whose echo model lists the earlier user turns it was given:
`Echo: <last> (earlier: "<t1>" | "<t2>")`), the `runq` CLI and the Python API."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from runq.config.settings import load_settings
from runq.producers.client.sync import Client
from runq.runs.conversations.ids import of_job
from runq.worker.launcher import SandboxProcess, Stack, free_port
from tests.conftest import wait_for
from tests.integration.conftest import stack_on, worker_log

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
ZED = "My name is Zed and I like tea."
DEAD = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens: connection refused
CHAINS = {
    # The first link is down, so the chat link answers: a fallback mid-conversation.
    "chat_fallback": [
        {"backend": "responses", "model": "gpt-5", "base_url": DEAD},
        {"backend": "chat", "model": "gpt-5-mini"},
    ],
}
MAX_BYTES = 4096  # the record's size cap for this module (RUNQ_CONVERSATION_MAX_BYTES)


@pytest.fixture(scope="module")
def stack(redis_url: str, sandbox: SandboxProcess, tmp_path_factory) -> Iterator[Stack]:
    env = {
        "RUNQ_CHAINS": json.dumps(CHAINS),
        "RUNQ_REQUEST_TIMEOUT": "5",
        "RUNQ_CONVERSATION_MAX_BYTES": str(MAX_BYTES),
    }
    with stack_on(redis_url, sandbox, tmp_path_factory.mktemp("conv"), env=env) as running:
        yield running


@pytest.fixture(scope="module")
def client(stack: Stack, sandbox: SandboxProcess) -> Client:
    settings = load_settings(
        redis_url=stack.redis_url,
        chains=CHAINS,
        openai_base_url=sandbox.base_url,
        conversation_max_bytes=MAX_BYTES,
    )
    return Client(stack.redis_url, settings)


def _done(handle) -> dict:
    result = handle.result(timeout=90)
    assert result["status"] == "succeeded", result["error"]
    return result


def test_a_turn_answered_by_a_chat_fallback_is_remembered(client: Client) -> None:
    first = _done(client.submit(ZED, chain="chat_fallback"))
    assert (first["source"], first["fallback_used"]) == ("chat:gpt-5-mini", True)
    # A one-turn conversation has no record of its own yet: it is exported from the job.
    exported = client.export_conversation(first["conversation"])
    assert [json.loads(line)["text"] for line in exported.splitlines()] == [
        ZED,
        first["output_text"],
    ]
    second = _done(client.submit("What is my name?", chain="chat_fallback",
                                 continue_job=first["job_id"]))  # fmt: skip
    assert second["output_text"] == f'Echo: What is my name? (earlier: "{ZED}")'
    assert second["history"] == {"carried": "replayed", "items": 2, "truncated": False}
    assert second["conversation"] == first["conversation"]
    # The next turn on another backend (no chain: responses) sees both earlier turns.
    third = _done(client.submit("And what do I like?", backend="responses",
                                continue_job=second["job_id"]))  # fmt: skip
    assert third["output_text"] == (
        f'Echo: And what do I like? (earlier: "{ZED}" | "What is my name?")'
    )
    assert third["history"]["carried"] == "replayed"
    # Responses again: its own response holds every turn now, so it continues natively.
    fourth = _done(client.submit("Still there?", backend="responses",
                                 continue_job=third["job_id"]))  # fmt: skip
    assert fourth["history"] == {"carried": "native", "items": 6, "truncated": False}
    assert ZED in fourth["output_text"] and "And what do I like?" in fourth["output_text"]


SLOW = {"sandbox_latency_ms": "1500"}  # the first turn is still running when the second comes


@pytest.mark.parametrize("named", [True, False], ids=["named-id", "id-a-one-shot-job-began"])
def test_two_jobs_on_one_new_conversation_take_turns(client: Client, named: bool) -> None:
    """The second job, submitted while the first runs, starts its run only after the
    first has ended, and sees its turn: whether the producer named the new conversation
    or the first job began it on its own (then it took no lock, and writes no record)."""
    conversation = f"talk-{uuid.uuid4().hex}" if named else None
    first = client.submit(ZED, backend="responses", conversation=conversation, metadata=SLOW)
    # Submitted together, two jobs on a named conversation take turns in the order their
    # starts reach the conversation's lock, which need not be the order they were sent
    # (docs/conversations.md): the second comes once the first runs, as said above.
    wait_for(lambda: first.job().handle.get("response_id"), interval=0.01, timeout=30)
    second = client.submit("What is my name?", backend="responses",
                           conversation=conversation or of_job(first.id))  # fmt: skip
    one, two = _done(first), _done(second)
    before, after = first.job(), second.job()
    assert after.timings["queued_at"] < before.timings["finished_at"]  # it had to wait
    assert after.timings["started_at"] >= before.timings["finished_at"]
    assert two["conversation"] == one["conversation"]
    assert two["history"] == {"carried": "native", "items": 2, "truncated": False}
    assert ZED in two["output_text"]


def test_each_turn_in_line_is_started_by_the_end_of_the_one_before(
    stack: Stack, client: Client
) -> None:
    """Three turns on a conversation, the last two sent while the first runs: each one's
    start is sent by the end of the turn before it (the worker logs the hand-over),
    not found by its own look, which comes only every 30 s."""
    first = client.submit(ZED, backend="responses", metadata=SLOW)
    wait_for(lambda: first.job().handle.get("response_id"), interval=0.01, timeout=30)
    conversation = of_job(first.id)
    second = client.submit("What is my name?", backend="responses", conversation=conversation)
    third = client.submit("And what do I like?", backend="responses", conversation=conversation)
    results = [_done(handle) for handle in (first, second, third)]
    jobs = [handle.job() for handle in (first, second, third)]
    for before, after in itertools.pairwise(jobs):
        assert after.timings["started_at"] >= before.timings["finished_at"]

    def hand_overs() -> set[tuple[str, str]]:
        found = set()
        for line in worker_log(stack).splitlines():
            if '"job.turn_handed_over"' in line:
                record = json.loads(line)
                found.add((record["job_id"], record["next_job"]))
        return found

    wanted = {(first.id, second.id), (second.id, third.id)}
    wait_for(lambda: wanted <= hand_overs(), timeout=10, what="both hand-overs logged")
    assert "tea" in results[2]["output_text"]  # the third saw the first turn


def _cli(stack: Stack, tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "RUNQ_TOOL_MODULES"}
    env.update(REDIS_URL=str(stack.redis_url), PYTHONPATH=str(ROOT))
    command = [sys.executable, "-m", "runq.producers.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp, timeout=120)


def test_backend_chat_continue_keeps_the_history(stack: Stack, tmp_path: Path) -> None:
    first = _cli(stack, tmp_path, "submit", ZED, "--backend", "chat", "--wait", "--json")
    assert first.returncode == 0, first.stderr
    job_id = json.loads(first.stdout)["job_id"]
    second = _cli(stack, tmp_path, "submit", "What is my name?", "--backend", "chat",
                  "--continue", job_id, "--wait", "--json")  # fmt: skip
    assert second.returncode == 0, second.stderr
    result = json.loads(second.stdout)
    assert result["output_text"] == f'Echo: What is my name? (earlier: "{ZED}")'
    assert result["history"] == {"carried": "replayed", "items": 2, "truncated": False}


def test_an_assistants_conversation_goes_on_under_responses(client: Client) -> None:
    first = _done(client.submit(ZED, backend="assistants"))
    second = _done(client.submit("What is my name?", backend="responses",
                                 continue_job=first["job_id"]))  # fmt: skip
    assert second["output_text"] == f'Echo: What is my name? (earlier: "{ZED}")'
    assert second["history"]["carried"] == "replayed"
    # Back on Assistants: the old thread lacks the Responses turn, so a new thread is
    # seeded with all of them.
    third = _done(client.submit("Anything else?", backend="assistants",
                                continue_job=second["job_id"]))  # fmt: skip
    assert third["output_text"] == (f'Echo: Anything else? (earlier: "{ZED}" | "What is my name?")')
    assert third["backend_ids"]["thread_id"] != first["backend_ids"]["thread_id"]
    # And once more on Assistants: that thread holds every turn, so it continues there.
    fourth = _done(client.submit("Last one.", backend="assistants",
                                 continue_job=third["job_id"]))  # fmt: skip
    assert fourth["history"]["carried"] == "native"
    assert fourth["backend_ids"]["thread_id"] == third["backend_ids"]["thread_id"]


def test_a_conversation_over_its_size_cap_is_truncated_and_says_so(client: Client) -> None:
    first_words, second_words = "A" * 900, "B" * 900  # two such turns pass the cap
    first = _done(client.submit(first_words, backend="chat"))
    second = _done(client.submit(second_words, backend="chat", conversation=first["conversation"]))
    assert second["history"] == {"carried": "replayed", "items": 2, "truncated": False}
    third = _done(client.submit("What did I say?", backend="chat",
                                conversation=first["conversation"]))  # fmt: skip
    assert third["history"]["truncated"] is True
    # The oldest pair was dropped to stay under the cap; the newest is still carried.
    assert second_words in third["output_text"] and first_words not in third["output_text"]
    exported = client.export_conversation(first["conversation"])
    assert len(exported.encode()) <= MAX_BYTES


def test_an_imported_assistants_thread_continues_on_chat(
    client: Client, sandbox: SandboxProcess, stack: Stack, tmp_path: Path
) -> None:
    api = openai.OpenAI(base_url=sandbox.base_url, api_key="sandbox-no-key")
    thread = api.beta.threads.create()
    said = [f"Message {n}: I keep {n} teapots." for n in range(1, 6)]
    for text in said:
        api.beta.threads.messages.create(thread.id, role="user", content=text)
    conversation = client.import_conversation(thread_id=thread.id)
    result = _done(client.submit("How many teapots?", backend="chat", conversation=conversation))
    earlier = " | ".join(f'"{text}"' for text in said)
    assert result["output_text"] == f"Echo: How many teapots? (earlier: {earlier})"
    assert result["history"] == {"carried": "replayed", "items": 5, "truncated": False}
    # The transcript comes out as JSONL, the five messages then the new turn.
    out = _cli(stack, tmp_path, "conversations", "export", conversation)
    assert out.returncode == 0, out.stderr
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert [line["text"] for line in lines[:6]] == [*said, "How many teapots?"]
    assert lines[-1]["role"] == "assistant"


def test_a_jsonl_transcript_is_imported_by_the_cli(stack: Stack, tmp_path: Path) -> None:
    transcript = tmp_path / "chat.jsonl"
    transcript.write_text(
        '{"role": "system", "text": "Answer briefly."}\n'
        f'{{"role": "user", "text": "{ZED}"}}\n'
        '{"role": "assistant", "text": "Hello Zed."}\n'
    )
    done = _cli(stack, tmp_path, "conversations", "import", "--jsonl", str(transcript))
    assert done.returncode == 0, done.stderr
    conversation = done.stdout.strip()
    asked = _cli(stack, tmp_path, "submit", "What is my name?", "--backend", "chat",
                 "--conversation", conversation, "--wait", "--json")  # fmt: skip
    assert asked.returncode == 0, asked.stderr
    assert json.loads(asked.stdout)["output_text"] == f'Echo: What is my name? (earlier: "{ZED}")'
    bad = _cli(stack, tmp_path, "conversations", "import", "--jsonl", str(transcript),
               "--id", conversation)  # fmt: skip
    assert bad.returncode != 0 and "exists already" in bad.stderr


def _job_result(base: str, token: str, job_id: str) -> dict:
    def ended() -> dict | None:
        view = httpx.get(f"{base}/v1/jobs/{job_id}", headers=_auth(token), timeout=10).json()
        return view if view["status"] in ("succeeded", "failed", "cancelled") else None

    return wait_for(ended, timeout=90, what=f"job {job_id} to end")


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_the_gateway_keeps_each_tenants_conversations_its_own(gateway: str) -> None:
    lines = [{"role": "user", "text": ZED}, {"role": "assistant", "text": "Hello Zed."}]
    made = httpx.post(f"{gateway}/v1/conversations", json={"transcript": lines},
                      headers=_auth("token-a"), timeout=10)  # fmt: skip
    assert made.status_code == 201, made.text
    conversation = made.json()["conversation"]
    assert made.json()["turns"] == 2
    seen = httpx.get(f"{gateway}/v1/conversations/{conversation}", headers=_auth("token-a"))
    assert seen.json()["transcript"] == lines
    # Bob neither reads alice's conversation nor continues it.
    other = httpx.get(f"{gateway}/v1/conversations/{conversation}", headers=_auth("token-b"))
    assert other.status_code == 404
    body = {"input": "What is my name?", "backend": "chat", "conversation": conversation}
    for token, expect in (("token-a", "succeeded"), ("token-b", "failed")):
        sent = httpx.post(f"{gateway}/v1/jobs", json=body, headers=_auth(token), timeout=10)
        assert sent.status_code == 201, sent.text
        view = _job_result(gateway, token, sent.json()["job_id"])
        assert view["status"] == expect
        if expect == "succeeded":
            assert view["output_text"] == f'Echo: What is my name? (earlier: "{ZED}")'
        else:
            assert "no conversation" in view["error"]["message"]
    bad = httpx.post(f"{gateway}/v1/conversations", json={"transcript": [{"role": "robot"}]},
                     headers=_auth("token-a"), timeout=10)  # fmt: skip
    assert bad.status_code == 422 and "role" in bad.text
