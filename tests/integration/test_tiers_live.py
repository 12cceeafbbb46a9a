"""Cost tiers end to end: real Redis, real Celery workers, the sandbox over HTTP.

The sandbox here runs batches on a compressed clock (`batch_time_scale`) and refuses
30 % of flex requests with 429 `resource_unavailable` (seeded dice); the workers cut a
batch after 2 s and look at open batches every second.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from runq.producers.client.sync import Client
from runq.runs import keys
from runq.runs.events import EventLog
from runq.worker.launcher import SandboxProcess, Stack, WorkerProcess
from tests.conftest import wait_for
from tests.integration.conftest import WORKER_ENV, client_for, stack_on, worker_log

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "examples" / "docs"
QUESTIONS = ROOT / "examples" / "questions.txt"
SANDBOX_ENV = {
    "RUNQ_SANDBOX_BATCH_TIME_SCALE": "0.02",
    "RUNQ_SANDBOX_FLEX_UNAVAILABLE_RATE": "0.3",
}
# The batcher's lease is max(60 s, 4 request timeouts): a worker killed while it holds
# it leaves the batcher idle that long. 10 s keeps it at 60 s, inside the tests' waits.
ENV = {"RUNQ_BATCH_MAX_AGE": "2", "RUNQ_BATCH_POLL_INTERVAL": "1", "RUNQ_BATCH_TICK": "0.5",
       "RUNQ_REQUEST_TIMEOUT": "10"}  # fmt: skip


@pytest.fixture(scope="module")
def tier_sandbox() -> Iterator[SandboxProcess]:
    proc = SandboxProcess(latency_ms=50, env=SANDBOX_ENV).start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def stack(redis_url: str, tier_sandbox: SandboxProcess, tmp_path_factory) -> Iterator[Stack]:
    home = tmp_path_factory.mktemp("tiers")
    with stack_on(redis_url, tier_sandbox, home, env=ENV) as running:
        yield running


@pytest.fixture(scope="module")
def client(stack: Stack) -> Client:
    return client_for(stack)


def stats(stack: Stack) -> dict[str, Any]:
    url = str(stack.base_url).removesuffix("/v1") + "/sandbox/stats"
    with urllib.request.urlopen(url, timeout=10) as reply:
        return dict(json.loads(reply.read()))


def batch_results(client: Client, job_id: str) -> list[dict[str, Any]]:
    return [e.data for e in EventLog(client.redis).read(job_id) if e.type == "job.batch_result"]


def test_batch_jobs_share_one_batch_and_cost_half(stack: Stack, client: Client) -> None:
    before = stats(stack)
    handles = [client.submit(f"batch question {n}", tier="batch", deadline=600) for n in range(6)]
    results = [h.result(timeout=90) for h in handles]
    after = stats(stack)
    assert after["batches_created"] - before["batches_created"] == 1
    assert after["responses_created"] == before["responses_created"]  # no live request
    for result in results:
        assert result["status"] == "succeeded", result["error"]
        assert result["output_text"]
        assert result["tier"]["chosen"] == "batch"
        cost = result["cost"]
        assert cost["by_tier"]["batch"]["input_tokens"] > 0
        assert cost["usd"] == pytest.approx(cost["standard_usd"] / 2)
        assert result["backend_ids"]["batch_id"].startswith("batch_")
    for handle in handles:
        assert len(batch_results(client, handle.id)) == 1


def test_auto_with_a_short_deadline_uses_standard_and_says_why(
    stack: Stack, client: Client
) -> None:
    before = stats(stack)
    result = client.submit("quick question", tier="auto", deadline=60).result(timeout=60)
    assert result["status"] == "succeeded", result["error"]
    assert result["tier"]["chosen"] == "standard"
    assert "too short for batch, flex" in result["tier"]["reason"]
    assert stats(stack)["batches_created"] == before["batches_created"]
    assert result["cost"]["usd"] == pytest.approx(result["cost"]["standard_usd"])


def test_every_flex_job_finishes_though_flex_refuses_some(stack: Stack, client: Client) -> None:
    before = stats(stack)["requests_by_service_tier"].get("flex_refused", 0)
    handles = [client.submit(f"flex question {n}", tier="flex", deadline=120) for n in range(12)]
    results = [h.result(timeout=120) for h in handles]
    assert all(r["status"] == "succeeded" for r in results), [r["error"] for r in results]
    refused = stats(stack)["requests_by_service_tier"].get("flex_refused", 0) - before
    assert refused > 0
    moved = [r for r in results if r["tier"]["chosen"] == "standard"]
    assert len(moved) == refused  # each refusal moved its job to standard, and says so
    for result in moved:
        (attempt,) = [a for a in result["attempts"] if a["code"] == "resource_unavailable"]
        assert attempt["tier"] == "flex" and attempt["then"] == "standard"
        assert result["tier"]["moves"][0] == {
            "from": "flex", "to": "standard",
            "reason": "flex had no capacity (429 resource_unavailable)",
        }  # fmt: skip


def test_a_create_lost_with_its_worker_is_adopted_not_repeated(
    stack: Stack, client: Client
) -> None:
    """The batcher died between the backend's create and writing its id: the batch is
    found by its metadata and adopted, and its jobs are answered from it."""
    assert stack.base_url
    before = stats(stack)
    handles = [client.submit(f"adopted {n}", tier="batch", deadline=600) for n in range(3)]
    # Take the lines out of the workers' hands the way a cut does, then play the dead
    # batcher: intent written, batch created at the backend, id never written.
    redis = client.redis
    wait_for(lambda: redis.hlen(keys.batch_groups()) > 0, what="the lines to be queued")
    batch_id = wait_for(
        lambda: next((b.decode() for b in redis.smembers(keys.batches_open())), None),
        timeout=30, what="a batch to be cut",
    )  # fmt: skip
    wait_for(lambda: redis.hget(keys.batch(batch_id), "status") == b"created",
             interval=0.01, timeout=30, what="the batch to be created")  # fmt: skip
    # Hold the batcher's lease, as a tick would, so no worker moves the batch meanwhile.
    wait_for(lambda: redis.set(keys.batcher_lock(), "test", nx=True, px=30_000),
             interval=0.01, what="the batcher's lease")  # fmt: skip
    assert redis.hget(keys.batch(batch_id), "status") == b"created"
    assert stats(stack)["batches_created"] - before["batches_created"] == 1
    # Rewind to the moment before the id was written, as a killed batcher leaves it.
    redis.hset(keys.batch(batch_id), mapping={"status": "creating", "intent_at": "0"})
    redis.hdel(keys.batch(batch_id), "batch_id")
    redis.delete(keys.batcher_lock())
    results = [h.result(timeout=90) for h in handles]
    assert all(r["status"] == "succeeded" for r in results), [r["error"] for r in results]
    assert stats(stack)["batches_created"] - before["batches_created"] == 1
    assert '"event": "batch.adopted"' in worker_log(stack)
    for handle in handles:
        assert len(batch_results(client, handle.id)) == 1


def test_a_worker_killed_during_a_batch_gives_no_duplicate(stack: Stack, client: Client) -> None:
    assert stack.redis_url and stack.base_url
    before = stats(stack)
    handles = [client.submit(f"survivor {n}", tier="batch", deadline=600) for n in range(4)]
    redis = client.redis
    batch_id = wait_for(
        lambda: next((b.decode() for b in redis.smembers(keys.batches_open())), None),
        interval=0.01, timeout=30, what="a batch to be cut",
    )  # fmt: skip
    wait_for(lambda: redis.hget(keys.batch(batch_id), "status") == b"created",
             interval=0.01, timeout=30, what="the batch to be created")  # fmt: skip
    killed = stack.worker_procs[0]
    assert killed.proc is not None
    os.killpg(killed.proc.pid, signal.SIGKILL)  # mid-life: no warm shutdown
    killed.proc.wait(timeout=10)
    stack.worker_procs.remove(killed)
    replacement = WorkerProcess(
        stack.redis_url, stack.base_url, concurrency=2, env={**WORKER_ENV, **ENV},
        log_path=stack.worker_log,
    ).start()  # fmt: skip
    stack.worker_procs.append(replacement)
    results = [h.result(timeout=120) for h in handles]
    assert all(r["status"] == "succeeded" for r in results), [r["error"] for r in results]
    assert stats(stack)["batches_created"] - before["batches_created"] == 1
    # Every `batch` step sent again, with every token the jobs ever had: all stale.
    for handle in handles:
        job = client.store.get(handle.id)
        for token in range(job.token + 1):
            replacement_app_send(client, handle.id, token)
    usage = {h.id: client.store.get(h.id).usage for h in handles}
    # A barrier: a new job's start goes after in-flight steps (runq.config.celery).
    assert client.submit("barrier").result(timeout=60)["status"] == "succeeded"
    for handle in handles:
        assert len(batch_results(client, handle.id)) == 1
        assert client.store.get(handle.id).usage == usage[handle.id]


def replacement_app_send(client: Client, job_id: str, token: int) -> None:
    client.app.send_task("runq.jobs.batch", args=[job_id, token])


def test_a_cancelled_job_never_cancels_its_batch(stack: Stack, client: Client) -> None:
    before = stats(stack)
    kept = [client.submit(f"kept {n}", tier="batch", deadline=600) for n in range(2)]
    dropped = client.submit("dropped", tier="batch", deadline=600)
    wait_for(lambda: client.store.get(dropped.id).step == "batch", what="the job to wait")
    dropped.cancel()
    assert dropped.result(timeout=30)["status"] == "cancelled"
    results = [h.result(timeout=90) for h in kept]
    assert all(r["status"] == "succeeded" for r in results)
    after = stats(stack)
    assert after["batches_created"] - before["batches_created"] == 1
    assert after["batches_by_ending"].get("cancelled", 0) == before["batches_by_ending"].get(
        "cancelled", 0
    )
    assert batch_results(client, dropped.id) == []


def test_cli_submit_takes_a_tier_and_refuses_a_bad_one(stack: Stack, tmp_path: Path) -> None:
    env = {**os.environ, "REDIS_URL": str(stack.redis_url)}
    bad = subprocess.run(
        [sys.executable, "-m", "runq.producers.cli", "submit", "hi", "--tier", "cheap"],
        env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )  # fmt: skip
    assert bad.returncode != 0
    assert "tier: must be one of auto, standard, flex, priority, batch" in bad.stderr
    ok = subprocess.run(
        [sys.executable, "-m", "runq.producers.cli", "submit", "hi", "--tier", "flex",
         "--wait", "--json"],
        env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert '"chosen": "' in ok.stdout


def test_the_sandbox_lists_the_batches_runq_made(stack: Stack) -> None:
    """Every batch runq created carries its own id in metadata (how a lost create is found)."""
    backend = openai.OpenAI(base_url=stack.base_url, api_key="k", max_retries=0)
    made = [b for b in backend.batches.list(limit=100) if (b.metadata or {}).get("runq_batch")]
    assert made and all(b.metadata["runq_batch"].startswith("rqb_") for b in made)
    assert len({b.metadata["runq_batch"] for b in made}) == len(made)


def test_chat_jobs_batch_through_the_chat_endpoint(stack: Stack, client: Client) -> None:
    before = stats(stack)
    handles = [
        client.submit(f"chat batch {n}", backend="chat", tier="batch", deadline=600)
        for n in range(2)
    ]
    results = [h.result(timeout=90) for h in handles]
    assert all(r["status"] == "succeeded" for r in results), [r["error"] for r in results]
    after = stats(stack)
    assert after["batches_created"] - before["batches_created"] == 1
    assert after["chat_completions_created"] == before["chat_completions_created"]
    for result in results:
        assert result["output_text"] and result["tier"]["chosen"] == "batch"
        assert result["backend_ids"]["chat_completion_id"]


def test_a_batch_answer_asking_for_tools_goes_on_live(stack: Stack, client: Client) -> None:
    """The batch's answer asks for a tool: the round runs, then the submit is a live
    request at standard; the cost says which tokens were spent on which tier."""
    script = json.dumps([[{"name": "calculator", "arguments": {"expression": "6*7"}}]])
    before = stats(stack)
    handle = client.submit("Use the tools, please.", tools=["calculator"], tier="batch",
                           deadline=600, metadata={"sandbox_script": script})  # fmt: skip
    result = handle.result(timeout=90)
    assert result["status"] == "succeeded", result["error"]
    assert [c["name"] for c in result["tool_calls"]] == ["calculator"]
    assert "42" in result["output_text"]
    after = stats(stack)
    assert after["batches_created"] - before["batches_created"] == 1
    assert after["responses_created"] - before["responses_created"] == 1  # the submit
    assert result["tier"]["chosen"] == "standard"
    assert result["tier"]["moves"][0]["from"] == "batch"
    assert set(result["cost"]["by_tier"]) == {"batch", "standard"}


def run_ask(stack: Stack, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "REDIS_URL": str(stack.redis_url), "OPENAI_BASE_URL": str(stack.base_url),
           "COLUMNS": "200", "RUNQ_HOME": str(cwd / ".runq")}  # fmt: skip
    return subprocess.run(
        [sys.executable, "-m", "runq.producers.cli", "ask", str(DOCS), "--questions",
         str(QUESTIONS), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def cost_of(stderr: str) -> tuple[float, float]:
    """`cost: $X (on standard: $Y); tiers: ...` -> (X, Y)."""
    line = next(ln for ln in stderr.splitlines() if ln.startswith("cost: $"))
    usd, standard = line.split("(on standard: $")
    return float(usd.removeprefix("cost: $").strip()), float(standard.split(")")[0])


def answers(path: Path) -> dict[str, tuple[str, list[Any]]]:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return {r["question"]: (r["answer"], r["citations"]) for r in rows}


def test_ask_on_the_batch_tier_answers_alike_in_one_batch_at_half_the_cost(
    stack: Stack, tmp_path: Path
) -> None:
    standard = run_ask(stack, tmp_path, "--out", str(tmp_path / "standard.jsonl"))
    assert standard.returncode == 0, standard.stderr
    before = stats(stack)
    batched = run_ask(stack, tmp_path, "--tier", "batch", "--deadline", "24h",
                      "--out", str(tmp_path / "r.jsonl"))  # fmt: skip
    assert batched.returncode == 0, batched.stderr
    after = stats(stack)
    assert after["batches_created"] - before["batches_created"] == 1
    assert after["responses_created"] == before["responses_created"]  # no live question
    assert answers(tmp_path / "r.jsonl") == answers(tmp_path / "standard.jsonl")
    usd, on_standard = cost_of(batched.stderr)
    assert usd == pytest.approx(on_standard / 2, rel=1e-3)
    assert on_standard == pytest.approx(cost_of(standard.stderr)[0], rel=1e-3)
    assert "tiers: batch=" in batched.stderr


def test_ask_auto_with_a_deadline_too_short_for_batch_uses_standard(
    stack: Stack, tmp_path: Path
) -> None:
    before = stats(stack)
    asked = run_ask(stack, tmp_path, "--tier", "auto", "--deadline", "2m")
    assert asked.returncode == 0, asked.stderr
    assert stats(stack)["batches_created"] == before["batches_created"]
    assert "tiers: standard=" in asked.stderr
    assert "too short for batch, flex" in asked.stderr  # it says why
