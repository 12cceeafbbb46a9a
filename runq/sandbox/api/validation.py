"""Request checks the way OpenAI makes them: the same 400s/404s, messages and ``param``.

A client that works against the sandbox should work against OpenAI, so the sandbox
refuses what OpenAI refuses: a body parameter the operation does not have, a number out
of its range, a model it does not serve, a parameter the model does not support, and a
transcript whose tool calls and outputs do not pair up. The wording is OpenAI's
(``Unknown parameter: 'foo'.``, ``Invalid 'temperature': decimal above maximum value.
...``); each check has a test citing it (tests/sandbox/test_sandbox_validation.py).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from runq.sandbox.engine.errors import SandboxError, bad_request
from runq.sandbox.engine.reasoning import is_reasoning_model
from runq.sandbox.engine.transcript import Turn

# Body parameters of each operation, from OpenAI's OpenAPI description.
RESPONSES_PARAMS = frozenset(
    [
        "background", "context_management", "conversation", "include", "input", "instructions",
        "max_output_tokens", "max_tool_calls", "metadata", "model", "moderation",
        "parallel_tool_calls", "previous_response_id", "prompt", "prompt_cache_key",
        "prompt_cache_options", "prompt_cache_retention", "reasoning", "safety_identifier",
        "service_tier", "store", "stream", "stream_options", "temperature", "text",
        "tool_choice", "tools", "top_logprobs", "top_p", "truncation", "user",
    ]
)  # fmt: skip
CHAT_PARAMS = frozenset(
    [
        "audio", "frequency_penalty", "function_call", "functions", "logit_bias", "logprobs",
        "max_completion_tokens", "max_tokens", "messages", "metadata", "modalities", "model",
        "moderation", "n", "parallel_tool_calls", "prediction", "presence_penalty",
        "prompt_cache_key", "prompt_cache_options", "prompt_cache_retention",
        "reasoning_effort", "response_format", "safety_identifier", "seed", "service_tier",
        "stop", "store", "stream", "stream_options", "temperature", "tool_choice", "tools",
        "top_logprobs", "top_p", "user", "verbosity", "web_search_options",
    ]
)  # fmt: skip
ASSISTANT_PARAMS = frozenset(
    [
        "description", "instructions", "metadata", "model", "name", "reasoning_effort",
        "response_format", "temperature", "tool_resources", "tools", "top_p",
    ]
)  # fmt: skip
RUN_PARAMS = frozenset(
    [
        "additional_instructions", "additional_messages", "assistant_id", "instructions",
        "max_completion_tokens", "max_prompt_tokens", "metadata", "model",
        "parallel_tool_calls", "reasoning_effort", "response_format", "stream", "temperature",
        "tool_choice", "tools", "top_p", "truncation_strategy",
    ]
)  # fmt: skip
THREAD_AND_RUN_PARAMS = frozenset(
    [
        "assistant_id", "instructions", "max_completion_tokens", "max_prompt_tokens",
        "metadata", "model", "parallel_tool_calls", "response_format", "stream", "temperature",
        "thread", "tool_choice", "tool_resources", "tools", "top_p", "truncation_strategy",
    ]
)  # fmt: skip
INPUT_TOKENS_PARAMS = frozenset(
    [
        "conversation", "input", "instructions", "model", "parallel_tool_calls", "personality",
        "previous_response_id", "reasoning", "text", "tool_choice", "tools", "truncation",
    ]
)  # fmt: skip
COMPACT_PARAMS = frozenset(
    [
        "input", "instructions", "model", "previous_response_id", "prompt_cache_key",
        "prompt_cache_options", "prompt_cache_retention", "service_tier",
    ]
)  # fmt: skip
# The spec's ``IncludeEnum``: what a Responses ``include`` may ask for.
INCLUDABLE = (
    "file_search_call.results", "web_search_call.results", "web_search_call.action.sources",
    "message.input_image.image_url", "computer_call_output.output.image_url",
    "code_interpreter_call.outputs", "reasoning.encrypted_content",
    "message.output_text.logprobs",
)  # fmt: skip
REASONING_EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh")
_DATED = re.compile(r"^(?P<base>.+?)-\d{4}-\d{2}-\d{2}$")


def known_parameters(body: dict[str, Any], allowed: Iterable[str]) -> None:
    """``Unknown parameter: 'foo'.`` for the first body key the operation lacks."""
    names = set(allowed)
    for key in body:
        if key not in names:
            raise bad_request(f"Unknown parameter: '{key}'.", key, "unknown_parameter")


def _got(value: Any) -> str:
    return json.dumps(value)


def number_in(body: dict[str, Any], name: str, low: float, high: float | None) -> None:
    """A decimal parameter within ``[low, high]``, with OpenAI's typed messages."""
    value = body.get(name)
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise bad_request(
            f"Invalid type for '{name}': expected a decimal, but got {_kind(value)} instead.",
            name,
            "invalid_type",
        )
    if value < low:
        raise bad_request(
            f"Invalid '{name}': decimal below minimum value. Expected a value >= {low:g}, "
            f"but got {_got(value)} instead.",
            name,
            "decimal_below_min_value",
        )
    if high is not None and value > high:
        raise bad_request(
            f"Invalid '{name}': decimal above maximum value. Expected a value <= {high:g}, "
            f"but got {_got(value)} instead.",
            name,
            "decimal_above_max_value",
        )


def integer_in(body: dict[str, Any], name: str, low: int, high: int | None = None) -> None:
    """An integer parameter within ``[low, high]``, with OpenAI's typed messages."""
    value = body.get(name)
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise bad_request(
            f"Invalid type for '{name}': expected an integer, but got {_kind(value)} instead.",
            name,
            "invalid_type",
        )
    if value < low:
        raise bad_request(
            f"Invalid '{name}': integer below minimum value. Expected a value >= {low}, "
            f"but got {value} instead.",
            name,
            "integer_below_min_value",
        )
    if high is not None and value > high:
        raise bad_request(
            f"Invalid '{name}': integer above maximum value. Expected a value <= {high}, "
            f"but got {value} instead.",
            name,
            "integer_above_max_value",
        )


def one_of(value: Any, name: str, options: Iterable[str]) -> None:
    """An enum parameter, refused as ``Invalid value: 'x'. Supported values are: ...``."""
    choices = list(options)
    if value is None or value in choices:
        return
    quoted = [f"'{c}'" for c in choices]
    if len(quoted) <= 2:
        listed = " and ".join(quoted)
    else:
        listed = ", ".join(quoted[:-1]) + f", and {quoted[-1]}"
    raise bad_request(
        f"Invalid value: '{value}'. Supported values are: {listed}.", name, "invalid_value"
    )


def includes(body: dict[str, Any]) -> None:
    """``include``: an array of the spec's includable values, each refused by index."""
    values = body.get("include")
    if values is None:
        return
    if not isinstance(values, list):
        raise bad_request(
            "Invalid type for 'include': expected an array of strings, but got "
            f"{_kind(values)} instead.",
            "include",
            "invalid_type",
        )
    for i, value in enumerate(values):
        one_of(value, f"include[{i}]", INCLUDABLE)


def _kind(value: Any) -> str:
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return "a number"


# OpenAI's public text models: accepted besides the configured ones (``/v1/models``
# lists only those), so a client's default model works against the sandbox.
OPENAI_MODELS = frozenset(
    [
        "gpt-3.5-turbo", "gpt-4", "gpt-4-turbo", "gpt-4o", "gpt-4o-mini", "chatgpt-4o-latest",
        "gpt-4.1", "gpt-4.1-mini", "gpt-4.1-nano", "gpt-4.5-preview",
        "gpt-5", "gpt-5-mini", "gpt-5-nano", "gpt-5-chat-latest", "gpt-5-codex", "gpt-5-pro",
        "gpt-5.1", "gpt-5.1-mini", "gpt-5.1-codex", "gpt-5.2", "gpt-5.2-pro",
        "o1", "o1-mini", "o1-pro", "o3", "o3-mini", "o3-pro", "o4-mini",
        "codex-mini-latest", "computer-use-preview",
    ]
)  # fmt: skip


def served_model(models: list[str], name: str) -> bool:
    """A configured or public OpenAI model name, or a dated snapshot of one
    (``gpt-4o-2024-08-06``)."""
    known = OPENAI_MODELS.union(models)
    if name in known:
        return True
    dated = _DATED.match(name)
    return bool(dated and dated.group("base") in known)


def responses_model(models: list[str], name: Any) -> str:
    """The Responses API's check: 400 ``The requested model 'x' does not exist.``"""
    if not isinstance(name, str) or not name:
        raise bad_request("Missing required parameter: 'model'.", "model")
    if not served_model(models, name):
        raise bad_request(
            f"The requested model '{name}' does not exist.", "model", "model_not_found"
        )
    return name


def chat_model(models: list[str], name: Any) -> str:
    """Chat Completions and Assistants answer an unknown model with a 404."""
    if not isinstance(name, str) or not name:
        raise bad_request("Missing required parameter: 'model'.", "model")
    if not served_model(models, name):
        raise SandboxError(
            404,
            f"The model `{name}` does not exist or you do not have access to it.",
            param="model",
            code="model_not_found",
        )
    return name


def unsupported(name: str, model: str, hint: str = "") -> SandboxError:
    """``Unsupported parameter: 'x' is not supported with this model.``"""
    return bad_request(
        f"Unsupported parameter: '{name}' is not supported with this model.{hint}",
        name,
        "unsupported_parameter",
    )


def sampling_for_model(body: dict[str, Any], model: str, reasoning_param: str) -> None:
    """Reasoning models take no sampling knobs; other models take no reasoning effort."""
    if is_reasoning_model(model):
        for knob in ("temperature", "top_p"):
            if body.get(knob) is not None and body[knob] != 1:
                raise unsupported(knob, model)
        return
    effort = body.get("reasoning") if reasoning_param == "reasoning" else None
    if reasoning_param == "reasoning" and isinstance(effort, dict) and effort.get("effort"):
        raise unsupported("reasoning.effort", model)
    if reasoning_param == "reasoning_effort" and body.get("reasoning_effort") is not None:
        raise unsupported("reasoning_effort", model)


def tool_pairs_responses(turns: list[Turn]) -> None:
    """Every function call answered, no output without its call (Responses wording).

    ``turns`` is the whole transcript: the history (``previous_response_id`` or the
    conversation) and the request's input.
    """
    calls: list[str] = []
    answered: set[str] = set()
    for turn in turns:
        if turn.kind == "function_call" and turn.call_id:
            calls.append(turn.call_id)
        elif turn.kind == "function_call_output":
            if turn.call_id not in calls:
                raise bad_request(
                    f"No tool call found for function call output with call_id {turn.call_id}.",
                    "input",
                )
            answered.add(turn.call_id or "")
    for call_id in calls:
        if call_id not in answered:
            raise bad_request(f"No tool output found for function call {call_id}.", "input")


def tool_pairs_chat(messages: list[Any]) -> None:
    """OpenAI's Chat rules: ``role: tool`` answers a preceding ``tool_calls`` message, and
    every ``tool_call_id`` of such a message is answered before the next other message."""
    pending: dict[str, int] = {}
    for i, msg in enumerate(messages):
        role = msg.get("role") if isinstance(msg, dict) else None
        if role == "tool":
            if msg.get("tool_call_id") not in pending:
                raise bad_request(
                    "Invalid parameter: messages with role 'tool' must be a response to a "
                    "preceeding message with 'tool_calls'.",
                    f"messages.[{i}].role",
                )
            pending.pop(msg["tool_call_id"])
            continue
        if pending:
            at = min(pending.values())
            raise bad_request(
                "An assistant message with 'tool_calls' must be followed by tool messages "
                "responding to each 'tool_call_id'. The following tool_call_ids did not have "
                f"response messages: {', '.join(pending)}",
                f"messages.[{at}].role",
            )
        if role == "assistant":
            for call in msg.get("tool_calls") or []:
                if isinstance(call, dict) and call.get("id"):
                    pending[call["id"]] = i
    if pending:
        raise bad_request(
            "An assistant message with 'tool_calls' must be followed by tool messages "
            "responding to each 'tool_call_id'. The following tool_call_ids did not have "
            f"response messages: {', '.join(pending)}",
            f"messages.[{min(pending.values())}].role",
        )
