"""Double-texting through the gateway: a second job on a busy conversation enqueues,
is rejected, interrupts the first, or rolls it back (runs.multitask).

The first job of each conversation is slow on purpose (its Responses run answers after
a few seconds), so the second arrives while it runs; the sandbox's stats say whether the
first run was cancelled at the backend.
"""

from __future__ import annotations

import json
import urllib.request
import uuid
from typing import Any

import httpx
import pytest

from runq.worker.launcher import Stack
from tests.conftest import wait_for

pytestmark = pytest.mark.integration

A = {"Authorization": "Bearer token-a"}
SLOW = "sandbox_latency_ms: 4000"  # the first job's run answers after 4 s


def _stats(stack: Stack) -> dict[str, Any]:
    assert stack.base_url is not None
    url = stack.base_url.removesuffix("/v1") + "/sandbox/stats"
    with urllib.request.urlopen(url) as reply:
        return dict(json.loads(reply.read()))


def _submit(base: str, body: dict[str, Any]) -> str:
    resp = httpx.post(f"{base}/v1/jobs", json=body, headers=A, timeout=10)
    assert resp.status_code == 201, resp.text
    return str(resp.json()["job_id"])


def _job(base: str, job_id: str) -> dict[str, Any]:
    resp = httpx.get(f"{base}/v1/jobs/{job_id}", headers=A, timeout=10)
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def _ended(base: str, job_id: str, timeout: float = 40) -> dict[str, Any]:
    return wait_for(
        lambda: (j := _job(base, job_id))["status"] in ("succeeded", "failed", "cancelled") and j,
        timeout=timeout,
        what=f"job {job_id} to end",
    )


def _transcript(base: str, conversation: str) -> list[dict[str, Any]]:
    resp = httpx.get(f"{base}/v1/conversations/{conversation}", headers=A, timeout=10)
    assert resp.status_code == 200, resp.text
    return list(resp.json()["transcript"])


def _busy_conversation(base: str) -> tuple[str, str]:
    """A conversation with one answered turn, whose second job's run is in flight."""
    conversation = "dt-" + uuid.uuid4().hex[:12]
    first = _submit(base, {"input": "My name is Zed.", "conversation": conversation})
    assert _ended(base, first)["status"] == "succeeded"
    slow = _submit(base, {"input": "Tell me a long story.", "conversation": conversation,
                          "instructions": SLOW})  # fmt: skip
    wait_for(lambda: _job(base, slow)["backend_ids"].get("response_id"), timeout=20,
             what="the slow job's run")  # fmt: skip
    return conversation, slow


def test_enqueue_waits_for_the_running_job(gateway: str, stack: Stack) -> None:
    conversation, slow = _busy_conversation(gateway)
    second = _submit(gateway, {"input": "What is my name?", "conversation": conversation,
                               "multitask": "enqueue"})  # fmt: skip
    first_result, second_result = _ended(gateway, slow), _ended(gateway, second)
    assert first_result["status"] == "succeeded"
    assert second_result["status"] == "succeeded"
    assert second_result["timings"]["started_at"] >= first_result["timings"]["finished_at"]
    assert _stats(stack)["responses_cancelled_by_job"].get(slow) is None
    texts = [t["text"] for t in _transcript(gateway, conversation) if t["role"] == "user"]
    assert texts == ["My name is Zed.", "Tell me a long story.", "What is my name?"]


def test_turns_submitted_together_run_in_submission_order(gateway: str) -> None:
    # Eight turns sent at once: their starts reach the conversation in whatever order
    # the worker's processes and threads take them; the turns still go in the order
    # they were submitted.
    conversation = "fifo-" + uuid.uuid4().hex[:12]
    questions = [f"Question number {n}?" for n in range(1, 9)]
    jobs = [_submit(gateway, {"input": q, "conversation": conversation}) for q in questions]
    ended = [_ended(gateway, job, timeout=60) for job in jobs]
    assert [j["status"] for j in ended] == ["succeeded"] * len(jobs)
    starts = [j["timings"]["started_at"] for j in ended]
    assert starts == sorted(starts), "a later turn started before an earlier one"
    texts = [t["text"] for t in _transcript(gateway, conversation) if t["role"] == "user"]
    assert texts == questions


def test_reject_fails_at_once_with_conversation_busy(gateway: str, stack: Stack) -> None:
    conversation, slow = _busy_conversation(gateway)
    second = _submit(gateway, {"input": "What is my name?", "conversation": conversation,
                               "multitask": "reject"})  # fmt: skip
    refused = _ended(gateway, second, timeout=3)  # long before the first job's 4 s run ends
    assert refused["status"] == "failed"
    assert refused["error"]["code"] == "conversation_busy"
    assert slow in refused["error"]["message"]
    assert _job(gateway, slow)["status"] == "running", "the running job was left alone"
    assert _ended(gateway, slow)["status"] == "succeeded"
    assert _stats(stack)["responses_created_by_job"].get(second) is None


@pytest.mark.parametrize("strategy", ["interrupt", "rollback"])
def test_interrupt_and_rollback_cancel_the_running_run(
    gateway: str, stack: Stack, strategy: str
) -> None:
    conversation, slow = _busy_conversation(gateway)
    second = _submit(gateway, {"input": "What is my name?", "conversation": conversation,
                               "multitask": strategy})  # fmt: skip
    interrupted = _ended(gateway, slow, timeout=3)
    assert interrupted["status"] == "cancelled"
    answer = _ended(gateway, second)
    assert answer["status"] == "succeeded", answer
    assert answer["timings"]["started_at"] >= interrupted["timings"]["finished_at"]
    stats = _stats(stack)
    assert stats["responses_created_by_job"].get(slow) == 1
    assert stats["responses_cancelled_by_job"].get(slow) == 1, "the run went on at the backend"
    turns = _transcript(gateway, conversation)
    users = [t["text"] for t in turns if t["role"] == "user"]
    if strategy == "interrupt":
        # The interrupted question stays in the history, marked; the answer saw it.
        assert users == ["My name is Zed.", "Tell me a long story.", "What is my name?"]
        kept = [t for t in turns if t.get("job_id") == slow]
        assert kept and all(t.get("interrupted") for t in kept)
        assert answer["history"]["carried"] == "replayed"
    else:
        # Rolled back: as if the interrupted question had never been asked.
        assert users == ["My name is Zed.", "What is my name?"]
        assert not any(t.get("job_id") == slow for t in turns)
    assert len([t for t in turns if t["role"] == "assistant"]) == 2
