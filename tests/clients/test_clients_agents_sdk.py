"""The OpenAI Agents SDK against the sandbox: its documented flows, both model kinds.

Agents with function tools (run and streamed), typed outputs (``output_type``) and a
conversation kept by ``OpenAIConversationsSession`` (the Conversations items API), on
``OpenAIResponsesModel`` and ``OpenAIChatCompletionsModel``.
"""

from __future__ import annotations

import asyncio

import openai
import pytest
from agents import (
    Agent,
    OpenAIChatCompletionsModel,
    OpenAIResponsesModel,
    Runner,
    function_tool,
    set_tracing_disabled,
)
from agents.memory import OpenAIConversationsSession
from clients_helpers import MODEL, WEATHER_ANSWER, WEATHER_QUESTION, Weather, weather_report

set_tracing_disabled(True)  # the environment says so too; tracing never leaves this machine
get_weather = function_tool(weather_report, name_override="get_weather")


def model_of(
    kind: str, client: openai.AsyncOpenAI
) -> OpenAIResponsesModel | OpenAIChatCompletionsModel:
    if kind == "responses":
        return OpenAIResponsesModel(MODEL, client)
    return OpenAIChatCompletionsModel(MODEL, client)


@pytest.mark.parametrize("kind", ["responses", "chat"])
def test_agent_calls_its_tool_and_answers(base_url: str, kind: str) -> None:
    async def flow() -> tuple[str, list[str]]:
        client = openai.AsyncOpenAI(base_url=base_url, api_key="sk-test", max_retries=0)
        agent = Agent(
            name="w", instructions="Be helpful.", tools=[get_weather], model=model_of(kind, client)
        )
        result = await Runner.run(agent, WEATHER_QUESTION)
        return result.final_output, [item.type for item in result.new_items]

    answer, items = asyncio.run(flow())
    assert answer == WEATHER_ANSWER
    assert items == ["tool_call_item", "tool_call_output_item", "message_output_item"]


@pytest.mark.parametrize("kind", ["responses", "chat"])
def test_streamed_run_yields_deltas_and_the_same_answer(base_url: str, kind: str) -> None:
    async def flow() -> tuple[str, set[str], str]:
        client = openai.AsyncOpenAI(base_url=base_url, api_key="sk-test", max_retries=0)
        agent = Agent(name="w", tools=[get_weather], model=model_of(kind, client))
        run = Runner.run_streamed(agent, "weather in Rome")
        kinds, text = set(), []
        async for event in run.stream_events():
            kinds.add(event.type)
            if event.type == "run_item_stream_event":
                kinds.add(event.item.type)
            data = getattr(event, "data", None)
            if getattr(data, "type", "") == "response.output_text.delta":
                text.append(data.delta)  # type: ignore[union-attr]
        return str(run.final_output), kinds, "".join(text)

    answer, kinds, streamed = asyncio.run(flow())
    assert answer == "Tool results: get_weather: The weather in Rome is sunny, 21 degrees."
    assert {"raw_response_event", "tool_call_item", "tool_call_output_item"} <= kinds
    assert streamed == answer


@pytest.mark.parametrize("kind", ["responses", "chat"])
def test_output_type_is_filled_from_the_tool_output(base_url: str, kind: str) -> None:
    async def flow() -> Weather:
        client = openai.AsyncOpenAI(base_url=base_url, api_key="sk-test", max_retries=0)
        agent = Agent(
            name="w", tools=[get_weather], model=model_of(kind, client), output_type=Weather
        )
        result = await Runner.run(agent, WEATHER_QUESTION)
        return result.final_output_as(Weather)

    assert asyncio.run(flow()) == Weather(city="Paris", temperature=21)


def test_conversation_session_keeps_history_in_the_sandbox(base_url: str) -> None:
    async def flow() -> tuple[str, int, str, int]:
        client = openai.AsyncOpenAI(base_url=base_url, api_key="sk-test", max_retries=0)
        session = OpenAIConversationsSession(openai_client=client)
        agent = Agent(name="memo", model=OpenAIResponsesModel(MODEL, client))
        await Runner.run(agent, "My name is Ada.", session=session)
        second = await Runner.run(agent, "What is my name?", session=session)
        items = await session.get_items()
        popped = await session.pop_item()
        left = await session.get_items()
        await session.clear_session()
        return second.final_output, len(items), str((popped or {}).get("role")), len(left)

    answer, count, popped_role, left = asyncio.run(flow())
    assert answer == 'Echo: What is my name? (earlier: "My name is Ada.")'
    assert (count, popped_role, left) == (4, "assistant", 3)
