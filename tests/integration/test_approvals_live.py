"""Tool calls a person approves, for real: a real Redis, real workers, the sandbox.

The sandbox's model calls `refund` (tests/integration/approval_tools.py, registered
`requires_approval`) because the job's tool script says so. The job then waits for a
person with no worker busy on it; the decision comes through the Python API, the
gateway or `runq approve`, and the job resumes. A denied refund never runs (its marker
file is absent) and the model reads the denial; an unanswered one is denied at the
timeout; the signed webhook says what was asked; a worker killed while the job waits
loses nothing.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from runq.producers.client.sync import Client, JobHandle
from runq.runs import keys
from runq.worker.launcher import SandboxProcess, Stack, WorkerProcess
from tests.conftest import wait_for
from tests.integration.conftest import TOOL_MODULES, WORKER_ENV, client_for, stack_on

pytestmark = pytest.mark.integration

SECRET = "whsec_" + "c2VjcmV0LWZvci1hcHByb3ZhbHMtdGVzdHM="  # base64 of a test key
TIMEOUT_S = 12  # RUNQ_APPROVAL_TIMEOUT of this module's workers
A, B = {"Authorization": "Bearer token-a"}, {"Authorization": "Bearer token-b"}


class Hooks:
    """The webhook receiver: every delivery's headers and body, as received."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        hooks = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                hooks.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/approvals"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def for_call(self, call_id: str) -> list[tuple[dict[str, str], bytes]]:
        return [(h, b) for h, b in self.received if json.loads(b)["data"]["call_id"] == call_id]


@pytest.fixture(scope="module")
def hooks() -> Iterator[Hooks]:
    receiver = Hooks()
    yield receiver
    receiver.server.shutdown()


@pytest.fixture(scope="module")
def refunds(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("refunds")


@pytest.fixture(scope="module")
def env(hooks: Hooks, refunds: Path) -> dict[str, str]:
    return {
        "RUNQ_TOOL_MODULES": TOOL_MODULES + ",tests.integration.approval_tools",
        "RUNQ_TEST_REFUND_DIR": str(refunds),
        "RUNQ_APPROVAL_TIMEOUT": str(TIMEOUT_S),
        "RUNQ_APPROVAL_WEBHOOK_URL": hooks.url,
        "RUNQ_APPROVAL_WEBHOOK_SECRET": SECRET,
    }


@pytest.fixture(scope="module")
def stack(
    redis_url: str, sandbox: SandboxProcess, env: dict[str, str], tmp_path_factory
) -> Iterator[Stack]:
    with stack_on(redis_url, sandbox, tmp_path_factory.mktemp("approvals"), env=env) as running:
        yield running


@pytest.fixture(scope="module")
def client(stack: Stack) -> Client:
    return client_for(stack)


def _refund(client: Client, order: str, backend: str = "responses", **options: Any) -> JobHandle:
    script = json.dumps([[{"name": "refund", "arguments": {"order_id": order, "amount": 25}}]])
    return client.submit(f"Refund order {order}, please.", backend=backend, tools=["refund"],
                         instructions=f"sandbox_script: {script}", **options)  # fmt: skip


def _waiting(client: Client, handle: JobHandle) -> dict[str, Any]:
    """The job's one pending approval, once the job waits for it."""
    wait_for(lambda: handle.status() == "waiting_approval", timeout=30, what="waiting_approval")
    pending = [a for a in handle.approvals() if a["status"] == "pending"]
    assert len(pending) == 1, pending
    return pending[0]


def _parked(client: Client, job_id: str) -> bool:
    """Is the job's next step (the submit at the approval's deadline) kept in Redis?"""
    members = client.redis.zrange(keys.delayed(), 0, -1)
    return any(m.decode().startswith(f"{job_id}|submit_tool_outputs|") for m in members)


@pytest.mark.parametrize(
    ("backend", "mode"),
    [("responses", "poll"), ("chat", "poll"), ("assistants", "poll"), ("responses", "stream")],
)
def test_an_approved_call_runs_and_the_job_completes(
    client: Client, hooks: Hooks, refunds: Path, backend: str, mode: str
) -> None:
    order = f"ok-{backend}-{mode}"
    handle = _refund(client, order, backend, mode=mode)
    asked = _waiting(client, handle)
    assert asked["name"] == "refund"
    assert json.loads(asked["arguments"]) == {"order_id": order, "amount": 25}
    requested = [e.data for e in client.events.read(handle.id) if e.type == "approval.requested"]
    assert [(e["call_id"], e["name"]) for e in requested] == [(asked["call_id"], "refund")]
    # Nothing runs while it waits: no refund yet, and the job's next step is data in Redis.
    assert not (refunds / f"refund-{order}").exists()
    assert _parked(client, handle.id)
    # The signed webhook says what is asked (a person acts on it); it verifies with the
    # openai client.
    [(headers, body)] = wait_for(lambda: hooks.for_call(asked["call_id"]), timeout=10,
                                 what="the approval webhook")  # fmt: skip
    openai.OpenAI(api_key="unused").webhooks.verify_signature(body, headers, secret=SECRET)
    event = json.loads(body)
    assert event["type"] == "approval.requested"
    assert event["data"]["job_id"] == handle.id and event["data"]["name"] == "refund"
    assert json.loads(event["data"]["arguments"])["order_id"] == order

    decided = handle.approve(asked["call_id"])
    assert decided["status"] == "approved" and decided["decided_by"] == "person"
    result = handle.result(timeout=60)
    assert result["status"] == "succeeded", result["error"]
    assert (refunds / f"refund-{order}").read_text() == "25.0\n"
    [call] = result["tool_calls"]
    assert json.loads(call["output"]) == {"refunded": 25.0, "order_id": order}


def test_a_denied_refund_never_runs_and_the_model_is_told(
    stack: Stack, client: Client, gateway: str, refunds: Path
) -> None:
    order = "denied-1"
    script = [[{"name": "refund", "arguments": {"order_id": order, "amount": 25}}]]
    body = {"input": f"Refund order {order}, please.", "tools": ["refund"],
            "metadata": {"sandbox_script": json.dumps(script)}}  # fmt: skip
    created = httpx.post(f"{gateway}/v1/jobs", json=body, headers=A, timeout=10)
    assert created.status_code == 201, created.text
    handle = client.get_job(created.json()["job_id"])
    asked = _waiting(client, handle)
    url = f"{gateway}/v1/jobs/{handle.id}/approvals/{asked['call_id']}"
    decision = {"approve": False, "reason": "over the refund limit"}

    listed = httpx.get(f"{gateway}/v1/jobs/{handle.id}/approvals", headers=A, timeout=10)
    assert [a["call_id"] for a in listed.json()["approvals"]] == [asked["call_id"]]
    # Another tenant neither sees nor decides it.
    assert httpx.post(url, json={"approve": True}, headers=B, timeout=10).status_code == 404
    assert httpx.get(f"{gateway}/v1/jobs/{handle.id}/approvals", headers=B,
                     timeout=10).status_code == 404  # fmt: skip
    missing = httpx.post(url + "x", json=decision, headers=A, timeout=10)
    assert missing.status_code == 404, missing.text

    denied = httpx.post(url, json=decision, headers=A, timeout=10)
    assert denied.status_code == 200, denied.text
    assert denied.json()["status"] == "denied"
    again = httpx.post(url, json={"approve": True}, headers=A, timeout=10)
    assert again.status_code == 409, "a call is decided once"

    result = handle.result(timeout=60)
    assert result["status"] == "succeeded", result["error"]
    assert not (refunds / f"refund-{order}").exists(), "a denied refund ran"
    [call] = result["tool_calls"]
    assert json.loads(call["output"]) == {"error": "denied by a person: over the refund limit"}
    assert "denied by a person: over the refund limit" in result["output_text"]
    decided = [e.data for e in client.events.read(handle.id) if e.type == "approval.decided"]
    assert [(d["status"], d["decided_by"]) for d in decided] == [("denied", "person")]


def test_a_per_job_list_and_runq_approve(client: Client, stack: Stack) -> None:
    """`approval_required` marks a tool that is not registered `requires_approval`."""
    handle = client.submit("What is 12 * 7?", tools=["calculator"],
                           approval_required=["calculator"])  # fmt: skip
    asked = _waiting(client, handle)
    assert asked["name"] == "calculator"
    env = {**os.environ, "REDIS_URL": str(stack.redis_url)}
    cli = [sys.executable, "-m", "runq.producers.cli", "approve", handle.id]
    listed = subprocess.run(cli, env=env, capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0, listed.stderr
    assert asked["call_id"] in listed.stdout and "pending" in listed.stdout
    approved = subprocess.run([*cli, asked["call_id"]], env=env, capture_output=True,
                              text=True, timeout=60)  # fmt: skip
    assert approved.returncode == 0, approved.stderr
    assert approved.stdout.startswith("approved: calculator call")
    result = handle.result(timeout=60)
    assert result["status"] == "succeeded", result["error"]
    assert "84" in result["output_text"]
    twice = subprocess.run([*cli, asked["call_id"], "--deny"], env=env, capture_output=True,
                           text=True, timeout=60)  # fmt: skip
    assert twice.returncode == 1 and "already approved" in twice.stdout


def test_an_unanswered_call_is_denied_at_the_timeout(client: Client, refunds: Path) -> None:
    order = "timeout-1"
    handle = _refund(client, order)
    asked = _waiting(client, handle)
    result = handle.result(timeout=TIMEOUT_S + 30)
    assert result["status"] == "succeeded", result["error"]
    assert not (refunds / f"refund-{order}").exists()
    [decided] = handle.approvals()
    assert (decided["call_id"], decided["status"], decided["decided_by"]) == (
        asked["call_id"], "denied", "timeout",
    )  # fmt: skip
    [call] = result["tool_calls"]
    assert json.loads(call["output"]) == {"error": f"denied: no decision within {TIMEOUT_S}s"}
    waited = decided["decided_at"] - decided["requested_at"]
    assert TIMEOUT_S - 1 < waited < TIMEOUT_S + 10, waited


@pytest.mark.parametrize("approve", [True, False])
def test_an_mcp_servers_approval_request_takes_the_same_path(client: Client, approve: bool) -> None:
    """The sandbox asks before calling a real MCP server's tool (`require_approval`): the
    job waits for a person like a function call; the decision goes back to the model as
    `mcp_approval_response`, and the server's tool runs only when approved."""
    from tests.sandbox.mcp_server import McpTestServer  # a real MCP server, in a thread

    with McpTestServer() as server:
        tool = {"type": "mcp", "server_label": "calc", "server_url": server.url,
                "allowed_tools": ["add"], "require_approval": "always"}  # fmt: skip
        handle = client.submit('Please add {"a": 20, "b": 22}', tools=[tool])
        asked = _waiting(client, handle)
        assert (asked["name"], asked["kind"], asked["server_label"]) == (
            "mcp:calc:add", "mcp", "calc",
        )  # fmt: skip
        assert json.loads(asked["arguments"]) == {"a": 20, "b": 22}
        if approve:
            handle.approve(asked["call_id"])
        else:
            handle.deny(asked["call_id"], "not today")
        result = handle.result(timeout=60)
    assert result["status"] == "succeeded", result["error"]
    # Not a function call of the job: the approvals list it, with the decision.
    assert result["tool_calls"] == []
    assert [a["status"] for a in handle.approvals()] == ["approved" if approve else "denied"]
    calls = [c for c in result["hosted_tool_calls"] if c["type"] == "mcp_call"]
    if approve:
        assert [(c["name"], c["output"]) for c in calls] == [("add", "42")]
        assert result["output_text"] == "Tool results: add: 42"
    else:
        assert calls == [], "the server's tool ran without approval"
        assert result["output_text"] == "The call of add on calc was not approved: not today"


def test_a_worker_killed_while_the_job_waits_loses_nothing(
    stack: Stack, client: Client, env: dict[str, str], refunds: Path
) -> None:
    order = "restart-1"
    handle = _refund(client, order)
    asked = _waiting(client, handle)
    assert stack.redis_url and stack.base_url
    for worker in list(stack.worker_procs):
        assert worker.proc is not None
        os.killpg(worker.proc.pid, signal.SIGKILL)  # no warm shutdown: nothing handed back
        worker.proc.wait(timeout=10)
        stack.worker_procs.remove(worker)
    handle.approve(asked["call_id"])  # no worker is up: the decision waits in Redis
    replacement = WorkerProcess(
        stack.redis_url, stack.base_url, concurrency=2, env={**WORKER_ENV, **env},
        log_path=stack.worker_log,
    ).start()  # fmt: skip
    stack.worker_procs.append(replacement)
    result = handle.result(timeout=60)
    assert result["status"] == "succeeded", result["error"]
    assert (refunds / f"refund-{order}").read_text() == "25.0\n"


def test_a_waiting_approval_survives_a_redis_restart(
    sandbox: SandboxProcess, env: dict[str, str], refunds: Path, tmp_path: Path
) -> None:
    """Redis with AOF, as in production: stopped and started while the job waits, the
    approval is still there to decide, and the job completes."""
    shape = Stack(home=tmp_path, base_url=sandbox.base_url, persist=True, concurrency=2,
                  worker_env={**WORKER_ENV, **env}, worker_log=tmp_path / "worker.log")  # fmt: skip
    with shape as stack:
        assert stack.redis is not None and stack.redis_url
        stack.wait_ready()  # its own fresh Redis: `refund` is listed once a worker is up
        order = "redis-restart-1"
        handle = _refund(client_for(stack), order)
        asked = _waiting(client_for(stack), handle)
        for worker in list(stack.worker_procs):  # no worker while Redis is away
            worker.stop()
            stack.worker_procs.remove(worker)
        stack.redis.stop()
        stack.redis.start()
        client = client_for(stack)
        again = client.get_job(handle.id)
        assert again.status() == "waiting_approval"
        assert [a["call_id"] for a in again.approvals() if a["status"] == "pending"] == [
            asked["call_id"]
        ]
        again.approve(asked["call_id"])
        stack.worker_procs.append(WorkerProcess(
            stack.redis_url, stack.base_url, concurrency=2, env={**WORKER_ENV, **env},
            log_path=stack.worker_log,
        ).start())  # fmt: skip
        result = again.result(timeout=60)
        assert result["status"] == "succeeded", result["error"]
        assert (refunds / f"refund-{order}").read_text() == "25.0\n"
