"""The gateway's limits in-process: 401 before the body, 413 before parsing, 429 per stream
limit, and bounded fields (runq.producers.gateway.limits and models)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from runq.config.settings import load_settings
from runq.producers.gateway import create_app
from runq.producers.gateway.limits import RequestGuard, StreamSlots, TooManyStreams

A = {"Authorization": "Bearer ta"}
LIMIT = 4096


@pytest.fixture
def http(redis_url: str) -> Iterator[TestClient]:
    url = redis_url.rsplit("/", 1)[0] + "/6"  # a database no worker reads
    settings = dataclasses.replace(
        load_settings(redis_url=url), gateway_max_body_bytes=LIMIT,
        gateway_max_streams=3, gateway_max_streams_per_tenant=2,
    )  # fmt: skip
    app = create_app({"ta": "alice", "tb": "bob"}, redis_url=url, settings=settings)
    with TestClient(app) as client:
        yield client


def _guarded(body_chunks: list[bytes], headers: list[tuple[bytes, bytes]]) -> tuple[int, int]:
    """(status, chunks the app pulled) for a POST /v1/jobs through `RequestGuard` alone."""
    pulled = 0
    status = 0

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def receive() -> dict[str, Any]:
        nonlocal pulled
        pulled += 1
        more = pulled < len(body_chunks)
        return {"type": "http.request", "body": body_chunks[pulled - 1], "more_body": more}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    guard = RequestGuard(inner, tokens={"ta": "alice"}, max_body_bytes=LIMIT)
    scope = {"type": "http", "method": "POST", "path": "/v1/jobs", "headers": headers}
    asyncio.run(guard(scope, receive, send))
    return status, pulled


def test_a_bad_token_is_refused_before_the_body_is_read() -> None:
    big = [b"x" * 1024] * 1000
    for auth in ([], [(b"authorization", b"Bearer nope")], [(b"authorization", b"Basic ta")]):
        assert _guarded(big, [(b"content-length", b"1024000"), *auth]) == (401, 0)
        assert _guarded(big, auth) == (401, 0)  # chunked: no length either


def test_a_body_over_the_limit_is_refused_from_its_length_or_while_it_streams() -> None:
    token = [(b"authorization", b"Bearer ta")]
    assert _guarded([b"x"], [(b"content-length", str(LIMIT + 1).encode()), *token]) == (413, 0)
    status, pulled = _guarded([b"x" * 1024] * 100, token)  # no length: counted as it comes
    assert status == 413 and pulled == LIMIT // 1024 + 1
    assert _guarded([b"x" * 1024] * 4, token) == (204, 4)


def test_413_and_401_through_the_app(http: TestClient) -> None:
    body = b'{"input": "' + b"x" * LIMIT + b'"}'
    resp = http.post("/v1/jobs", content=body, headers={**A, "Content-Type": "application/json"})
    assert resp.status_code == 413, resp.text
    assert resp.json()["limit"] == "RUNQ_GATEWAY_MAX_BODY_BYTES" and resp.json()["max"] == LIMIT
    chunks = iter([b'{"input": "', b"x" * LIMIT, b'"}'])
    resp = http.post("/v1/jobs", content=chunks, headers={**A, "Content-Type": "application/json"})
    assert resp.status_code == 413 and resp.json()["limit"] == "RUNQ_GATEWAY_MAX_BODY_BYTES"
    resp = http.post("/v1/jobs", content=body, headers={"Authorization": "Bearer x"})
    assert resp.status_code == 401 and resp.headers["WWW-Authenticate"] == "Bearer"
    assert http.post("/v1/jobs", json={"input": "small"}, headers=A).status_code == 201


def test_stream_slots_count_per_tenant_and_in_all() -> None:
    slots = StreamSlots(max_total=3, max_per_tenant=2)
    a1, a2 = slots.acquire("a"), slots.acquire("a")
    with pytest.raises(TooManyStreams) as per_tenant:
        slots.acquire("a")
    assert per_tenant.value.limit == "RUNQ_GATEWAY_MAX_STREAMS_PER_TENANT"
    slots.acquire("b")
    with pytest.raises(TooManyStreams) as total:
        slots.acquire("c")
    assert total.value.limit == "RUNQ_GATEWAY_MAX_STREAMS"
    a1.release()
    a1.release()  # twice is harmless
    assert slots.total == 2 and slots.by_tenant == {"a": 1, "b": 1}
    a2.release()
    assert "a" not in slots.by_tenant
    assert StreamSlots(0, 0).acquire("x") is not None  # 0: no limit


def test_429_names_the_limit(http: TestClient) -> None:
    job_id = http.post("/v1/jobs", json={"input": "hi"}, headers=A).json()["job_id"]
    slots = http.app.state.stream_slots  # type: ignore[attr-defined]
    held = [slots.acquire("alice"), slots.acquire("alice")]
    resp = http.get(f"/v1/jobs/{job_id}/events", headers=A)
    assert resp.status_code == 429 and resp.headers["Retry-After"] == "5"
    assert resp.json()["limit"] == "RUNQ_GATEWAY_MAX_STREAMS_PER_TENANT"
    assert "at most 2" in resp.json()["detail"]
    for slot in held:
        slot.release()
    assert slots.total == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"input": "x", "instructions": "i" * 100_001}, "instructions"),
        ({"input": "x", "metadata": {"k": "v" * 513}}, "metadata"),
        ({"input": "x", "tools": ["t" * 201]}, "tools"),
        ({"input": "x", "include": ["i" * 201]}, "include"),
        ({"input": [{"type": "t" * 65}]}, "input"),
        ({"input": [{"role": "user", "content": "hi", "extra": "x"}]}, "input[0]"),
        ({"input": [{"type": "function_call_output", "call_id": "c", "output": "o", "x": 1}]},
         "input[0]"),
    ],
)  # fmt: skip
def test_fields_are_bounded(http: TestClient, body: dict[str, Any], field: str) -> None:
    resp = http.post("/v1/jobs", json=body, headers=A)
    assert resp.status_code in (413, 422), resp.text
    if resp.status_code == 422:
        assert field in resp.json()["detail"][0]["loc"], resp.text
    key = {**A, "Idempotency-Key": "k" * 201}
    assert http.post("/v1/jobs", json={"input": "x"}, headers=key).status_code == 422
