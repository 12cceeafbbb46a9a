"""The OpenAI Agents SDK's hosted tools against the sandbox: ``CodeInterpreterTool`` and
``WebSearchTool`` on ``OpenAIResponsesModel``.

The agent runs code and answers with its output, charts an uploaded CSV (the answer's
``container_file_citation`` names a PNG the ``openai`` client downloads), asks for the
call's outputs through ``ModelSettings.response_include``, keeps its container across
runs chained by ``previous_response_id``, and streams the code interpreter's events.
The web search agent answers from the sandbox's offline web with ``url_citation``s,
and its ``allowed_domains`` filter reaches the tool.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import openai
from agents import (
    Agent,
    CodeInterpreterTool,
    ModelSettings,
    OpenAIResponsesModel,
    Runner,
    WebSearchTool,
    set_tracing_disabled,
)
from agents.tool import WebSearchToolFilters
from clients_helpers import MODEL
from openai.types.responses import (
    ResponseCodeInterpreterToolCall,
    ResponseFunctionWebSearch,
    ResponseOutputMessage,
)

set_tracing_disabled(True)
SALES = Path(__file__).resolve().parents[2] / "examples" / "data" / "sales.csv"
PNG = b"\x89PNG\r\n\x1a\n"
SEVEN_SIXES = "```python\nprint(6*7)\n```"


def interpreter(file_ids: list[str] | None = None) -> CodeInterpreterTool:
    container: dict[str, Any] = {"type": "auto"}
    if file_ids:
        container["file_ids"] = file_ids
    return CodeInterpreterTool(tool_config={"type": "code_interpreter", "container": container})  # type: ignore[typeddict-item]


def agent_of(base_url: str, tool: Any, **settings: Any) -> Agent[Any]:
    client = openai.AsyncOpenAI(base_url=base_url, api_key="sk-test", max_retries=0)
    return Agent(
        name="analyst",
        tools=[tool],
        model=OpenAIResponsesModel(MODEL, client),
        model_settings=ModelSettings(**settings),
    )


def raw_items(result: Any) -> list[Any]:
    return [item.raw_item for item in result.new_items]


def test_code_interpreter_runs_the_code_and_answers(base_url: str) -> None:
    result = asyncio.run(Runner.run(agent_of(base_url, interpreter()), SEVEN_SIXES))
    assert result.final_output == "I ran the code.\n\n42"
    call, message = raw_items(result)
    assert isinstance(call, ResponseCodeInterpreterToolCall)
    assert call.code == "print(6*7)\n" and call.outputs is None
    assert isinstance(message, ResponseOutputMessage) and message.content[0].annotations == []
    assert [item.type for item in result.new_items] == ["tool_call_item", "message_output_item"]


def test_a_chart_is_cited_and_downloadable(base_url: str) -> None:
    client = openai.OpenAI(base_url=base_url, api_key="sk-test", max_retries=0)
    sales = client.files.create(file=("sales.csv", SALES.read_bytes()), purpose="user_data")
    agent = agent_of(
        base_url,
        interpreter([sales.id]),
        response_include=["code_interpreter_call.outputs"],
    )
    result = asyncio.run(Runner.run(agent, "Plot monthly sales"))
    call, message = raw_items(result)
    assert [output.type for output in call.outputs] == ["logs", "image"]
    assert isinstance(message, ResponseOutputMessage)
    (citation,) = message.content[0].annotations  # type: ignore[union-attr]
    assert citation.type == "container_file_citation"
    assert citation.filename == "revenue_by_month.png"
    assert "I plotted revenue by month from sales.csv." in result.final_output
    png = client.containers.files.content.retrieve(
        citation.file_id, container_id=citation.container_id
    )
    assert png.read().startswith(PNG)


def test_runs_chained_by_previous_response_id_share_the_container(base_url: str) -> None:
    agent = agent_of(base_url, interpreter(), response_include=["code_interpreter_call.outputs"])
    write = "```python\nopen('note.txt', 'w').write('kept')\n```"
    read = "```python\nprint(open('note.txt').read())\n```"

    async def flow() -> tuple[Any, Any]:  # one event loop: the async client is bound to it
        first = await Runner.run(agent, write)
        return first, await Runner.run(agent, read, previous_response_id=first.last_response_id)

    first, second = asyncio.run(flow())
    first_call, second_call = raw_items(first)[0], raw_items(second)[0]
    assert first_call.container_id == second_call.container_id
    assert second_call.outputs[0].logs == "kept\n"
    assert second.final_output == "I ran the code.\n\nkept"


def test_a_run_sent_back_as_input_continues(base_url: str) -> None:
    """The SDK's own history (``to_input_list``) carries the code interpreter call back."""
    agent = agent_of(base_url, interpreter())
    kinds: list[Any] = []

    async def flow() -> Any:
        first = await Runner.run(agent, SEVEN_SIXES)
        history = first.to_input_list()
        kinds.extend(item.get("type") for item in history[1:])
        history.append({"role": "user", "content": "```python\nprint(2 + 2)\n```"})
        return await Runner.run(agent, history)

    second = asyncio.run(flow())
    assert kinds == ["code_interpreter_call", "message"]
    assert second.final_output == "I ran the code.\n\n4"


def test_streamed_code_interpreter_run(base_url: str) -> None:
    async def flow() -> tuple[list[str], str]:
        run = Runner.run_streamed(agent_of(base_url, interpreter()), SEVEN_SIXES)
        kinds = []
        async for event in run.stream_events():
            if event.type == "raw_response_event":
                kinds.append(event.data.type)
        return kinds, run.final_output

    kinds, answer = asyncio.run(flow())
    assert answer == "I ran the code.\n\n42"
    code_events = [k for k in kinds if k.startswith("response.code_interpreter_call")]
    assert code_events[0] == "response.code_interpreter_call.in_progress"
    assert code_events[-1] == "response.code_interpreter_call.completed"
    assert "response.code_interpreter_call_code.delta" in code_events


def test_web_search_answers_with_url_citations(base_url: str) -> None:
    agent = agent_of(base_url, WebSearchTool())
    result = asyncio.run(Runner.run(agent, "What are template strings in Python 3.14?"))
    search, message = raw_items(result)
    assert isinstance(search, ResponseFunctionWebSearch) and search.status == "completed"
    notes = message.content[0].annotations
    assert notes and {n.type for n in notes} == {"url_citation"}
    assert notes[0].url == "https://docs.example.com/python/whats-new-3-14"
    assert "t-string" in result.final_output


def test_web_search_allowed_domains_reach_the_tool(base_url: str) -> None:
    only = WebSearchTool(filters=WebSearchToolFilters(allowed_domains=["nowhere.example.org"]))
    result = asyncio.run(Runner.run(agent_of(base_url, only), "template strings in Python 3.14"))
    search, message = raw_items(result)
    assert isinstance(search, ResponseFunctionWebSearch)
    assert message.content[0].annotations == []


def test_tool_choice_required_with_a_hosted_tool(base_url: str) -> None:
    """``tool_choice="required"`` with only a hosted tool still runs the code once."""
    agent = agent_of(base_url, interpreter(), tool_choice="required")
    result = asyncio.run(Runner.run(agent, SEVEN_SIXES, max_turns=2))
    assert result.final_output == "I ran the code.\n\n42"
