"""Operations realism: rate limits, fault injection (header and seeded profile), expiry."""

from __future__ import annotations

import openai
import pytest
from sandbox_helpers import admin, wait_until

from runq.sandbox.engine.config import SandboxConfig
from runq.sandbox.server.serve import SandboxServer

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # Assistants is deprecated


def test_every_response_has_rate_limit_headers(client: openai.OpenAI) -> None:
    raw = client.models.with_raw_response.list()
    for kind in ("requests", "tokens"):
        for field in ("limit", "remaining", "reset"):
            assert f"x-ratelimit-{field}-{kind}" in raw.headers


def test_rpm_limit_gives_429_with_retry_after() -> None:
    with SandboxServer(SandboxConfig(port=0, latency_ms=0, rpm=3)) as srv:
        client = openai.OpenAI(base_url=srv.base_url, api_key="key-a", max_retries=0)
        remaining = [
            client.models.with_raw_response.list().headers["x-ratelimit-remaining-requests"]
            for _ in range(3)
        ]
        assert remaining == ["2", "1", "0"]
        with pytest.raises(openai.RateLimitError) as info:
            client.models.list()
        headers = info.value.response.headers
        assert int(headers["retry-after"]) >= 1
        assert 0 < int(headers["retry-after-ms"]) <= 20_000
        other = openai.OpenAI(base_url=srv.base_url, api_key="key-b", max_retries=0)
        assert other.models.list().data  # limits are per key


def test_tpm_limit_counts_request_tokens() -> None:
    with SandboxServer(SandboxConfig(port=0, latency_ms=0, tpm=100)) as srv:
        client = openai.OpenAI(base_url=srv.base_url, api_key="k", max_retries=0)
        client.responses.create(model="gpt-4o-mini", input="x" * 200)
        with pytest.raises(openai.RateLimitError):
            client.responses.create(model="gpt-4o-mini", input="y" * 200)


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        ("429", openai.RateLimitError),
        ("500", openai.InternalServerError),
        ("503", openai.InternalServerError),
        ("reset", openai.APIConnectionError),
    ],
)
def test_fault_header(
    client: openai.OpenAI, server: SandboxServer, fault: str, error: type[Exception]
) -> None:
    with pytest.raises(error):
        client.models.list(extra_headers={"x-sandbox-fault": fault})
    assert admin(server.url, "/sandbox/stats")["faults"] == {fault: 1}


def test_hang_outlasts_client_timeout(server: SandboxServer) -> None:
    client = openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0, timeout=0.3)
    with pytest.raises(openai.APITimeoutError):
        client.models.list(extra_headers={"x-sandbox-fault": "hang"})


@pytest.mark.parametrize(
    ("fault", "status", "code"),
    [
        ("failed", "failed", "server_error"),
        ("rate_limited", "failed", "rate_limit_exceeded"),
        ("incomplete", "incomplete", None),
    ],
)
def test_outcome_faults_on_responses(
    client: openai.OpenAI, fault: str, status: str, code: str | None
) -> None:
    created = client.responses.create(
        model="gpt-4o-mini", input="x", background=True, extra_headers={"x-sandbox-fault": fault}
    )
    done = wait_until(
        lambda: client.responses.retrieve(created.id),
        lambda r: r.status not in ("queued", "in_progress"),
    )
    assert done.status == status
    assert (done.error.code if done.error else None) == code


def test_bad_args_fault_malforms_arguments(client: openai.OpenAI) -> None:
    tools = [
        {
            "type": "function",
            "name": "lookup_order",
            "parameters": {
                "type": "object",
                "properties": {"order": {"type": "integer"}},
                "required": ["order"],
            },
        }
    ]
    r = client.responses.create(
        model="gpt-4o-mini",
        input="lookup order 42",
        tools=tools,
        extra_headers={"x-sandbox-fault": "bad_args"},
    )
    import json

    with pytest.raises(ValueError):
        json.loads(r.output[0].arguments)


def test_expired_run_fault(client: openai.OpenAI) -> None:
    assistant = client.beta.assistants.create(model="gpt-4o-mini")
    run = client.beta.threads.create_and_run(
        assistant_id=assistant.id,
        thread={"messages": [{"role": "user", "content": "hi"}]},
        extra_headers={"x-sandbox-fault": "expired"},
    )
    done = wait_until(
        lambda: client.beta.threads.runs.retrieve(run.id, thread_id=run.thread_id),
        lambda r: r.status not in ("queued", "in_progress"),
    )
    assert done.status == "expired"


def test_run_waiting_for_tool_outputs_expires() -> None:
    with SandboxServer(SandboxConfig(port=0, latency_ms=50, run_expiry_seconds=0.5)) as srv:
        client = openai.OpenAI(base_url=srv.base_url, api_key="k", max_retries=0)
        tools = [{"type": "function", "function": {"name": "ping", "parameters": {}}}]
        assistant = client.beta.assistants.create(model="gpt-4o-mini", tools=tools)
        run = client.beta.threads.create_and_run(
            assistant_id=assistant.id, thread={"messages": [{"role": "user", "content": "ping"}]}
        )
        assert run.expires_at is not None
        retrieve = lambda: client.beta.threads.runs.retrieve(run.id, thread_id=run.thread_id)  # noqa: E731
        assert (
            wait_until(
                retrieve, lambda r: r.status != "queued" and r.status != "in_progress"
            ).status
            == "requires_action"
        )
        assert wait_until(retrieve, lambda r: r.status == "expired").status == "expired"


def _fault_sequence(seed: int) -> list[str]:
    profile = {"500": 0.3, "503": 0.2}
    with SandboxServer(SandboxConfig(port=0, latency_ms=0, faults=profile, seed=seed)) as srv:
        client = openai.OpenAI(base_url=srv.base_url, api_key="k", max_retries=0)
        outcome = []
        for _ in range(30):
            try:
                client.models.list()
                outcome.append("ok")
            except openai.InternalServerError as exc:
                outcome.append(str(exc.status_code))
        return outcome


def test_same_profile_and_seed_give_same_fault_sequence() -> None:
    first, second = _fault_sequence(7), _fault_sequence(7)
    assert first == second
    assert {"ok", "500", "503"} <= set(first)
    assert _fault_sequence(8) != first


def test_served_connections_send_without_nagle_delay() -> None:
    """asyncio turns Nagle off only on IPPROTO_TCP sockets; `bind_socket` must make one.

    With Nagle on, a response's body waited for the client's delayed ACK of its headers:
    every keep-alive request to the sandbox took about 44 ms instead of under 1 ms.
    """
    import asyncio
    import socket

    from runq.sandbox.server.serve import bind_socket

    async def nodelay_of_an_accepted_connection() -> int:
        listener = bind_socket("127.0.0.1", 0)
        accepted: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        class Probe(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                sock = transport.get_extra_info("socket")
                accepted.set_result(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))

        server = await asyncio.get_running_loop().create_server(Probe, sock=listener)
        async with server:
            _, writer = await asyncio.open_connection(*listener.getsockname()[:2])
            value = await asyncio.wait_for(accepted, 5)
            writer.close()
        return value

    assert asyncio.run(nodelay_of_an_accepted_connection()) == 1


def test_request_latency_delays_every_api_request() -> None:
    config = SandboxConfig.from_env({"RUNQ_SANDBOX_REQUEST_LATENCY_MS": "400"}).replace(port=0)
    assert config.request_latency_ms == 400
    with SandboxServer(config) as srv:
        impatient = openai.OpenAI(base_url=srv.base_url, api_key="k", max_retries=0, timeout=0.1)
        with pytest.raises(openai.APITimeoutError):
            impatient.models.list()
        patient = openai.OpenAI(base_url=srv.base_url, api_key="k", max_retries=0, timeout=10)
        assert patient.models.list().data
