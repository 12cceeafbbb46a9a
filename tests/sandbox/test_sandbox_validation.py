"""The sandbox refuses what OpenAI refuses, with OpenAI's status, message, param and code.

Each test cites the error body OpenAI returns for the same request (quoted in its
docstring), so that a client which passes here fails the same way in production.
"""

from __future__ import annotations

from typing import Any

import openai
import pytest

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # Assistants
MODEL = "gpt-4o-mini"
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def error_of(call: Any) -> tuple[int, dict[str, Any]]:
    with pytest.raises(openai.APIStatusError) as info:
        call()
    body = info.value.body
    assert isinstance(body, dict) and set(body) == {"message", "type", "param", "code"}
    return info.value.status_code, body


def test_unknown_model_responses(client: openai.OpenAI) -> None:
    """OpenAI: 400 ``{"message": "The requested model 'gpt-nope' does not exist.",
    "type": "invalid_request_error", "param": "model", "code": "model_not_found"}``."""
    status, body = error_of(lambda: client.responses.create(model="gpt-nope", input="hi"))
    assert status == 400
    assert body == {
        "message": "The requested model 'gpt-nope' does not exist.",
        "type": "invalid_request_error",
        "param": "model",
        "code": "model_not_found",
    }


def test_unknown_model_chat(client: openai.OpenAI) -> None:
    """OpenAI: 404 ``The model `gpt-nope` does not exist or you do not have access to
    it.`` with code ``model_not_found`` (the sandbox also names ``param: model``)."""
    status, body = error_of(
        lambda: client.chat.completions.create(
            model="gpt-nope", messages=[{"role": "user", "content": "hi"}]
        )
    )
    assert status == 404
    assert body["message"] == "The model `gpt-nope` does not exist or you do not have access to it."
    assert (body["param"], body["code"]) == ("model", "model_not_found")


def test_dated_snapshots_and_public_models_are_served(client: openai.OpenAI) -> None:
    for name in ("gpt-4o-2024-08-06", "o4-mini", "gpt-4.1"):
        assert client.responses.create(model=name, input="hi").status == "completed"


@pytest.mark.parametrize(
    ("field", "value", "message", "code"),
    [
        (
            "temperature",
            7,
            "Invalid 'temperature': decimal above maximum value. Expected a value <= 2, but "
            "got 7 instead.",
            "decimal_above_max_value",
        ),
        (
            "top_p",
            -0.5,
            "Invalid 'top_p': decimal below minimum value. Expected a value >= 0, but got "
            "-0.5 instead.",
            "decimal_below_min_value",
        ),
        (
            "max_output_tokens",
            5,
            "Invalid 'max_output_tokens': integer below minimum value. Expected a value >= "
            "16, but got 5 instead.",
            "integer_below_min_value",
        ),
    ],
)
def test_out_of_range_responses(
    client: openai.OpenAI, field: str, value: Any, message: str, code: str
) -> None:
    """OpenAI: 400 ``Invalid 'temperature': decimal above maximum value. Expected a value
    <= 2, but got 7 instead.`` (``param`` the field, ``code`` the typed reason)."""
    status, body = error_of(
        lambda: client.responses.create(model=MODEL, input="hi", **{field: value})
    )
    assert status == 400
    assert body == {
        "message": message,
        "type": "invalid_request_error",
        "param": field,
        "code": code,
    }


def test_out_of_range_chat(client: openai.OpenAI) -> None:
    """The same typed messages on Chat: ``Invalid 'n': integer above maximum value.
    Expected a value <= 128, but got 200 instead.``"""
    messages = [{"role": "user", "content": "hi"}]
    status, body = error_of(
        lambda: client.chat.completions.create(model=MODEL, messages=messages, temperature=7)
    )
    assert (status, body["param"], body["code"]) == (400, "temperature", "decimal_above_max_value")
    status, body = error_of(
        lambda: client.chat.completions.create(model=MODEL, messages=messages, n=200)
    )
    assert body["message"] == (
        "Invalid 'n': integer above maximum value. Expected a value <= 128, but got 200 instead."
    )
    assert (status, body["param"], body["code"]) == (400, "n", "integer_above_max_value")


def test_unknown_body_parameter(client: openai.OpenAI) -> None:
    """OpenAI: 400 ``{"message": "Unknown parameter: 'colour'.", "type":
    "invalid_request_error", "param": "colour", "code": "unknown_parameter"}``."""
    expected = {
        "message": "Unknown parameter: 'colour'.",
        "type": "invalid_request_error",
        "param": "colour",
        "code": "unknown_parameter",
    }
    extra = {"colour": "blue"}
    assert error_of(lambda: client.responses.create(model=MODEL, input="hi", extra_body=extra)) == (
        400,
        expected,
    )
    assert error_of(
        lambda: client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "hi"}], extra_body=extra
        )
    ) == (400, expected)
    assert error_of(lambda: client.beta.assistants.create(model=MODEL, extra_body=extra)) == (
        400,
        expected,
    )


def test_orphan_function_call_output(client: openai.OpenAI) -> None:
    """OpenAI: 400 ``No tool call found for function call output with call_id
    call_123.`` with ``param: input``."""
    status, body = error_of(
        lambda: client.responses.create(
            model=MODEL,
            input=[{"type": "function_call_output", "call_id": "call_123", "output": "x"}],
        )
    )
    assert status == 400
    assert body["message"] == "No tool call found for function call output with call_id call_123."
    assert body["param"] == "input"


def test_unanswered_function_call_responses(client: openai.OpenAI) -> None:
    """OpenAI: 400 ``No tool output found for function call call_...`` when a turn after
    a function call does not answer it."""
    tool = {**WEATHER["function"], "type": "function"}
    first = client.responses.create(model=MODEL, input="weather in Paris", tools=[tool])  # type: ignore[list-item]
    call = next(i for i in first.output if i.type == "function_call")
    status, body = error_of(
        lambda: client.responses.create(
            model=MODEL, previous_response_id=first.id, input="and in Rome?"
        )
    )
    assert status == 400
    assert body["message"] == f"No tool output found for function call {call.call_id}."
    assert body["param"] == "input"


def test_orphan_tool_message(client: openai.OpenAI) -> None:
    """OpenAI: 400 ``Invalid parameter: messages with role 'tool' must be a response to a
    preceeding message with 'tool_calls'.`` with ``param: messages.[1].role``."""
    status, body = error_of(
        lambda: client.chat.completions.create(
            model=MODEL,
            messages=[
                {"role": "user", "content": "hi"},
                {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
            ],
        )
    )
    assert status == 400
    assert body["message"] == (
        "Invalid parameter: messages with role 'tool' must be a response to a preceeding "
        "message with 'tool_calls'."
    )
    assert body["param"] == "messages.[1].role"


def test_unanswered_tool_call_chat(client: openai.OpenAI) -> None:
    """OpenAI: 400 ``An assistant message with 'tool_calls' must be followed by tool
    messages responding to each 'tool_call_id'. The following tool_call_ids did not have
    response messages: call_1``."""
    call = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    status, body = error_of(
        lambda: client.chat.completions.create(
            model=MODEL,
            messages=[
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": None, "tool_calls": [call]},
                {"role": "user", "content": "well?"},
            ],
        )
    )
    assert status == 400
    assert body["message"].endswith(
        "The following tool_call_ids did not have response messages: call_1"
    )
    assert body["param"] == "messages.[1].role"


def test_reasoning_parameters_follow_the_model(client: openai.OpenAI) -> None:
    """OpenAI: 400 ``Unsupported parameter: 'temperature' is not supported with this
    model.`` (code ``unsupported_parameter``) on a reasoning model, and the same for
    ``reasoning.effort`` on a model that does not reason."""
    status, body = error_of(
        lambda: client.responses.create(model="gpt-5-mini", input="hi", temperature=0.2)
    )
    assert (status, body["param"], body["code"]) == (400, "temperature", "unsupported_parameter")
    assert body["message"] == (
        "Unsupported parameter: 'temperature' is not supported with this model."
    )
    status, body = error_of(
        lambda: client.responses.create(model=MODEL, input="hi", reasoning={"effort": "low"})
    )
    assert (status, body["param"]) == (400, "reasoning.effort")


def test_json_object_needs_the_word_json(client: openai.OpenAI) -> None:
    """OpenAI: 400 ``'messages' must contain the word 'json' in some form, to use
    'response_format' of type 'json_object'.`` with ``param: messages``."""
    status, body = error_of(
        lambda: client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "hi"}],
            response_format={"type": "json_object"},
        )
    )
    assert status == 400 and body["param"] == "messages"
    assert body["message"].startswith("'messages' must contain the word 'json'")


def test_strict_schema_must_be_closed(client: openai.OpenAI) -> None:
    """OpenAI: 400 ``Invalid schema for response_format 'Person': In context=(),
    'additionalProperties' is required to be supplied and to be false.`` (code
    ``invalid_json_schema``) for a strict schema that leaves an object open."""
    fmt = {
        "type": "json_schema",
        "name": "Person",
        "strict": True,
        "schema": {"type": "object", "properties": {"name": {"type": "string"}}},
    }
    status, body = error_of(
        lambda: client.responses.create(model=MODEL, input="hi", text={"format": fmt})  # type: ignore[typeddict-item]
    )
    assert status == 400
    assert body["message"] == (
        "Invalid schema for response_format 'Person': In context=(), 'additionalProperties' "
        "is required to be supplied and to be false."
    )
    assert (body["param"], body["code"]) == ("text.format.schema", "invalid_json_schema")


def test_unknown_include_value(client: openai.OpenAI) -> None:
    """OpenAI: 400 ``Invalid value: 'code_interpreter_call.bogus'. Supported values are:
    'file_search_call.results', ... and 'message.output_text.logprobs'.`` with
    ``param: include[1]`` and code ``invalid_value``."""
    status, body = error_of(
        lambda: client.responses.create(
            model=MODEL,
            input="hi",
            include=["code_interpreter_call.outputs", "code_interpreter_call.bogus"],  # type: ignore[list-item]
        )
    )
    assert status == 400
    assert body["message"] == (
        "Invalid value: 'code_interpreter_call.bogus'. Supported values are: "
        "'file_search_call.results', 'web_search_call.results', "
        "'web_search_call.action.sources', 'message.input_image.image_url', "
        "'computer_call_output.output.image_url', 'code_interpreter_call.outputs', "
        "'reasoning.encrypted_content', and 'message.output_text.logprobs'."
    )
    assert (body["type"], body["param"], body["code"]) == (
        "invalid_request_error",
        "include[1]",
        "invalid_value",
    )
    every = client.responses.create(
        model=MODEL,
        input="hi",
        include=[  # every includable value of the spec is accepted
            "file_search_call.results",
            "web_search_call.results",
            "web_search_call.action.sources",
            "message.input_image.image_url",
            "computer_call_output.output.image_url",
            "code_interpreter_call.outputs",
            "reasoning.encrypted_content",
            "message.output_text.logprobs",
        ],
    )
    assert every.status == "completed"


@pytest.mark.parametrize(
    ("item", "missing"),
    [
        (
            {"type": "code_interpreter_call", "id": "ci_1", "status": "completed",
             "code": "print(1)", "outputs": None},
            "container_id",
        ),
        ({"type": "function_call", "call_id": "call_1", "arguments": "{}"}, "name"),
        ({"type": "function_call_output", "call_id": "call_1"}, "output"),
        ({"type": "reasoning", "id": "rs_1"}, "summary"),
        ({"type": "web_search_call", "id": "ws_1", "status": "completed"}, "action"),
        ({"type": "mcp_approval_response", "approve": True}, "approval_request_id"),
        ({"type": "item_reference"}, "id"),
        ({"role": "user"}, "content"),
    ],
)  # fmt: skip
def test_input_item_missing_required_field(
    client: openai.OpenAI, item: dict[str, Any], missing: str
) -> None:
    """OpenAI: 400 ``Missing required parameter: 'input[2].container_id'.`` with that
    ``param`` and code ``missing_required_parameter``, before any tool runs."""
    history = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    status, body = error_of(
        lambda: client.responses.create(model=MODEL, input=[*history, item])  # type: ignore[list-item]
    )
    assert status == 400
    assert body == {
        "message": f"Missing required parameter: 'input[2].{missing}'.",
        "type": "invalid_request_error",
        "param": f"input[2].{missing}",
        "code": "missing_required_parameter",
    }
