"""langchain-openai's ChatOpenAI against the sandbox, on Chat Completions and Responses.

Plain invoke and stream, tools bound and their results sent back, and
``with_structured_output`` in its three methods (``json_schema``, ``function_calling``,
``json_mode``; the last needs the format described in the prompt, as LangChain says).
"""

from __future__ import annotations

import json

import pytest
from clients_helpers import FACTS, MODEL, WEATHER_ANSWER, WEATHER_QUESTION, City, weather_report
from langchain_core.messages import HumanMessage, SystemMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI

get_weather = tool("get_weather")(weather_report)


def chat_model(base_url: str, responses: bool) -> ChatOpenAI:
    return ChatOpenAI(
        model=MODEL,
        base_url=base_url,
        api_key="sk-test",
        use_responses_api=responses,
        max_retries=0,
    )


@pytest.mark.parametrize("responses", [False, True])
def test_invoke_and_stream(base_url: str, responses: bool) -> None:
    llm = chat_model(base_url, responses)
    assert llm.invoke("hello").text == "Echo: hello"
    chunks = list(llm.stream("hello"))
    assert len(chunks) > 1 and "".join(c.text for c in chunks) == "Echo: hello"


@pytest.mark.parametrize("responses", [False, True])
def test_bound_tool_round_trip(base_url: str, responses: bool) -> None:
    llm = chat_model(base_url, responses).bind_tools([get_weather])
    question = HumanMessage(WEATHER_QUESTION)
    asked = llm.invoke([question])
    assert [(c["name"], c["args"]) for c in asked.tool_calls] == [
        ("get_weather", {"city": "Paris"})
    ]
    result = get_weather.invoke(asked.tool_calls[0])
    assert llm.invoke([question, asked, result]).text == WEATHER_ANSWER


@pytest.mark.parametrize("responses", [False, True])
@pytest.mark.parametrize("method", ["json_schema", "function_calling", "json_mode"])
def test_structured_output(base_url: str, responses: bool, method: str) -> None:
    llm = chat_model(base_url, responses).with_structured_output(City, method=method)  # type: ignore[arg-type]
    schema = json.dumps(City.model_json_schema())
    city = llm.invoke([SystemMessage(f"Reply in JSON following {schema}"), HumanMessage(FACTS)])
    assert isinstance(city, City) and city.population == 2100000
    if method != "function_calling":  # a tool's string arguments follow the tool policy
        assert (city.name, city.country) == ("Paris", "France")
