"""litellm's Batch API and hosted tools against the sandbox (``custom_llm_provider="openai"``
with ``api_base``: litellm's files and batches calls take a custom base URL).

A JSONL file uploaded with ``create_file``, a batch created, polled with
``retrieve_batch`` and listed with ``list_batches``, its results read with
``file_content``; the async ``acreate_batch``; a cancel with ``cancel_batch``. Then
``litellm.responses`` with the ``code_interpreter`` and ``web_search`` tools.

Observed library behaviour (not the sandbox's): ``list_batches`` returns the ``openai``
client's ``SyncCursorPage[Batch]`` as is, not a litellm type.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import litellm
import pytest
from openai.pagination import SyncCursorPage

from runq.sandbox.engine.config import SandboxConfig
from runq.sandbox.server.serve import SandboxServer

litellm.telemetry = False
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

T = TypeVar("T")
ENDED = ("completed", "failed", "expired", "cancelled")


@pytest.fixture(scope="module")
def batches_sandbox() -> Iterator[SandboxServer]:
    """Batches of about 1.5 s for a few lines: quick, yet slow enough to cancel."""
    with SandboxServer(SandboxConfig(port=0, latency_ms=20, batch_time_scale=0.2)) as server:
        yield server


@pytest.fixture
def endpoint(batches_sandbox: SandboxServer) -> dict[str, Any]:
    return {
        "custom_llm_provider": "openai",
        "api_base": batches_sandbox.base_url,
        "api_key": "sk-test",
    }


def wait_until(fetch: Callable[[], T], done: Callable[[T], bool], timeout: float = 15.0) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if done(value):
            return value
        assert time.monotonic() < deadline, f"not done within {timeout}s: {value!r}"
        time.sleep(0.05)


def requests_file(endpoint: dict[str, Any], url: str, questions: list[str]) -> str:
    def body(text: str) -> dict[str, Any]:
        if url == "/v1/responses":
            return {"model": "gpt-4o-mini", "input": text}
        return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]}

    lines = [
        {"custom_id": f"q{i}", "method": "POST", "url": url, "body": body(text)}
        for i, text in enumerate(questions)
    ]
    content = "".join(json.dumps(row) + "\n" for row in lines).encode()
    created = litellm.create_file(file=("requests.jsonl", content), purpose="batch", **endpoint)
    return str(created.id)


@pytest.mark.parametrize("url", ["/v1/chat/completions", "/v1/responses"])
def test_create_retrieve_list_and_read_a_batch(endpoint: dict[str, Any], url: str) -> None:
    file_id = requests_file(endpoint, url, ["hello", "bonjour"])
    batch = litellm.create_batch(
        completion_window="24h",
        endpoint=url,  # type: ignore[arg-type]
        input_file_id=file_id,
        metadata={"source": "litellm"},
        **endpoint,
    )
    assert batch.status == "validating" and batch.input_file_id == file_id
    done = wait_until(
        lambda: litellm.retrieve_batch(batch_id=batch.id, **endpoint),
        lambda b: b.status in ENDED,
    )
    assert done.status == "completed" and done.metadata == {"source": "litellm"}
    assert done.request_counts.completed == 2 and done.request_counts.failed == 0

    listed = litellm.list_batches(limit=5, **endpoint)
    assert isinstance(listed, SyncCursorPage)
    assert batch.id in [b.id for b in listed.data]

    content = litellm.file_content(file_id=done.output_file_id, **endpoint)
    rows = {row["custom_id"]: row for row in map(json.loads, content.content.splitlines())}
    if url == "/v1/responses":
        texts = {
            k: r["response"]["body"]["output"][0]["content"][0]["text"] for k, r in rows.items()
        }
    else:
        texts = {
            k: r["response"]["body"]["choices"][0]["message"]["content"] for k, r in rows.items()
        }
    assert texts == {"q0": "Echo: hello", "q1": "Echo: bonjour"}


def test_async_create_and_cancel(endpoint: dict[str, Any]) -> None:
    file_id = requests_file(endpoint, "/v1/chat/completions", ["one", "two", "three"])

    async def flow() -> tuple[str, str]:
        batch = await litellm.acreate_batch(
            completion_window="24h",
            endpoint="/v1/chat/completions",
            input_file_id=file_id,
            **endpoint,
        )
        cancelling = await litellm.acancel_batch(batch_id=batch.id, **endpoint)
        return batch.id, cancelling.status

    batch_id, status = asyncio.run(flow())
    assert status == "cancelling"
    ended = wait_until(
        lambda: litellm.retrieve_batch(batch_id=batch_id, **endpoint), lambda b: b.status in ENDED
    )
    assert ended.status == "cancelled" and ended.cancelled_at is not None


def test_responses_with_hosted_tools(endpoint: dict[str, Any]) -> None:
    base = {"api_base": endpoint["api_base"], "api_key": endpoint["api_key"]}
    ran = litellm.responses(
        model="openai/gpt-4o-mini",
        input="```python\nprint(6*7)\n```",
        tools=[{"type": "code_interpreter", "container": {"type": "auto"}}],
        include=["code_interpreter_call.outputs"],
        **base,
    )
    call, message = ran.output
    assert call.type == "code_interpreter_call" and call.outputs[0].logs == "42\n"
    assert message.content[0].text == "I ran the code.\n\n42"
    searched = litellm.responses(
        model="openai/gpt-4o-mini",
        input="What are template strings in Python 3.14?",
        tools=[{"type": "web_search"}],
        **base,
    )
    search, answer = searched.output
    assert search.type == "web_search_call"
    assert answer.content[0].annotations[0].type == "url_citation"
