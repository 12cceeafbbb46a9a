"""langchain-openai's built-in tools and service tiers against the sandbox (Responses API).

``ChatOpenAI.bind_tools`` takes OpenAI's hosted tools as dicts: ``code_interpreter``
(a chart from an uploaded CSV, its outputs by ``include=``, the message history sent
back for a second turn, a stream) and ``web_search``; ``service_tier=`` reaches the API
and comes back in ``response_metadata``.

Observed library behaviour (not the sandbox's): in LangChain's standard content blocks
(``content_blocks``, ``output_version="v1"``) a ``code_interpreter_call`` becomes a
``server_tool_call`` / ``server_tool_result`` pair, and a ``container_file_citation``
(which has no standard type) a ``non_standard_annotation`` carrying it unchanged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import openai
from clients_helpers import MODEL
from langchain_core.messages import AIMessage, HumanMessage
from langchain_openai import ChatOpenAI

SALES = Path(__file__).resolve().parents[2] / "examples" / "data" / "sales.csv"
PNG = b"\x89PNG\r\n\x1a\n"
SEVEN_SIXES = "```python\nprint(6*7)\n```"
AUTO_CONTAINER = {"type": "code_interpreter", "container": {"type": "auto"}}


def responses_model(base_url: str, **options: Any) -> ChatOpenAI:
    return ChatOpenAI(
        model=MODEL,
        base_url=base_url,
        api_key="sk-test",  # type: ignore[arg-type]
        use_responses_api=True,
        max_retries=0,
        **options,
    )


def test_code_interpreter_chart_and_its_citation(base_url: str) -> None:
    client = openai.OpenAI(base_url=base_url, api_key="sk-test", max_retries=0)
    sales = client.files.create(file=("sales.csv", SALES.read_bytes()), purpose="user_data")
    tool = {"type": "code_interpreter", "container": {"type": "auto", "file_ids": [sales.id]}}
    llm = responses_model(base_url, include=["code_interpreter_call.outputs"])
    answer = llm.bind_tools([tool]).invoke("Plot monthly sales")
    assert isinstance(answer, AIMessage)
    call, text = answer.content
    assert isinstance(call, dict) and call["type"] == "code_interpreter_call"
    assert [o["type"] for o in call["outputs"]] == ["logs", "image"]
    assert isinstance(text, dict) and "total: 107,345" in text["text"]
    (citation,) = text["annotations"]
    assert citation["type"] == "container_file_citation"
    png = client.containers.files.content.retrieve(
        citation["file_id"], container_id=citation["container_id"]
    )
    assert png.read().startswith(PNG)

    blocks = answer.content_blocks
    assert [b["type"] for b in blocks] == ["server_tool_call", "server_tool_result", "text"]
    assert blocks[0]["name"] == "code_interpreter"  # type: ignore[typeddict-item]
    (standard,) = blocks[2]["annotations"]  # type: ignore[typeddict-item]
    assert standard == {"type": "non_standard_annotation", "value": citation}


def test_the_history_with_a_code_call_continues(base_url: str) -> None:
    llm = responses_model(base_url).bind_tools([AUTO_CONTAINER])
    first = llm.invoke(SEVEN_SIXES)
    assert first.text == "I ran the code.\n\n42"
    follow = HumanMessage("```python\nprint(2 + 2)\n```")
    second = llm.invoke([HumanMessage(SEVEN_SIXES), first, follow])
    assert second.text == "I ran the code.\n\n4"


def test_streamed_code_interpreter_answer(base_url: str) -> None:
    llm = responses_model(base_url).bind_tools([AUTO_CONTAINER])
    chunks = list(llm.stream(SEVEN_SIXES))
    assert len(chunks) > 1
    whole = chunks[0]
    for chunk in chunks[1:]:
        whole = whole + chunk
    assert whole.text == "I ran the code.\n\n42"
    kinds = [b.get("type") for b in whole.content if isinstance(b, dict)]
    assert kinds == ["code_interpreter_call", "text"]


def test_v1_output_is_standard_blocks(base_url: str) -> None:
    llm = responses_model(base_url, output_version="v1").bind_tools([AUTO_CONTAINER])
    answer = llm.invoke(SEVEN_SIXES)
    call, result, text = answer.content
    assert isinstance(call, dict) and call["type"] == "server_tool_call"
    assert call["args"] == {"code": "print(6*7)\n"}
    assert isinstance(result, dict) and result["status"] == "success"
    assert isinstance(text, dict) and text["text"] == "I ran the code.\n\n42"


def test_web_search_answers_with_url_citations(base_url: str) -> None:
    answer = (
        responses_model(base_url)
        .bind_tools([{"type": "web_search"}])
        .invoke("What are template strings in Python 3.14?")
    )
    search, text = answer.content
    assert isinstance(search, dict) and search["type"] == "web_search_call"
    assert search["action"]["query"] == "What are template strings in Python 3.14?"
    assert isinstance(text, dict)
    notes = text["annotations"]
    assert notes and notes[0]["type"] == "url_citation"
    assert notes[0]["url"] == "https://docs.example.com/python/whats-new-3-14"


def test_service_tier_reaches_the_api(base_url: str) -> None:
    for tier in ("flex", "priority"):
        answer = responses_model(base_url, service_tier=tier).invoke("hello")
        assert answer.text == "Echo: hello"
        assert answer.response_metadata["service_tier"] == tier
