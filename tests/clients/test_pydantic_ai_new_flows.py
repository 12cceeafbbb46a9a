"""pydantic-ai's native tools and its Batch API capability against the sandbox.

``NativeTool(CodeExecutionTool())`` and ``NativeTool(WebSearchTool())`` on
``OpenAIResponsesModel``: the code runs in the sandbox's container (its logs come back
with ``openai_include_code_execution_outputs``), the search answers from the offline web
with its sources, and ``openai_service_tier`` reaches the API and comes back in the
response's details. ``BatchModelRequests`` sends the agents' model requests through
the sandbox's Batch API: concurrent runs share one batch, and a run that calls a
function tool makes one batch per model request.

Observed library behaviour (not the sandbox's): ``BatchModelRequests`` refuses
``OpenAIChatModel`` with a ``UserError`` (pydantic-ai batches OpenAI through the
Responses API only).
"""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from clients_helpers import MODEL, WEATHER_QUESTION, weather_report
from pydantic_ai import Agent, CodeExecutionTool, WebSearchTool
from pydantic_ai.capabilities import BatchModelRequests, NativeTool
from pydantic_ai.exceptions import UserError
from pydantic_ai.messages import ModelResponse, NativeToolCallPart, NativeToolReturnPart
from pydantic_ai.models.openai import (
    OpenAIChatModel,
    OpenAIResponsesModel,
    OpenAIResponsesModelSettings,
)
from pydantic_ai.providers.openai import OpenAIProvider

from runq.sandbox.engine.config import SandboxConfig
from runq.sandbox.server.serve import SandboxServer

QUICK = timedelta(seconds=0.1)


@pytest.fixture(scope="module")
def batch_sandbox() -> Iterator[SandboxServer]:
    """Batches that end in about a tenth of a second."""
    with SandboxServer(SandboxConfig(port=0, latency_ms=20, batch_time_scale=0.01)) as server:
        yield server


def stats(server: SandboxServer) -> dict[str, Any]:
    with urllib.request.urlopen(server.url + "/sandbox/stats", timeout=10) as reply:
        loaded: dict[str, Any] = json.loads(reply.read())
    return loaded


def responses_model(base_url: str) -> OpenAIResponsesModel:
    return OpenAIResponsesModel(MODEL, provider=OpenAIProvider(base_url=base_url, api_key="sk-t"))


def native_parts(messages: list[Any]) -> list[Any]:
    return [
        part
        for message in messages
        if isinstance(message, ModelResponse)
        for part in message.parts
        if isinstance(part, NativeToolCallPart | NativeToolReturnPart)
    ]


def test_code_execution_runs_in_the_container_on_flex(base_url: str) -> None:
    agent = Agent(responses_model(base_url), capabilities=[NativeTool(CodeExecutionTool())])
    settings = OpenAIResponsesModelSettings(
        openai_include_code_execution_outputs=True, openai_service_tier="flex"
    )
    result = agent.run_sync("```python\nprint(6*7)\n```", model_settings=settings)
    assert result.output == "I ran the code.\n\n42"
    call, returned = native_parts(result.all_messages())
    assert call.tool_name == "code_execution" and call.args["code"] == "print(6*7)\n"
    assert call.args["container_id"].startswith("cntr_")
    assert returned.content == {"status": "completed", "logs": ["42\n"]}
    response = result.all_messages()[-1]
    assert isinstance(response, ModelResponse)
    assert response.provider_details is not None
    assert response.provider_details["service_tier"] == "flex"


def test_web_search_answers_with_its_sources(base_url: str) -> None:
    agent = Agent(responses_model(base_url), capabilities=[NativeTool(WebSearchTool())])
    settings = OpenAIResponsesModelSettings(openai_include_web_search_sources=True)
    result = agent.run_sync("What are template strings in Python 3.14?", model_settings=settings)
    call, returned = native_parts(result.all_messages())
    assert call.tool_name == "web_search"
    assert call.args["query"] == "What are template strings in Python 3.14?"
    urls = [source["url"] for source in returned.content["sources"]]
    assert urls[0] == "https://docs.example.com/python/whats-new-3-14"
    assert "t-string" in result.output


def batching() -> BatchModelRequests:
    return BatchModelRequests(max_wait=QUICK, poll_interval=QUICK, max_poll_interval=QUICK)


def test_concurrent_runs_share_one_batch(batch_sandbox: SandboxServer) -> None:
    before = stats(batch_sandbox)["batch_lines"].get("total", 0)
    created = stats(batch_sandbox)["batches_created"]

    async def flow() -> list[str]:
        async with batching() as capability:
            agent = Agent(responses_model(batch_sandbox.base_url), capabilities=[capability])
            runs = await asyncio.gather(*(agent.run(f"say {i}") for i in range(3)))
        return [run.output for run in runs]

    assert asyncio.run(flow()) == ["Echo: say 0", "Echo: say 1", "Echo: say 2"]
    after = stats(batch_sandbox)
    assert after["batches_created"] - created == 1
    assert after["batch_lines"]["total"] - before == 3


def test_a_tool_round_is_two_batches(batch_sandbox: SandboxServer) -> None:
    created = stats(batch_sandbox)["batches_created"]

    async def flow() -> str:
        async with batching() as capability:
            agent = Agent(
                responses_model(batch_sandbox.base_url),
                tools=[weather_report],
                capabilities=[capability],
            )
            return (await agent.run(WEATHER_QUESTION)).output

    answer = asyncio.run(flow())
    assert answer == "Tool results: weather_report: The weather in Paris is sunny, 21 degrees."
    assert stats(batch_sandbox)["batches_created"] - created == 2


def test_chat_model_has_no_batch_api_in_pydantic_ai(batch_sandbox: SandboxServer) -> None:
    provider = OpenAIProvider(base_url=batch_sandbox.base_url, api_key="sk-t")

    async def flow() -> None:
        async with batching() as capability:
            agent = Agent(OpenAIChatModel(MODEL, provider=provider), capabilities=[capability])
            await agent.run("hello")

    with pytest.raises(UserError, match="has no batch API"):
        asyncio.run(flow())
