"""litellm against the sandbox as an ``openai/`` provider: completion, tools, typed
responses, streams, the Responses bridge and a reasoning model's usage.

``LITELLM_LOCAL_MODEL_COST_MAP`` (set by the conftest) keeps litellm from fetching its
price list; telemetry is off.
"""

from __future__ import annotations

import json
from typing import Any

import litellm
import pytest
from clients_helpers import FACTS, WEATHER_QUESTION, City

litellm.telemetry = False
# litellm's own types warn about pydantic ReadOnly TypedDict items
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


@pytest.fixture
def endpoint(base_url: str) -> dict[str, Any]:
    return {"api_base": base_url, "api_key": "sk-test"}


def test_completion_and_stream(endpoint: dict[str, Any]) -> None:
    messages = [{"role": "user", "content": "hello"}]
    done = litellm.completion(model="openai/gpt-4o-mini", messages=messages, **endpoint)
    assert done.choices[0].message.content == "Echo: hello"
    chunks = list(
        litellm.completion(model="openai/gpt-4o-mini", messages=messages, stream=True, **endpoint)
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "Echo: hello"


def test_tool_round_trip(endpoint: dict[str, Any]) -> None:
    messages: list[dict[str, Any]] = [{"role": "user", "content": WEATHER_QUESTION}]
    asked = litellm.completion(
        model="openai/gpt-4o-mini", messages=messages, tools=[WEATHER_TOOL], **endpoint
    )
    call = asked.choices[0].message.tool_calls[0]
    assert (call.function.name, json.loads(call.function.arguments)) == (
        "get_weather",
        {"city": "Paris"},
    )
    messages += [
        asked.choices[0].message.model_dump(),
        {"role": "tool", "tool_call_id": call.id, "content": "sunny"},
    ]
    answer = litellm.completion(
        model="openai/gpt-4o-mini", messages=messages, tools=[WEATHER_TOOL], **endpoint
    )
    assert answer.choices[0].message.content == "Tool results: get_weather: sunny"


def test_typed_response_format(endpoint: dict[str, Any]) -> None:
    done = litellm.completion(
        model="openai/gpt-4o-mini",
        messages=[{"role": "user", "content": FACTS}],
        response_format=City,
        **endpoint,
    )
    city = City.model_validate_json(done.choices[0].message.content)
    assert city == City(name="Paris", population=2100000, country="France")


def test_responses_bridge_and_reasoning_usage(endpoint: dict[str, Any]) -> None:
    response = litellm.responses(model="openai/gpt-4o-mini", input="hello", **endpoint)
    assert response.output[0].content[0].text == "Echo: hello"
    reasoned = litellm.completion(
        model="openai/o4-mini",
        messages=[{"role": "user", "content": "hello"}],
        reasoning_effort="low",
        **endpoint,
    )
    assert reasoned.usage.completion_tokens_details.reasoning_tokens > 0
