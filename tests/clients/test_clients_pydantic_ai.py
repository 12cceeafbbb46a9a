"""pydantic-ai against the sandbox: tools, typed outputs in each output mode, streams.

pydantic-ai's default typed output is an output *tool* (``final_result``) called under
``tool_choice: "required"``; ``NativeOutput`` asks for a ``json_schema`` format and
``PromptedOutput`` writes the schema into the instructions with ``json_object`` (or no
format). The sandbox serves all three (docs/sandbox.md, "Structured outputs").
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from clients_helpers import MODEL, WEATHER_ANSWER, WEATHER_QUESTION, Weather, weather_report
from pydantic_ai import Agent, NativeOutput, PromptedOutput, ToolOutput
from pydantic_ai.models.openai import OpenAIChatModel, OpenAIResponsesModel
from pydantic_ai.providers.openai import OpenAIProvider


def model_of(kind: str, base_url: str) -> OpenAIChatModel | OpenAIResponsesModel:
    provider = OpenAIProvider(base_url=base_url, api_key="sk-test")
    if kind == "responses":
        return OpenAIResponsesModel(MODEL, provider=provider)
    return OpenAIChatModel(MODEL, provider=provider)


@pytest.mark.parametrize("kind", ["chat", "responses"])
def test_agent_with_a_tool(base_url: str, kind: str) -> None:
    agent = Agent(model_of(kind, base_url), instructions="Be helpful.", tools=[weather_report])
    # the tool's name is its function's: weather_report
    result = asyncio.run(agent.run(WEATHER_QUESTION))
    assert result.output == WEATHER_ANSWER.replace("get_weather", "weather_report")
    assert result.usage.requests == 2


@pytest.mark.parametrize("kind", ["chat", "responses"])
@pytest.mark.parametrize("mode", ["tool", "native", "prompted"])
def test_typed_output_in_every_mode(base_url: str, kind: str, mode: str) -> None:
    output: Any = {
        "tool": ToolOutput(Weather),
        "native": NativeOutput(Weather),
        "prompted": PromptedOutput(Weather),
    }[mode]
    agent = Agent(model_of(kind, base_url), output_type=output, tools=[weather_report])
    result = asyncio.run(agent.run(WEATHER_QUESTION))
    assert result.output == Weather(city="Paris", temperature=21)


@pytest.mark.parametrize("kind", ["chat", "responses"])
def test_streamed_text(base_url: str, kind: str) -> None:
    agent = Agent(model_of(kind, base_url))

    async def flow() -> list[str]:
        async with agent.run_stream("hello there") as run:
            return [delta async for delta in run.stream_text(delta=True)]

    assert "".join(asyncio.run(flow())) == "Echo: hello there"  # deltas may arrive debounced
