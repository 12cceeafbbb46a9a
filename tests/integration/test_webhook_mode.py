"""Webhook mode for real: the sandbox signs and sends its webhooks, a real receiver (the
gateway, or `runq webhooks`) verifies them and wakes the job, a real worker finishes it.

- Deliveries arrive: a job's result comes with zero polls, as the job record counts them
  and as the sandbox's request stats show (one fetch per response, after it ended).
- Deliveries dropped by the sandbox's fault injection: every job still finishes, through
  the safety poll (short here).
- Deliveries duplicated: the replays are refused, nothing is applied twice.
- `runq up --webhooks` wires all of it from one command.
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
import redis

from runq.producers.client.sync import Client
from runq.producers.webhooks import PATH
from runq.producers.webhooks.process import WebhookServerProcess
from runq.runs import keys
from runq.runs.job import JobStatus
from runq.runs.replies import text
from runq.worker.launcher import SandboxProcess, Stack, WorkerProcess, free_port
from tests.conftest import wait_for
from tests.integration.conftest import WORKER_ENV, client_for, own_database
from tests.integration.gateway_process import start_gateway, stop

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

# Each run's own secret, as `runq up --webhooks` makes one.
SECRET = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
TOOL_SCRIPT = json.dumps([[{"name": "calculator", "arguments": {"expression": "6*7"}}]])


def next_look(conn: redis.Redis, job_id: str) -> bool:
    """Is a safety look of the job waiting in Redis's delayed steps (`runs.delays`)?"""
    return any(text(m).startswith(f"{job_id}|look|") for m in conn.zrange(keys.delayed(), 0, -1))


def sandbox_sending(url: str, faults: str | None = None, **env: str) -> SandboxProcess:
    extra = ["--webhook-url", url]
    if faults:
        extra += ["--faults", faults, "--seed", "7"]
    return SandboxProcess(
        latency_ms=200, extra_args=extra, env={"RUNQ_SANDBOX_WEBHOOK_SECRET": SECRET, **env}
    ).start()


@contextmanager
def workers(redis_url: str, sandbox: SandboxProcess, home: Path, **env: str) -> Iterator[Stack]:
    """Workers in webhook mode (the worker's mode: jobs are submitted in poll mode)."""
    with Stack(
        home=home,
        redis_url=redis_url,
        base_url=sandbox.base_url,
        concurrency=4,
        worker_log=home / "worker.log",
        worker_env={**WORKER_ENV, "RUNQ_MODE": "webhook", **env},
    ) as running:
        yield running


def stats(sandbox: SandboxProcess) -> dict[str, Any]:
    root = sandbox.base_url.removesuffix("/v1")
    data: dict[str, Any] = httpx.get(root + "/sandbox/stats", timeout=5).json()
    return data


def retrieves(snapshot: dict[str, Any]) -> int:
    """`GET /v1/responses/{id}` requests the sandbox answered."""
    return sum(
        n
        for key, n in snapshot["requests"].items()
        if key.startswith("GET /v1/responses/{") and "cancel" not in key
    )


def finished(client: Client, job_ids: list[str], timeout: float = 90) -> list[Any]:
    def all_ended() -> list[Any] | None:
        jobs = [client.store.get(job_id) for job_id in job_ids]
        return jobs if all(job.terminal and job.published for job in jobs) else None

    return wait_for(all_ended, timeout=timeout, what="every job to end")


# -- deliveries arrive (the gateway receives) -------------------------------------------
@pytest.fixture(scope="module")
def gateway_setup(
    redis_url: str, tmp_path_factory
) -> Iterator[tuple[Client, SandboxProcess, Path]]:
    tmp = tmp_path_factory.mktemp("webhook-gateway")
    redis_url = own_database(redis_url, 14)  # 11 is test_gateway_limits_live's (no worker)
    proc, base = start_gateway(
        redis_url, tmp, tokens="token-a:alice", env={"OPENAI_WEBHOOK_SECRET": SECRET}
    )
    sandbox = sandbox_sending(base + PATH)
    try:
        # A safety poll far beyond the test: any poll at all would show.
        with workers(redis_url, sandbox, tmp, RUNQ_SAFETY_POLL_INTERVAL="600") as stack:
            assert stack.worker_log is not None
            yield client_for(stack), sandbox, stack.worker_log
    finally:
        sandbox.stop()
        stop(proc)


def tasks_received(log: Path, since: int) -> dict[str, int]:
    """Celery tasks the workers received after byte `since` of their log, by name."""
    with log.open("rb") as f:
        f.seek(since)
        text = f.read().decode(errors="replace")
    names = re.findall(r"Task (runq\.[a-z_.]+)\[[^\]]+\] received", text)
    return {name: names.count(name) for name in set(names)}


def test_results_arrive_with_zero_polls(gateway_setup) -> None:
    client, sandbox, worker_log = gateway_setup
    before = stats(sandbox)
    log_start = worker_log.stat().st_size
    plain = [client.submit(f"Say hello, number {n}.") for n in range(4)]
    tooled = client.submit(
        "Use the tool.", tools=["calculator"], metadata={"sandbox_script": TOOL_SCRIPT}
    )
    started = time.monotonic()
    jobs = finished(client, [h.id for h in [*plain, tooled]])
    assert time.monotonic() - started < 60  # nowhere near the 600 s safety poll
    for job in jobs:
        assert job.status == JobStatus.SUCCEEDED, job.error
        assert job.polls == 0, (job.id, job.polls)
    assert "42" in (jobs[-1].output_text or "")
    assert [c["name"] for c in jobs[-1].tool_calls] == ["calculator"]
    after = stats(sandbox)
    created = after["responses_created"] - before["responses_created"]
    assert created == 6  # four jobs of one response, one of two (its tool round)
    # Each response was read once, after its webhook said it had ended: no poll.
    assert retrieves(after) - retrieves(before) == created
    assert after["webhooks"]["succeeded"] - before["webhooks"]["succeeded"] >= created
    # The woken polls ran in the workers' wake runners (runs.wakes), not as Celery tasks:
    # the tasks were the five starts and the one tool call.
    ran = tasks_received(worker_log, log_start)
    assert "runq.jobs.poll" not in ran, ran
    assert ran.get("runq.jobs.start") == 5, ran
    assert ran.get("runq.tools.call") == 1, ran


def test_the_gateway_refuses_a_forged_delivery(gateway_setup, redis_url: str) -> None:
    client, sandbox, _ = gateway_setup
    base = stats(sandbox)  # the sandbox is untouched by what follows
    gateway = _gateway_base(gateway_setup)
    body = json.dumps({"id": "evt_x", "object": "event", "created_at": int(time.time()),
                       "type": "response.completed", "data": {"id": "resp_x"}})  # fmt: skip
    headers = {"webhook-id": "wh_forged", "webhook-timestamp": str(int(time.time())),
               "webhook-signature": "v1," + base64.b64encode(b"0" * 32).decode(),
               "content-type": "application/json"}  # fmt: skip
    refused = httpx.post(gateway + PATH, content=body, headers=headers, timeout=10)
    assert refused.status_code == 401
    assert client.redis.exists("runq:webhook:seen:wh_forged") == 0  # nothing touched
    # No tenant token opens it either, and a token is not what it asks for.
    assert retrieves(stats(sandbox)) == retrieves(base)


def _gateway_base(setup: tuple[Client, SandboxProcess, Path]) -> str:
    """The gateway's address, from the webhook URL the sandbox was started with."""
    _, sandbox, _ = setup
    url = sandbox.extra_args[1]
    return url.removesuffix(PATH)


# -- deliveries dropped: the safety poll ---------------------------------------------------
def test_dropped_deliveries_finish_through_the_safety_poll(redis_url, tmp_path) -> None:
    redis_url = own_database(redis_url, 12)
    port = free_port()
    receiver_url = f"http://127.0.0.1:{port}{PATH}"
    sandbox = sandbox_sending(receiver_url, faults="webhook_drop=1.0")
    try:
        receiver = WebhookServerProcess(redis_url, SECRET, port=port,
                                        log_path=tmp_path / "webhooks.log").start()  # fmt: skip
        try:
            with workers(redis_url, sandbox, tmp_path, RUNQ_SAFETY_POLL_INTERVAL="2") as stack:
                client = client_for(stack)
                handles = [client.submit(f"Lost webhook {n}?") for n in range(4)]
                jobs = finished(client, [h.id for h in handles], timeout=60)
        finally:
            receiver.stop()
        for job in jobs:
            assert job.status == JobStatus.SUCCEEDED, job.error
            waited = job.timings["finished_at"] - job.timings["run_created_at"]
            assert waited >= 1.9  # the safety poll's interval, not a webhook, ended the wait
        snapshot = stats(sandbox)
        # Not one delivery got through: the safety poll is what found every end.
        assert snapshot["webhooks"]["dropped"] >= 4 and snapshot["webhooks"]["sent"] == 0
        assert snapshot["responses_created"] == 4
        assert retrieves(snapshot) >= 4
    finally:
        sandbox.stop()


def test_a_lost_webhook_costs_looks_not_steps(redis_url, tmp_path) -> None:
    """A safety look that finds the run going writes nothing and sends no task; the one
    that finds the end hands its fetch to the poll; the record counts the looks."""
    redis_url = own_database(redis_url, 12)
    redis.Redis.from_url(redis_url).flushdb()  # the test above's leftovers
    port = free_port()
    sandbox = SandboxProcess(
        latency_ms=9000,  # each run takes 9 s: the first look (6 s) finds it going
        extra_args=["--webhook-url", f"http://127.0.0.1:{port}{PATH}",
                    "--faults", "webhook_drop=1.0", "--seed", "7"],
        env={"RUNQ_SANDBOX_WEBHOOK_SECRET": SECRET},
    ).start()  # fmt: skip
    try:
        receiver = WebhookServerProcess(redis_url, SECRET, port=port,
                                        log_path=tmp_path / "webhooks.log").start()  # fmt: skip
        try:
            # Looks at 6 s (past the 5 s a countdown may wait in a worker: the pump brings
            # it) and 6 + 9 = 15 s.
            env = {"RUNQ_SAFETY_POLL_INTERVAL": "6", "RUNQ_SAFETY_POLL_GROWTH": "1.5"}
            with workers(redis_url, sandbox, tmp_path, **env) as stack:
                assert stack.worker_log is not None
                log_start = stack.worker_log.stat().st_size
                client = client_for(stack)
                handles = [client.submit(f"Slow and lost {n}?") for n in range(3)]
                jobs = finished(client, [h.id for h in handles], timeout=90)
                ran = tasks_received(stack.worker_log, log_start)
        finally:
            receiver.stop()
        for job in jobs:
            assert job.status == JobStatus.SUCCEEDED, job.error
            assert job.polls == 1  # the look at 6 s, added to the record at the end
            waited = job.timings["finished_at"] - job.timings["run_created_at"]
            assert waited >= 14.5  # the second look, not a webhook, found the end
        snapshot = stats(sandbox)
        assert snapshot["webhooks"]["sent"] == 0
        # Two fetches a job: the look that found it going, the look that found the end
        # (whose state the poll step took on, without a third).
        assert retrieves(snapshot) == 2 * len(jobs)
        # The looks ran in the workers' wake runners: no look or poll was a Celery task.
        assert "runq.jobs.look" not in ran and "runq.jobs.poll" not in ran, ran
        assert ran.get("runq.jobs.start") == len(jobs), ran
        assert not redis.Redis.from_url(redis_url).hlen("runq:looks")  # none left beside
    finally:
        sandbox.stop()


def test_a_waiting_run_outlives_its_worker_through_its_looks(redis_url, tmp_path) -> None:
    """The next safety look and the looks counted so far are in Redis, not in a worker:
    a worker killed between two looks (the sweeper off, so no lease re-drives the job)
    leaves a job that a new worker still looks at, finishes and counts right."""
    redis_url = own_database(redis_url, 12)
    redis.Redis.from_url(redis_url).flushdb()
    port = free_port()
    sandbox = sandbox_sending(f"http://127.0.0.1:{port}{PATH}", faults="webhook_drop=1.0")
    try:
        receiver = WebhookServerProcess(redis_url, SECRET, port=port,
                                        log_path=tmp_path / "webhooks.log").start()  # fmt: skip
        env = {"RUNQ_SAFETY_POLL_INTERVAL": "6", "RUNQ_SAFETY_POLL_GROWTH": "1.5",
               "RUNQ_SWEEP_INTERVAL": "3600"}  # fmt: skip
        try:
            with workers(redis_url, sandbox, tmp_path, **env) as stack:
                client = client_for(stack)
                # A run of 9 s: looks at 6 s (going) and 6 + 9 = 15 s (ended).
                handle = client.submit("Slow, lost, and orphaned?",
                                       instructions="sandbox_latency_ms: 9000")  # fmt: skip
                wait_for(lambda: client.redis.hget("runq:looks", handle.id), timeout=30,
                         what="the first look to be counted")  # fmt: skip
                # Between two looks: the next one is in Redis (it is scheduled just after
                # the count; a kill in between loses it to the lease, off here).
                wait_for(lambda: next_look(client.redis, handle.id), timeout=10,
                         what="the next look to be scheduled")  # fmt: skip
                killed = stack.worker_procs[0]
                assert killed.proc is not None
                os.killpg(killed.proc.pid, signal.SIGKILL)  # no warm shutdown
                killed.proc.wait(timeout=10)
                assert stack.base_url is not None
                replacement = WorkerProcess(
                    redis_url, stack.base_url, concurrency=2, log_path=stack.worker_log,
                    env={**WORKER_ENV, "RUNQ_MODE": "webhook", **env},
                ).start()  # fmt: skip
                stack.worker_procs.append(replacement)
                (job,) = finished(client, [handle.id], timeout=60)
        finally:
            receiver.stop()
        assert job.status == JobStatus.SUCCEEDED, job.error
        assert job.polls == 1  # the look before the kill, counted through it
        assert stats(sandbox)["webhooks"]["sent"] == 0  # the looks, not a webhook
    finally:
        sandbox.stop()


# -- the wake runner's own process beside a threads worker --------------------------------
def wake_children(worker_pid: int) -> list[int]:
    """The live wake-runner children of a worker (`runq.worker.wake_process`)."""
    found = []
    for child in psutil.Process(worker_pid).children():
        try:
            if child.status() != psutil.STATUS_ZOMBIE and any(
                "runq.worker.wake_process" in part for part in child.cmdline()
            ):
                found.append(child.pid)
        except psutil.Error:  # it ended while we looked
            continue
    return found


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_the_wake_process_is_restarted_and_dies_with_its_worker(redis_url, tmp_path) -> None:
    """A worker on the threads pool (the default) runs its woken steps in a child
    interpreter. Killed, the child is started again and jobs still end with zero
    polls; the worker killed (no warm shutdown), the child goes too."""
    redis_url = own_database(redis_url, 12)
    port = free_port()
    sandbox = sandbox_sending(f"http://127.0.0.1:{port}{PATH}")
    try:
        receiver = WebhookServerProcess(redis_url, SECRET, port=port,
                                        log_path=tmp_path / "webhooks.log").start()  # fmt: skip
        try:
            with workers(redis_url, sandbox, tmp_path, RUNQ_SAFETY_POLL_INTERVAL="600") as stack:
                worker = stack.worker_procs[0].proc
                assert worker is not None
                (first,) = wait_for(lambda: wake_children(worker.pid), timeout=30,
                                    what="the wake process")  # fmt: skip
                client = client_for(stack)
                before = finished(client, [client.submit("Woken next door?").id])
                os.kill(first, signal.SIGKILL)
                (second,) = wait_for(
                    lambda: [pid for pid in wake_children(worker.pid) if pid != first],
                    timeout=30, what="the wake process started again",
                )  # fmt: skip
                after = finished(client, [client.submit("Woken again?").id])
                os.killpg(worker.pid, signal.SIGKILL)  # the child is in a session of its own
                worker.wait(timeout=10)
                wait_for(lambda: gone(second), timeout=40, what="the orphaned wake process to end")
        finally:
            receiver.stop()
        for job in before + after:
            assert job.status == JobStatus.SUCCEEDED and job.polls == 0, job.error
        log = (tmp_path / "worker.log").read_text()
        assert log.count("wake.process_started") == 2 and "wake.process_exited" in log
    finally:
        sandbox.stop()


# -- duplicated deliveries: refused, nothing applied twice ---------------------------------
def test_duplicate_deliveries_do_not_double_apply(redis_url, tmp_path) -> None:
    redis_url = own_database(redis_url, 13)
    port = free_port()
    sandbox = sandbox_sending(f"http://127.0.0.1:{port}{PATH}", faults="webhook_duplicate=1.0")
    try:
        log_path = tmp_path / "webhooks.log"
        receiver = WebhookServerProcess(redis_url, SECRET, port=port, log_path=log_path,
                                        env={"RUNQ_LOG_FORMAT": "json"}).start()  # fmt: skip
        try:
            with workers(redis_url, sandbox, tmp_path, RUNQ_SAFETY_POLL_INTERVAL="600") as stack:
                client = client_for(stack)
                handles = [client.submit(f"Twice told {n}?") for n in range(3)]
                jobs = finished(client, [h.id for h in handles])
                sent = wait_for(lambda: _all_delivered(sandbox), timeout=30,
                                what=f"duplicates {stats(sandbox)['webhooks']}")  # fmt: skip
                events = [client.events.read(job.id) for job in jobs]
        finally:
            receiver.stop()
        assert sent["duplicated"] >= 3
        for job, log in zip(jobs, events, strict=True):
            assert job.status == JobStatus.SUCCEEDED and job.polls == 0
            assert sum(1 for event in log if event.final) == 1
        snapshot = stats(sandbox)
        assert all(snapshot["responses_created_by_job"][job.id] == 1 for job in jobs)
        assert retrieves(snapshot) == len(jobs)  # one fetch each: the replays woke nothing
        refused = log_path.read_text().count("webhook.replay_refused")
        assert refused >= 3
    finally:
        sandbox.stop()


def _all_delivered(sandbox: SandboxProcess) -> dict[str, Any] | None:
    sent: dict[str, Any] = stats(sandbox)["webhooks"]
    return sent if sent["pending"] == 0 and sent["succeeded"] >= 6 else None


# -- a batch's webhook: its results fetched at once, not at the batch poll interval ------
def test_a_batch_webhook_brings_its_results_without_waiting_for_the_poll(
    redis_url, tmp_path
) -> None:
    redis_url = own_database(redis_url, 15)
    port = free_port()
    sandbox = sandbox_sending(f"http://127.0.0.1:{port}{PATH}",
                              RUNQ_SANDBOX_BATCH_TIME_SCALE="0.02")  # fmt: skip
    try:
        log_path = tmp_path / "webhooks.log"
        receiver = WebhookServerProcess(redis_url, SECRET, port=port, log_path=log_path,
                                        env={"RUNQ_LOG_FORMAT": "json"}).start()  # fmt: skip
        # The batcher would look at an open batch only every 10 minutes.
        batch_env = {"RUNQ_BATCH_POLL_INTERVAL": "600", "RUNQ_BATCH_MAX_AGE": "1",
                     "RUNQ_BATCH_TICK": "0.5"}  # fmt: skip
        try:
            with workers(redis_url, sandbox, tmp_path, **batch_env) as stack:
                client = client_for(stack)
                handles = [client.submit(f"Batch {n}?", tier="batch", deadline=900)
                           for n in range(3)]  # fmt: skip
                started = time.monotonic()
                jobs = finished(client, [h.id for h in handles], timeout=120)
                took = time.monotonic() - started
        finally:
            receiver.stop()
        assert all(job.status == JobStatus.SUCCEEDED for job in jobs), [j.error for j in jobs]
        assert took < 120  # nowhere near the 600 s batch poll
        snapshot = stats(sandbox)
        assert snapshot["batches_created"] == 1
        batch_looks = sum(n for key, n in snapshot["requests"].items()
                          if key.startswith("GET /v1/batches/{"))  # fmt: skip
        assert batch_looks == 1  # once, when its webhook said it had ended
        assert "webhook.batch_woken" in log_path.read_text()
    finally:
        sandbox.stop()


# -- runq up --webhooks --------------------------------------------------------------------
def test_runq_up_webhooks_runs_a_job_with_zero_polls(tmp_path: Path) -> None:
    from tests.integration.test_up_lifecycle import runq, runq_up

    with runq_up(tmp_path, "--webhooks") as proc:
        log = next(tmp_path.glob("up-*.log")).read_text()
        found = re.search(r"runq up: webhooks (http://127\.0\.0\.1:\d+\S*)", log)
        assert found, log
        # The receiver was registered at the sandbox as one is at OpenAI, through the
        # webhook endpoints API: `runq webhooks list` (of this folder's stack) shows it.
        listed = runq(tmp_path, "webhooks", "list", "--json")
        assert listed.returncode == 0, listed.stderr
        [endpoint] = json.loads(listed.stdout)
        assert (endpoint["url"], endpoint["name"]) == (found.group(1), "runq up")
        assert "response.completed" in endpoint["event_types"]
        submitted = runq(tmp_path, "submit", "hello from webhook mode", "--wait", "--json",
                         "--timeout", "60")  # fmt: skip
        assert submitted.returncode == 0, submitted.stderr
        result = json.loads(submitted.stdout)
        assert result["status"] == "succeeded"
        job_id = result["job_id"]
        status = runq(tmp_path, "status", job_id, "--json")
        assert json.loads(status.stdout)["polls"] == 0
        proc.send_signal(2)
        proc.wait(timeout=60)
    logs = [path.read_text() for path in tmp_path.rglob("*.log")]
    assert len(logs) >= 2 and not any("whsec_" in text for text in logs)  # never logged
