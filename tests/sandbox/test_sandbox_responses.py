"""Responses API basics over real HTTP with the official client (sync and async)."""

from __future__ import annotations

import asyncio
import time

import openai
import pytest
from sandbox_helpers import admin, is_terminal, wait_until

from runq.sandbox.engine.config import SandboxConfig
from runq.sandbox.server.serve import SandboxServer


def test_background_create_then_poll_until_completed(client: openai.OpenAI) -> None:
    created = client.responses.create(
        model="gpt-4o-mini",
        input="What is runq?",
        background=True,
        metadata={"runq_job_id": "job-1"},
    )
    assert created.status == "queued"
    assert created.background is True
    assert created.output == []
    assert created.metadata == {"runq_job_id": "job-1"}

    done = wait_until(lambda: client.responses.retrieve(created.id), is_terminal)
    assert done.status == "completed"
    assert done.output_text == "Echo: What is runq?"
    assert done.usage is not None
    assert done.usage.output_tokens > 0
    assert done.usage.total_tokens == done.usage.input_tokens + done.usage.output_tokens


def test_retrieve_in_flight_gives_poll_after_header(client: openai.OpenAI) -> None:
    created = client.responses.create(model="gpt-4o-mini", input="hi", background=True)
    raw = client.responses.with_raw_response.retrieve(created.id)
    assert raw.parse().status in ("queued", "in_progress")
    assert 0 < int(raw.headers["openai-poll-after-ms"]) <= 150
    done = wait_until(
        lambda: client.responses.with_raw_response.retrieve(created.id),
        lambda r: is_terminal(r.parse()),
    )
    assert "openai-poll-after-ms" not in done.headers


def test_status_goes_queued_then_in_progress_then_completed(client: openai.OpenAI) -> None:
    created = client.responses.create(model="gpt-4o-mini", input="hi", background=True)
    seen = [created.status]

    def step() -> str:
        status = client.responses.retrieve(created.id).status
        if status != seen[-1]:
            seen.append(status)
        return status

    wait_until(step, lambda s: s == "completed")
    assert seen[0] == "queued" and seen[-1] == "completed"
    assert set(seen) <= {"queued", "in_progress", "completed"}


def test_foreground_create_waits_the_latency(client: openai.OpenAI) -> None:
    start = time.monotonic()
    response = client.responses.create(
        model="gpt-4o-mini",
        instructions="be brief",
        input=[{"role": "user", "content": [{"type": "input_text", "text": "ping"}]}],
    )
    assert time.monotonic() - start >= 0.14
    assert response.status == "completed"
    assert response.output_text == "Echo: ping"
    assert response.instructions == "be brief"


def test_previous_response_id_carries_history(client: openai.OpenAI) -> None:
    first = client.responses.create(model="gpt-4o-mini", input="alpha")
    second = client.responses.create(
        model="gpt-4o-mini", input="beta", previous_response_id=first.id
    )
    assert second.output_text == 'Echo: beta (earlier: "alpha")'


def test_cancel_is_idempotent_and_counted(client: openai.OpenAI, server: SandboxServer) -> None:
    created = client.responses.create(
        model="gpt-4o-mini", input="x", background=True, metadata={"runq_job_id": "job-c"}
    )
    first = client.responses.cancel(created.id)
    second = client.responses.cancel(created.id)
    assert first.status == second.status == "cancelled"
    assert client.responses.retrieve(created.id).status == "cancelled"
    stats = admin(server.url, "/sandbox/stats")
    assert stats["responses_cancelled_by_job"] == {"job-c": 1}
    assert stats["response_cancel_requests_by_job"] == {"job-c": 2}
    assert stats["in_flight_responses"] == 0


def test_cancel_of_completed_response_leaves_it_completed(client: openai.OpenAI) -> None:
    created = client.responses.create(model="gpt-4o-mini", input="x", background=True)
    wait_until(lambda: client.responses.retrieve(created.id), is_terminal)
    assert client.responses.cancel(created.id).status == "completed"


def test_unknown_id_is_404_in_openai_shape(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client.responses.retrieve("resp_missing")
    assert info.value.status_code == 404
    assert info.value.body["message"] == "No response found with id 'resp_missing'."
    assert info.value.body["type"] == "invalid_request_error"
    assert set(info.value.body) == {"message", "type", "param", "code"}


def test_bad_body_is_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.responses.create(model="gpt-4o-mini", input=42)  # type: ignore[arg-type]
    assert info.value.body["param"] == "input"
    with pytest.raises(openai.BadRequestError) as missing:
        client.post("/responses", body={"input": "x"}, cast_to=object)
    assert missing.value.body["param"] == "model"


def test_wrong_key_is_401() -> None:
    config = SandboxConfig(port=0, latency_ms=0, api_keys=["sk-good"])
    with SandboxServer(config) as srv:
        bad = openai.OpenAI(base_url=srv.base_url, api_key="sk-bad", max_retries=0)
        with pytest.raises(openai.AuthenticationError) as info:
            bad.models.list()
        assert info.value.body["code"] == "invalid_api_key"
        good = openai.OpenAI(base_url=srv.base_url, api_key="sk-good", max_retries=0)
        assert "gpt-4o-mini" in [m.id for m in good.models.list()]


def test_models_list_and_retrieve(client: openai.OpenAI) -> None:
    ids = [m.id for m in client.models.list()]
    assert "gpt-4o-mini" in ids
    assert client.models.retrieve("gpt-4o").id == "gpt-4o"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("no-such-model")


def test_stats_count_requests_jobs_and_peak() -> None:
    with SandboxServer(SandboxConfig(port=0, latency_ms=5_000)) as srv:
        client = openai.OpenAI(base_url=srv.base_url, api_key="k", max_retries=0)
        ids = [
            client.responses.create(
                model="gpt-4o-mini",
                input="x",
                background=True,
                metadata={"runq_job_id": f"j{i % 2}"},
            ).id
            for i in range(5)
        ]
        stats = admin(srv.url, "/sandbox/stats")
        assert stats["responses_created_by_job"] == {"j0": 3, "j1": 2}
        assert stats["requests"]["POST /v1/responses 200"] == 5
        assert stats["in_flight_responses"] == 5
        assert stats["peak_in_flight_responses"] == 5
        for rid in ids[:3]:
            client.responses.cancel(rid)
        after = admin(srv.url, "/sandbox/stats")
        assert after["in_flight_responses"] == 2
        assert after["peak_in_flight_responses"] == 5
        assert after["responses_cancelled_by_job"] == {"j0": 2, "j1": 1}
        assert after["requests"]["POST /v1/responses/{response_id}/cancel 200"] == 3
        assert after["faults"] == {}
        admin(srv.url, "/sandbox/reset", "POST")
        cleared = admin(srv.url, "/sandbox/stats")
        assert cleared["responses_created_by_job"] == {}
        assert cleared["peak_in_flight_responses"] == 0


def test_async_client_background_flow(aclient: openai.AsyncOpenAI) -> None:
    async def flow() -> list[str]:
        # Closed inside the loop that opened its connections: left to the garbage
        # collector after `asyncio.run`, they warn as unclosed transports.
        async with aclient:
            created = await asyncio.gather(
                *[
                    aclient.responses.create(model="gpt-4o-mini", input=f"n{i}", background=True)
                    for i in range(20)
                ]
            )
            deadline = time.monotonic() + 10
            texts = []
            for c in created:
                while True:
                    r = await aclient.responses.retrieve(c.id)
                    if is_terminal(r):
                        texts.append(r.output_text)
                        break
                    assert time.monotonic() < deadline
                    await asyncio.sleep(0.02)
            return texts

    assert asyncio.run(flow()) == [f"Echo: n{i}" for i in range(20)]


def test_waiting_for_a_moment_outlasts_a_timer_that_fires_early(monkeypatch) -> None:
    """An event loop's timer may fire before the wall clock says (uvloop's clock is
    cached per loop iteration): a foreground create woken then answered `in_progress`
    with no output. `wait_until` sleeps again for what is left."""
    from runq.sandbox.api import sse

    real_sleep = asyncio.sleep

    async def early(delay: float) -> None:  # wakes after half the time asked for
        await real_sleep(delay / 2)

    monkeypatch.setattr(sse.asyncio, "sleep", early)
    due = time.time() + 0.2
    asyncio.run(sse.wait_until(due))
    assert time.time() >= due
