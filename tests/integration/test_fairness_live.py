"""Fair admission and budgets with a real Redis, a real worker and the sandbox over HTTP.

- A tenant's backlog does not delay another tenant's few jobs: they start in its turn.
- 200 concurrent jobs against a budget that fits 50: what is spent stays within the
  budget plus one estimate, and the rest fail `budget_exceeded` (or wait, and can be
  cancelled while they wait).
- The gateway answers 429 with `Retry-After` and the budget's state over a `fail` budget.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from runq.config.settings import load_settings
from runq.errors import BudgetExceededError
from runq.producers.client.sync import Client, JobHandle
from runq.runs.fairness import Admission
from runq.runs.job import TERMINAL, JobStatus
from runq.worker.launcher import SandboxProcess, Stack
from tests.conftest import wait_for
from tests.integration.conftest import stack_on

pytestmark = pytest.mark.integration

# Each job below estimates 400 characters / 4 + 100 output tokens = 200 tokens.
INPUT = "Summarise the refund policy. " + "x" * (400 - 29)
ESTIMATE = 200
BUDGETS = {
    "spender-fail": {"tokens": 50 * ESTIMATE, "over": "fail"},
    "spender-wait": {"tokens": 5 * ESTIMATE, "over": "wait"},
    "alice": {"tokens": 10, "over": "fail"},
}
ENV = {"RUNQ_BUDGETS": json.dumps(BUDGETS), "RUNQ_SWEEP_INTERVAL": "2"}


@pytest.fixture(scope="module")
def stack(redis_url: str, sandbox: SandboxProcess, tmp_path_factory) -> Iterator[Stack]:
    with stack_on(redis_url, sandbox, tmp_path_factory.mktemp("fair"), env=ENV) as running:
        yield running


@pytest.fixture(scope="module")
def client(stack: Stack) -> Client:
    assert stack.redis_url is not None
    return Client(stack.redis_url, load_settings(redis_url=stack.redis_url, budgets=BUDGETS))


def admission(client: Client) -> Admission:
    assert client.admission is not None  # on by default
    return client.admission


def tokens(usage: dict[str, int]) -> int:
    return int(usage.get("input_tokens", 0)) + int(usage.get("output_tokens", 0))


def ended(handles: list[JobHandle]) -> bool:
    return all(h.status() in TERMINAL for h in handles)


def test_a_late_tenant_starts_before_a_backlog_drains(client: Client) -> None:
    backlog = [client.submit(f"question {i} from A", tenant="tenant-a") for i in range(40)]
    late = [client.submit(f"question {i} from B", tenant="tenant-b") for i in range(4)]
    # Waiting for admission, a job says so.
    first_events = [e.type for e in client.events.read(backlog[-1].id)]
    assert "job.waiting" in first_events
    wait_for(lambda: ended(backlog + late), timeout=180, what="every job to end")
    started = {h.id: h.job().timings["started_at"] for h in backlog + late}
    assert all(h.status() == JobStatus.SUCCEEDED for h in backlog + late)
    last_b = max(started[h.id] for h in late)
    a_after_b = [h for h in backlog if started[h.id] > last_b]
    # FIFO would start all 40 of A's jobs first; in turn, most of A's backlog is still
    # waiting when B's last job starts (B waits behind at most a window of A's jobs).
    print("A's jobs started after B's last:", len(a_after_b))
    assert len(a_after_b) >= 20, (len(a_after_b), sorted(started.values()))


def test_200_concurrent_jobs_against_a_budget_that_fits_50(client: Client) -> None:
    def submit(i: int) -> JobHandle | None:
        try:
            return client.submit(
                f"{INPUT[:-4]}{i:04d}", tenant="spender-fail", max_output_tokens=100
            )
        except BudgetExceededError:
            return None  # refused at submit: the budget had no room left already

    with ThreadPoolExecutor(16) as pool:
        submitted = list(pool.map(submit, range(200)))
    handles = [h for h in submitted if h is not None]
    wait_for(lambda: ended(handles), timeout=240, what="every job to end")
    jobs = [h.job() for h in handles]
    succeeded = [j for j in jobs if j.status == JobStatus.SUCCEEDED]
    refused = [j for j in jobs if j.status == JobStatus.FAILED]
    assert len(succeeded) + len(refused) == len(jobs)
    print("fits-50:", len(succeeded), "ran,", len(refused), "refused at admission,",
          200 - len(handles), "at submit")  # fmt: skip
    assert {j.error["code"] for j in refused if j.error} == {"budget_exceeded"}
    assert len(refused) + (200 - len(handles)) >= 100  # most of the 200 did not fit
    spent = sum(tokens(j.usage) for j in succeeded)
    assert spent <= 50 * ESTIMATE + ESTIMATE
    state = admission(client).budgets.state("spender-fail", time.time())
    assert state["tokens"]["spent"] == spent  # settled from the reported usage
    assert state["tokens"]["reserved"] == 0
    # The refused never reached the backend: no run was created for them.
    assert all(not j.handle for j in refused)


def test_jobs_over_a_wait_budget_wait_and_can_be_cancelled(client: Client) -> None:
    handles = [
        client.submit(f"{INPUT[:-4]}{i:04d}", tenant="spender-wait", max_output_tokens=100)
        for i in range(20)
    ]

    def settled() -> bool:
        # nothing in flight any more: each job ended, or waits with the budget's reason
        state = admission(client).budgets.state("spender-wait", time.time())
        statuses = [h.status() for h in handles]
        return (
            state["tokens"]["reserved"] == 0
            and JobStatus.SUCCEEDED in statuses
            and all(s == JobStatus.SUCCEEDED or s == JobStatus.QUEUED for s in statuses)
        )

    wait_for(settled, timeout=120, interval=0.5, what="the budget's jobs to run or wait")
    waiting = [h for h in handles if h.status() == JobStatus.QUEUED]
    ran = [h for h in handles if h.status() == JobStatus.SUCCEEDED]
    assert ran and waiting
    spent = sum(tokens(h.job().usage) for h in ran)
    assert spent <= 5 * ESTIMATE + ESTIMATE
    reasons = [e.data for e in client.events.read(waiting[0].id) if e.type == "job.waiting"]
    assert {"reason": "budget", "budget": "spender-wait"}.items() <= reasons[-1].items()
    # A waiting job can be cancelled; it leaves the waiting list.
    for handle in waiting:
        assert handle.cancel() == JobStatus.QUEUED
    wait_for(lambda: all(h.status() == JobStatus.CANCELLED for h in waiting), timeout=30,
             what="the waiting jobs to be cancelled")  # fmt: skip
    assert "spender-wait" not in admission(client).waiting_by_tenant()


def test_the_gateway_answers_429_over_a_fail_budget(
    stack: Stack, tmp_path_factory: pytest.TempPathFactory
) -> None:
    from tests.integration.gateway_process import start_gateway, stop

    proc, base = start_gateway(
        str(stack.redis_url), tmp_path_factory.mktemp("gw"),
        tokens="token-a:alice,token-b:bob", env={"RUNQ_BUDGETS": json.dumps(BUDGETS)},
    )  # fmt: skip
    try:
        over = httpx.post(base + "/v1/jobs", json={"input": INPUT},
                          headers={"Authorization": "Bearer token-a"}, timeout=10)  # fmt: skip
        assert over.status_code == 429
        assert 0 < int(over.headers["Retry-After"]) <= 86400
        body = over.json()
        assert body["budget"]["scope"] == "alice"
        assert body["budget"]["tokens"]["limit"] == 10
        assert "no room" in body["detail"]
        fine = httpx.post(base + "/v1/jobs", json={"input": "hello"},
                          headers={"Authorization": "Bearer token-b"}, timeout=10)  # fmt: skip
        assert fine.status_code == 201
    finally:
        stop(proc)
