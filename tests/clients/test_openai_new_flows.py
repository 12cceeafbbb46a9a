"""The official ``openai`` client on the sandbox's newer APIs, as an application uses them.

Beyond tests/sandbox (which checks the objects): the client's own conveniences on these
routes. Batches created, listed with auto-pagination, cancelled and read back with
``files.content``, from the sync and the async client; container files uploaded,
listed page by page and downloaded with ``with_streaming_response``; the code
interpreter streamed with ``responses.stream`` (its typed events, the final response);
and webhooks checked by ``client.webhooks.unwrap`` with the secret given to the client
(``webhook_secret=``) or taken from ``OPENAI_WEBHOOK_SECRET``, and refused by
``InvalidWebhookSignatureError`` when forged or stale.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import openai
import pytest
from openai.types import Batch
from openai.types.responses import ResponseCodeInterpreterToolCall
from openai.types.webhooks import BatchCompletedWebhookEvent, ResponseCompletedWebhookEvent

from runq.sandbox.engine.config import SandboxConfig
from runq.sandbox.server.serve import SandboxServer
from tests.sandbox.webhook_receiver import Received, Receiver

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

T = TypeVar("T")
SECRET = "whsec_" + base64.b64encode(os.urandom(32)).decode()
SALES = Path(__file__).resolve().parents[2] / "examples" / "data" / "sales.csv"
ENDED = ("completed", "failed", "expired", "cancelled")
PNG = b"\x89PNG\r\n\x1a\n"


def wait_until(fetch: Callable[[], T], done: Callable[[T], bool], timeout: float = 15.0) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if done(value):
            return value
        assert time.monotonic() < deadline, f"not done within {timeout}s: {value!r}"
        time.sleep(0.02)


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with Receiver() as rcv:
        yield rcv


@pytest.fixture(scope="module")
def hooked(receiver: Receiver) -> Iterator[SandboxServer]:
    """Batches of about 1.5 s for 3 lines (slow enough to cancel), signed webhooks."""
    config = SandboxConfig(
        port=0,
        latency_ms=20,
        batch_time_scale=0.2,
        webhook_url=receiver.url,
        webhook_secret=SECRET,
        webhook_retry_base_seconds=0.05,
    )
    with SandboxServer(config) as server:
        yield server


def client_of(server: SandboxServer, **options: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0, **options)


def jsonl(lines: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(row) + "\n" for row in lines).encode()


def chat_line(custom_id: str, text: str) -> dict[str, Any]:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]}
    return {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions", "body": body}


def delivery_for(receiver: Receiver, object_id: str) -> Received:
    got = receiver.wait_for(lambda ds: any(d.event["data"]["id"] == object_id for d in ds))
    return next(d for d in got if d.event["data"]["id"] == object_id)


def test_batches_with_pagination_results_and_cancel(hooked: SandboxServer) -> None:
    client = client_of(hooked)
    upload = client.files.create(
        file=("q.jsonl", jsonl([chat_line(f"q{i}", f"say {i}") for i in range(3)])),
        purpose="batch",
    )
    batches = [
        client.batches.create(
            input_file_id=upload.id,
            endpoint="/v1/chat/completions",
            completion_window="24h",
            metadata={"n": str(n)},
        )
        for n in range(3)
    ]
    cancelling = client.batches.cancel(batches[2].id)
    assert cancelling.status == "cancelling"
    for batch in batches:
        wait_until(lambda b=batch: client.batches.retrieve(b.id), lambda b: b.status in ENDED)

    walked = [b.id for b in client.batches.list(limit=1)]  # one batch a page, every page
    assert walked[:3] == [b.id for b in reversed(batches)]
    done = client.batches.retrieve(batches[0].id)
    assert done.status == "completed" and done.metadata == {"n": "0"}
    assert done.request_counts is not None and done.request_counts.completed == 3
    assert done.output_file_id is not None
    rows = [json.loads(r) for r in client.files.content(done.output_file_id).text.splitlines()]
    answers = {r["custom_id"]: r["response"]["body"]["choices"][0]["message"] for r in rows}
    assert {k: m["content"] for k, m in answers.items()} == {
        f"q{i}": f"Echo: say {i}" for i in range(3)
    }
    assert client.batches.retrieve(batches[2].id).status == "cancelled"


def test_async_client_runs_a_batch(hooked: SandboxServer) -> None:
    async def flow() -> Batch:
        client = openai.AsyncOpenAI(base_url=hooked.base_url, api_key="sk-test", max_retries=0)
        upload = await client.files.create(
            file=("q.jsonl", jsonl([chat_line("only", "hello")])), purpose="batch"
        )
        batch = await client.batches.create(
            input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        deadline = time.monotonic() + 15
        while batch.status not in ENDED and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            batch = await client.batches.retrieve(batch.id)
        listed = [b.id async for b in client.batches.list(limit=1)]
        assert batch.id in listed
        return batch

    batch = asyncio.run(flow())
    assert batch.status == "completed"
    assert batch.request_counts is not None and batch.request_counts.completed == 1


def test_container_files_upload_page_and_stream_download(
    hooked: SandboxServer, tmp_path: Path
) -> None:
    client = client_of(hooked)
    container = client.containers.create(name="pages")
    for i in range(3):
        client.containers.files.create(container.id, file=(f"n{i}.txt", f"note {i}".encode()))
    paths = [f.path for f in client.containers.files.list(container.id, limit=1)]
    assert sorted(paths) == [f"/mnt/data/n{i}.txt" for i in range(3)]
    first = client.containers.files.list(container.id, limit=1)
    assert first.has_more and len(first.data) == 1
    target = tmp_path / "n.txt"
    with client.containers.files.content.with_streaming_response.retrieve(
        first.data[0].id, container_id=container.id
    ) as response:
        response.stream_to_file(target)
    assert target.read_text().startswith("note ")


def test_code_interpreter_streamed_with_typed_events(hooked: SandboxServer) -> None:
    client = client_of(hooked)
    sales = client.files.create(file=("sales.csv", SALES.read_bytes()), purpose="user_data")
    kinds: list[str] = []
    with client.responses.stream(
        model="gpt-4o-mini",
        input="Plot monthly sales",
        tools=[{"type": "code_interpreter", "container": {"type": "auto", "file_ids": [sales.id]}}],
        include=["code_interpreter_call.outputs"],
    ) as stream:
        code = "".join(
            event.delta
            for event in stream
            if not kinds.append(event.type)  # type: ignore[func-returns-value]
            and event.type == "response.code_interpreter_call_code.delta"
        )
        final = stream.get_final_response()
    call = final.output[0]
    assert isinstance(call, ResponseCodeInterpreterToolCall)
    assert code == call.code and "savefig" in code
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert "response.code_interpreter_call.interpreting" in kinds
    citation = final.output[1].content[0].annotations[0]  # type: ignore[union-attr]
    assert citation.type == "container_file_citation"
    image = client.containers.files.content.retrieve(
        citation.file_id, container_id=citation.container_id
    )
    assert image.read().startswith(PNG)


def test_webhooks_unwrap_with_the_clients_secret_and_the_environment(
    hooked: SandboxServer, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = client_of(hooked, webhook_secret=SECRET)
    response = client.responses.create(model="gpt-4o-mini", input="hello", background=True)
    upload = client.files.create(file=("q.jsonl", jsonl([chat_line("a", "hi")])), purpose="batch")
    batch = client.batches.create(
        input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    answered = delivery_for(receiver, response.id)
    event = client.webhooks.unwrap(answered.body, answered.headers)
    assert isinstance(event, ResponseCompletedWebhookEvent) and event.data.id == response.id
    assert client.responses.retrieve(event.data.id).output_text == "Echo: hello"

    monkeypatch.setenv("OPENAI_WEBHOOK_SECRET", SECRET)
    from_env = client_of(hooked)
    batched = delivery_for(receiver, batch.id)
    batch_event = from_env.webhooks.unwrap(batched.body, batched.headers)
    assert isinstance(batch_event, BatchCompletedWebhookEvent)
    assert from_env.batches.retrieve(batch_event.data.id).status == "completed"

    forged = answered.body.replace(response.id.encode(), b"resp_forged")
    with pytest.raises(openai.InvalidWebhookSignatureError):
        client.webhooks.unwrap(forged, answered.headers)
    stale = {**answered.headers, "webhook-timestamp": str(int(time.time()) - 3600)}
    with pytest.raises(openai.InvalidWebhookSignatureError):
        client.webhooks.unwrap(answered.body, stale)
