"""The HTTP gateway for real: `runq gateway` in a subprocess, a real worker and the sandbox."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from runq.config.settings import load_settings
from runq.producers.gateway import create_app
from runq.worker.launcher import Stack, free_port
from tests.conftest import wait_for
from tests.integration.conftest import METRICS_TOKEN
from tests.integration.gateway_process import parse_sse

pytestmark = pytest.mark.integration

A, B = {"Authorization": "Bearer token-a"}, {"Authorization": "Bearer token-b"}


def sse_events(
    base: str, job_id: str, headers: dict[str, str], limit: int | None = None
) -> list[dict[str, Any]]:
    """Read SSE messages (id, event, data); stop after `limit` of them (closing the stream)."""
    with httpx.stream("GET", f"{base}/v1/jobs/{job_id}/events", headers=headers,
                      timeout=30) as resp:  # fmt: skip
        assert resp.status_code == 200, resp.read()
        assert resp.headers["content-type"].startswith("text/event-stream")
        return parse_sse(resp.iter_lines(), limit)


def submit(base: str, body: dict[str, Any], headers: dict[str, str]) -> httpx.Response:
    return httpx.post(f"{base}/v1/jobs", json=body, headers=headers, timeout=10)


def test_sse_resumes_with_last_event_id_without_duplicates(gateway: str) -> None:
    script = json.dumps([[{"name": "calculator", "arguments": {"expression": "12 * 7"}}]])
    body = {"input": "What is 12 * 7?", "tools": ["calculator"],
            "metadata": {"sandbox_script": script}}  # fmt: skip
    resp = submit(gateway, body, A)
    assert resp.status_code == 201, resp.text
    job_id = resp.json()["job_id"]

    first = sse_events(gateway, job_id, A, limit=2)  # drop the connection after two events
    assert len(first) == 2
    rest = sse_events(gateway, job_id, {**A, "Last-Event-ID": first[-1]["id"]})
    ids = [e["id"] for e in first + rest]
    assert len(ids) == len(set(ids)), "an event was delivered twice"
    assert rest[-1]["event"] == "job.final" and rest[-1]["data"]["status"] == "succeeded"
    everything = sse_events(gateway, job_id, A)
    assert [e["id"] for e in everything] == ids, "resuming lost or reordered events"
    assert all(e["event"] == e["data"]["type"] for e in everything)
    assert {"tool.call", "tool.output"} <= {e["event"] for e in everything}

    view = httpx.get(f"{gateway}/v1/jobs/{job_id}", headers=A, timeout=10).json()
    assert view["status"] == "succeeded" and view["output_text"]


def test_a_stream_lives_as_long_as_a_quiet_job(gateway: str) -> None:
    """A run that takes 60 s says nothing in between: one connection, which never
    reconnects, carries every event from the first to `job.final`, with heartbeats."""
    body = {"input": "take your time", "deadline": 300,
            "metadata": {"sandbox_latency_ms": "60000"}}  # fmt: skip
    job_id = submit(gateway, body, A).json()["job_id"]
    url = f"{gateway}/v1/jobs/{job_id}/events"
    began = time.monotonic()
    with httpx.stream("GET", url, headers=A, timeout=httpx.Timeout(10, read=45)) as resp:
        assert resp.status_code == 200, resp.read()
        lines = list(resp.iter_lines())  # until the gateway ends the stream
    took = time.monotonic() - began
    events = parse_sse(lines)
    assert events[0]["event"] == "job.status" and events[-1]["event"] == "job.final", events
    assert events[-1]["data"]["status"] == "succeeded"
    assert took >= 55, f"the run ended after {took:.0f}s, it was meant to be quiet for 60s"
    pings = [line for line in lines if line.startswith(":")]
    assert len(pings) >= 3 and set(pings) == {": ping"}, pings


def test_another_tenant_gets_404(gateway: str) -> None:
    job_id = submit(gateway, {"input": "hello"}, A).json()["job_id"]
    for method, path in (("GET", ""), ("GET", "/events"), ("POST", "/cancel")):
        resp = httpx.request(method, f"{gateway}/v1/jobs/{job_id}{path}", headers=B, timeout=10)
        assert resp.status_code == 404, (path, resp.text)
    assert httpx.get(f"{gateway}/v1/jobs/{job_id}", timeout=10).status_code == 401
    assert httpx.get(f"{gateway}/v1/jobs/{job_id}", headers=A, timeout=10).status_code == 200


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"input": "   "}, "input"),
        ({"input": "hi", "mode": "turbo"}, "mode"),
        ({"input": "hi", "deadline": 0}, "deadline"),
        ({"input": "hi", "tools": ["no_such_tool"]}, "tools"),
        ({"input": "hi", "metadata": {"k": 1}}, "metadata"),
        ({"input": "hi", "colour": "blue"}, "colour"),
        ({}, "input"),
    ],
)
def test_invalid_body_is_422_naming_the_field(gateway: str, body: dict[str, Any], field: str):
    resp = submit(gateway, body, A)
    assert resp.status_code == 422, resp.text
    assert field in resp.json()["detail"][0]["loc"], resp.json()


def test_idempotency_key_returns_the_same_job(gateway: str) -> None:
    headers = {**A, "Idempotency-Key": "order-42"}
    first = submit(gateway, {"input": "once"}, headers)
    again = submit(gateway, {"input": "once"}, headers)
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["job_id"] == again.json()["job_id"] and not again.json()["created"]
    other = submit(gateway, {"input": "once"}, {**B, "Idempotency-Key": "order-42"})
    assert other.status_code == 201 and other.json()["job_id"] != first.json()["job_id"]
    changed = submit(gateway, {"input": "twice"}, headers)
    assert changed.status_code == 409 and "'order-42'" in changed.json()["detail"]


def test_tools_are_checked_against_what_the_workers_have(gateway: str) -> None:
    # `wait_a_while` is loaded by the workers only, not by the gateway's process.
    known = submit(gateway, {"input": "hi", "tools": ["wait_a_while"]}, A)
    assert known.status_code == 201, known.text
    unknown = submit(gateway, {"input": "hi", "tools": ["nope"]}, A)
    assert unknown.status_code == 422 and unknown.json()["detail"][0]["loc"] == ["body", "tools"]
    assert "'nope'" in unknown.json()["detail"][0]["msg"]
    assert "calculator" in unknown.json()["detail"][0]["msg"]


def test_a_tenant_lists_its_own_jobs(gateway: str) -> None:
    mine = submit(gateway, {"input": "find me again later"}, A).json()["job_id"]
    theirs = submit(gateway, {"input": "not for alice"}, B).json()["job_id"]
    listed = httpx.get(f"{gateway}/v1/jobs", params={"limit": 50}, headers=A, timeout=10)
    ids = [job["job_id"] for job in listed.json()["jobs"]]
    assert ids[0] == mine and theirs not in ids
    assert listed.json()["jobs"][0]["input"] == "find me again later"


def test_cancel_and_docs(gateway: str) -> None:
    job_id = submit(gateway, {"input": "cancel me", "deadline": 60}, A).json()["job_id"]
    resp = httpx.post(f"{gateway}/v1/jobs/{job_id}/cancel", headers=A, timeout=10)
    assert resp.status_code == 202
    final = sse_events(gateway, job_id, A)[-1]
    assert final["event"] == "job.final" and final["data"]["status"] in ("cancelled", "succeeded")
    assert httpx.get(f"{gateway}/docs", timeout=10).status_code == 200
    spec = httpx.get(f"{gateway}/openapi.json", timeout=10).json()
    assert {"/v1/jobs", "/v1/jobs/{job_id}/events", "/healthz"} <= set(spec["paths"])
    metrics = httpx.get(f"{gateway}/metrics", timeout=10)
    assert metrics.status_code == 401 and "RUNQ_METRICS_TOKEN" in metrics.text
    # A tenant's token does not open every tenant's figures; the operator's does.
    assert httpx.get(f"{gateway}/metrics", headers=A, timeout=10).status_code == 401
    scraper = {"Authorization": f"Bearer {METRICS_TOKEN}"}
    metrics = httpx.get(f"{gateway}/metrics", headers=scraper, timeout=10)
    assert metrics.status_code == 200 and "runq_" in metrics.text


def test_metrics_stay_closed_when_no_metrics_token_is_configured(
    stack: Stack, tmp_path: Path
) -> None:
    from tests.integration.gateway_process import start_gateway, stop

    proc, base = start_gateway(str(stack.redis_url), tmp_path, tokens="token-a:alice")
    try:
        closed = httpx.get(f"{base}/metrics", headers=A, timeout=10)
        assert closed.status_code == 401
        assert "set RUNQ_METRICS_TOKEN" in closed.json()["detail"]
    finally:
        stop(proc)


def test_gateway_refuses_to_start_without_tokens(stack: Stack, tmp_path: Path) -> None:
    env = {**os.environ, "REDIS_URL": str(stack.redis_url), "RUNQ_GATEWAY_TOKENS": ""}
    proc = subprocess.run([sys.executable, "-m", "runq.producers.cli", "gateway"], env=env,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert proc.returncode == 2 and "RUNQ_GATEWAY_TOKENS" in proc.stderr
    proc = subprocess.run(
        [sys.executable, "-m", "runq.producers.cli", "gateway", "--demo", "--host", "0.0.0.0"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2 and "127.0.0.1" in proc.stderr


def test_heartbeats_are_comments(redis_url: str) -> None:
    """A job nobody runs (its own Redis database, no worker): the stream only heartbeats."""
    db_url = redis_url.rsplit("/", 1)[0] + "/7"
    app = create_app({"t": "x"}, redis_url=db_url, settings=load_settings(redis_url=db_url),
                     heartbeat=0.2)  # fmt: skip
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: server.started, timeout=20, what="uvicorn")
        job_id = submit(base, {"input": "nobody runs me"}, {"Authorization": "Bearer t"}).json()
        comments, data = 0, 0
        with httpx.stream("GET", f"{base}/v1/jobs/{job_id['job_id']}/events",
                          headers={"Authorization": "Bearer t"}, timeout=10) as resp:  # fmt: skip
            for line in resp.iter_lines():
                comments += line.startswith(":")
                data += line.startswith("data:")
                if comments >= 2:
                    break
        # the queued status and why it waits (its tenant's turn), then only heartbeats
        assert comments >= 2 and data == 2
    finally:
        server.should_exit = True
        thread.join(timeout=10)
