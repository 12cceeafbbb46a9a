"""Structured outputs: JSON that validates against the schema, grounded in the input.

The fill policy is documented in docs/sandbox.md ("Structured outputs"); these tests pin
it through the official client's ``parse`` helpers and raw requests, on Responses, Chat
Completions and Assistants.
"""

from __future__ import annotations

import json
from typing import Literal

import jsonschema
import openai
import pytest
from pydantic import BaseModel

from runq.sandbox.engine import structured

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # Assistants
MODEL = "gpt-4o-mini"
FACTS = "Paris is the capital of France. It has 2100000 inhabitants. Is it sunny? Yes."


class Address(BaseModel):
    city: str
    zip_code: str | None


class City(BaseModel):
    name: str
    population: int
    kind: Literal["capital", "town"]
    tags: list[str]
    mayor: str | None
    address: Address
    sunny: bool


def test_responses_parse_gives_a_grounded_model(client: openai.OpenAI) -> None:
    parsed = client.responses.parse(model=MODEL, input=FACTS, text_format=City)
    city = parsed.output_parsed
    assert isinstance(city, City)
    assert city.name == "Paris"
    assert city.population == 2100000
    assert city.kind == "capital"  # the enum option the input mentions
    assert city.mayor is None  # nothing grounds it, and the schema allows null
    assert city.sunny is True
    fmt = parsed.text.format  # type: ignore[union-attr]
    assert fmt.type == "json_schema" and fmt.name == "City" and fmt.strict is True


def test_chat_parse_gives_the_same_model(client: openai.OpenAI) -> None:
    completion = client.chat.completions.parse(
        model=MODEL, messages=[{"role": "user", "content": FACTS}], response_format=City
    )
    city = completion.choices[0].message.parsed
    assert city is not None and city.population == 2100000 and city.name == "Paris"


def test_streams_of_structured_output_parse(client: openai.OpenAI) -> None:
    with client.responses.stream(model=MODEL, input=FACTS, text_format=City) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert "response.output_text.delta" in kinds and kinds[-1] == "response.completed"
    assert final.output_parsed is not None and final.output_parsed.kind == "capital"
    with client.chat.completions.stream(
        model=MODEL, messages=[{"role": "user", "content": FACTS}], response_format=City
    ) as chat:
        for _ in chat:
            pass
        done = chat.get_final_completion()
    assert done.choices[0].message.parsed is not None


def test_json_schema_not_strict_and_json_object(client: openai.OpenAI) -> None:
    schema = {
        "type": "object",
        "properties": {"temperature": {"type": "number"}, "unit": {"enum": ["C", "F"]}},
        "required": ["temperature"],
    }
    fmt = {"type": "json_schema", "name": "w", "schema": schema}
    response = client.responses.create(
        model=MODEL,
        input="It is 21.5 degrees C",
        text={"format": fmt},  # type: ignore[typeddict-item]
    )
    value = json.loads(response.output_text)
    jsonschema.validate(value, schema)
    assert value == {"temperature": 21.5, "unit": "C"}
    assert response.text.format.strict is False  # type: ignore[union-attr]
    chat = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Answer in JSON: hello"}],
        response_format={"type": "json_object"},
    )
    assert json.loads(chat.choices[0].message.content or "") == {
        "answer": "Echo: Answer in JSON: hello"
    }


def test_json_object_fills_a_schema_given_in_the_instructions(client: openai.OpenAI) -> None:
    schema = {"type": "object", "properties": {"count": {"type": "integer"}}}
    response = client.responses.create(
        model=MODEL,
        instructions=f"Reply in JSON matching {json.dumps(schema)}",
        input="I have 3 cats",
        text={"format": {"type": "json_object"}},
    )
    assert json.loads(response.output_text) == {"count": 3}


def test_tool_outputs_ground_the_answer(client: openai.OpenAI) -> None:
    tool = {
        "type": "function",
        "name": "get_weather",
        "description": "weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    }
    first = client.responses.create(model=MODEL, input="weather in Paris", tools=[tool])  # type: ignore[list-item]
    call = next(i for i in first.output if i.type == "function_call")

    class Weather(BaseModel):
        city: str
        temperature_c: float
        conditions: str

    second = client.responses.parse(
        model=MODEL,
        previous_response_id=first.id,
        input=[
            {
                "type": "function_call_output",
                "call_id": call.call_id,
                "output": json.dumps({"city": "Paris", "temperature_c": 18, "conditions": "rain"}),
            }
        ],
        text_format=Weather,
    )
    assert second.output_parsed == Weather(city="Paris", temperature_c=18, conditions="rain")


def test_refusal_through_the_script(client: openai.OpenAI) -> None:
    script = json.dumps([[{"refusal": "I can't help with that."}]])
    parsed = client.responses.parse(
        model=MODEL, input="x", text_format=City, metadata={"sandbox_script": script}
    )
    part = parsed.output[0].content[0]  # type: ignore[union-attr]
    assert part.type == "refusal" and part.refusal == "I can't help with that."
    assert parsed.output_parsed is None
    chat = client.chat.completions.parse(
        model=MODEL,
        messages=[
            {"role": "system", "content": f"sandbox_script: {script}"},
            {"role": "user", "content": "x"},
        ],
        response_format=City,
    )
    assert chat.choices[0].message.refusal == "I can't help with that."
    assert chat.choices[0].message.parsed is None
    events = [
        e.type
        for e in client.responses.create(
            model=MODEL, input="x", metadata={"sandbox_script": script}, stream=True
        )
    ]
    assert "response.refusal.delta" in events and "response.refusal.done" in events


def test_assistants_response_format(client: openai.OpenAI) -> None:
    fmt = {
        "type": "json_schema",
        "json_schema": {"name": "City", "schema": City.model_json_schema(), "strict": False},
    }
    assistant = client.beta.assistants.create(model=MODEL, response_format=fmt)  # type: ignore[arg-type]
    thread = client.beta.threads.create(messages=[{"role": "user", "content": FACTS}])
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=20
    )
    assert run.status == "completed"
    assert run.response_format.type == "json_schema"  # type: ignore[union-attr]
    message = client.beta.threads.messages.list(thread.id).data[0]
    city = City.model_validate_json(message.content[0].text.value)  # type: ignore[union-attr]
    assert city.population == 2100000


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "object", "properties": {"xs": {"type": "array", "minItems": 2, "items": {
            "type": "integer", "minimum": 5}}}, "required": ["xs"]},
        {"type": "object", "properties": {"when": {"type": "string", "format": "date-time"},
            "mail": {"type": "string", "format": "email"}}, "required": ["when", "mail"]},
        {"type": "object", "properties": {"n": {"anyOf": [{"type": "integer"},
            {"type": "null"}]}, "tree": {"$ref": "#/$defs/Node"}}, "required": ["n", "tree"],
            "$defs": {"Node": {"type": "object", "properties": {"kids": {"type": "array",
            "items": {"$ref": "#/$defs/Node"}}}, "required": ["kids"]}}},
    ],
)  # fmt: skip
def test_fill_validates_against_odd_schemas(schema: dict) -> None:  # type: ignore[type-arg]
    value = structured.fill(schema, structured.Material(["Write to a@b.io on 2024-05-01"]))
    jsonschema.validate(value, schema)
