"""Model settings a job carries (temperature, reasoning effort, service tier...), and
what each backend makes of them.

A setting is checked before anything is enqueued (`check`, raising `InvalidJobError`
naming it) and again against each backend a job may use (`unsupported`): a backend
that has no field for a setting refuses the job, with a message saying so, instead of
dropping the setting silently — a job asking for `service_tier="flex"` must not run at
the default tier and bill as such without anyone knowing.

A chain's model link may override settings (`Link.settings`, from the worker's
configuration); `effective` merges the two, the link winning, and the backends build
their requests from that (`responses_fields`, `chat_fields`, `assistants_*_fields`).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Mapping
from typing import Any

from runq.errors import InvalidJobError

SETTINGS: tuple[str, ...] = (
    "temperature",
    "top_p",
    "reasoning",
    "max_output_tokens",
    "service_tier",
    "prompt_cache_key",
    "safety_identifier",
    "truncation",
    "tool_choice",
    "parallel_tool_calls",
    "store",
    "include",
)
REASONING_EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh")
REASONING_SUMMARIES = ("auto", "concise", "detailed")
SERVICE_TIERS = ("auto", "default", "flex", "priority")
TRUNCATIONS = ("auto", "disabled")
TOOL_CHOICES = ("auto", "none", "required")
INCLUDABLE = (
    "reasoning.encrypted_content",
    "file_search_call.results",
    "message.output_text.logprobs",
    "message.input_image.image_url",
    "web_search_call.action.sources",
    "code_interpreter_call.outputs",
    "computer_call_output.output.image_url",
)
MAX_KEY_CHARS = 64  # OpenAI's limit for safety_identifier; prompt_cache_key gets more
MAX_CACHE_KEY_CHARS = 1024


def values_of(obj: Any) -> dict[str, Any]:
    """The settings an object (a `JobSpec`) sets, without the ones left at None."""
    found = {name: getattr(obj, name, None) for name in SETTINGS}
    return {name: value for name, value in found.items() if value is not None}


def effective(spec: Any, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The settings a request carries: the job's, then the link's on top."""
    return {**values_of(spec), **dict(overrides or {})}


# -- checks ------------------------------------------------------------------------------
def _number(name: str, value: Any, low: float, high: float) -> None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or not low <= value <= high:
        raise InvalidJobError(name, f"must be a number from {low:g} to {high:g}, got {value!r}")


def _one_of(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise InvalidJobError(name, f"must be one of {', '.join(allowed)}, got {value!r}")


def _text(name: str, value: Any, limit: int) -> None:
    if not isinstance(value, str) or not value or len(value) > limit:
        raise InvalidJobError(name, f"must be text of 1-{limit} characters")


def _flag(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise InvalidJobError(name, f"must be true or false, got {value!r}")


def _reasoning(value: Any) -> None:
    if not isinstance(value, Mapping) or not value:
        raise InvalidJobError("reasoning", 'must be an object such as {"effort": "low"}')
    unknown = sorted(set(value) - {"effort", "summary"})
    if unknown:
        raise InvalidJobError("reasoning", f"unknown key(s) {', '.join(unknown)} (effort, summary)")
    if "effort" in value:
        _one_of("reasoning.effort", value["effort"], REASONING_EFFORTS)
    if "summary" in value:
        _one_of("reasoning.summary", value["summary"], REASONING_SUMMARIES)


def function_named(choice: Any) -> str | None:
    """The function a `tool_choice` names (`{"type": "function", "name": ...}`), or None."""
    if isinstance(choice, Mapping):
        name = choice.get("name")
        return name if isinstance(name, str) else None
    return None


def _tool_choice(value: Any) -> None:
    if isinstance(value, str):
        _one_of("tool_choice", value, TOOL_CHOICES)
        return
    named = function_named(value)
    if not isinstance(value, Mapping) or value.get("type") != "function" or not named:
        raise InvalidJobError(
            "tool_choice",
            'must be auto, none, required or {"type": "function", "name": "<tool>"}',
        )
    if set(value) - {"type", "name"}:
        raise InvalidJobError("tool_choice", "takes only type and name")


def _include(value: Any) -> None:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidJobError("include", "must be a list of names")
    for item in value:
        _one_of("include", item, INCLUDABLE)


def _whole(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidJobError(name, "must be a whole number, at least 1")


_CHECKS: dict[str, Callable[[str, Any], None]] = {
    "temperature": lambda n, v: _number(n, v, 0, 2),
    "top_p": lambda n, v: _number(n, v, 0, 1),
    "reasoning": lambda n, v: _reasoning(v),
    "max_output_tokens": _whole,
    "service_tier": lambda n, v: _one_of(n, v, SERVICE_TIERS),
    "prompt_cache_key": lambda n, v: _text(n, v, MAX_CACHE_KEY_CHARS),
    "safety_identifier": lambda n, v: _text(n, v, MAX_KEY_CHARS),
    "truncation": lambda n, v: _one_of(n, v, TRUNCATIONS),
    "tool_choice": lambda n, v: _tool_choice(v),
    "parallel_tool_calls": _flag,
    "store": _flag,
    "include": lambda n, v: _include(v),
}


def check(values: Mapping[str, Any]) -> None:
    """Raise `InvalidJobError` naming the first setting that is not a valid value."""
    for name, value in values.items():
        checker = _CHECKS.get(name)
        if checker is None:
            raise InvalidJobError(name, f"is not a model setting ({', '.join(SETTINGS)})")
        if value is not None:
            checker(name, value)


# -- what each backend carries -----------------------------------------------------------
def _lacks(backend: str, name: str, value: Any) -> str | None:
    """Why `backend` cannot carry `name=value`, or None when it can."""
    if backend == "responses":
        if name == "store" and value is False:
            return "background responses must be stored (store=false is refused)"
        return None
    if backend == "chat":
        if name in ("truncation", "include"):
            return "Chat Completions has no such parameter"
        if name == "reasoning" and "summary" in value:
            return "Chat Completions takes a reasoning effort but no summary"
        return None
    if name in ("service_tier", "prompt_cache_key", "safety_identifier", "include"):
        return "Assistants runs have no such parameter"
    if name == "reasoning" and "summary" in value:
        return "Assistants take a reasoning effort but no summary"
    if name == "truncation" and value != "auto":
        return "Assistants runs truncate automatically or by message count, never not at all"
    if name == "store" and value is False:
        return "Assistants threads are always stored"
    return None


def unsupported(backend: str, values: Mapping[str, Any]) -> list[tuple[str, str]]:
    """`(setting, why)` for every setting `backend` cannot carry."""
    found = []
    for name, value in values.items():
        why = _lacks(backend, name, value) if value is not None else None
        if why is not None:
            found.append((name, why))
    return found


def refuse_unsupported(backend: str, values: Mapping[str, Any], where: str = "") -> None:
    """`InvalidJobError` naming the first setting `backend` cannot carry."""
    for name, why in unsupported(backend, values):
        raise InvalidJobError(name, f"the {backend} backend{where} cannot carry it: {why}")


# -- requests ----------------------------------------------------------------------------
def _chat_style_choice(choice: Any) -> Any:
    """Chat and Assistants name a function as `{"type": "function", "function": {"name"}}`."""
    named = function_named(choice)
    return {"type": "function", "function": {"name": named}} if named else choice


def responses_fields(values: Mapping[str, Any]) -> dict[str, Any]:
    """Responses takes every setting under its own name (`store` is always true)."""
    fields = {k: v for k, v in values.items() if k != "store"}
    if "reasoning" in fields:
        fields["reasoning"] = dict(fields["reasoning"])
    return fields


def chat_fields(values: Mapping[str, Any]) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for name, value in values.items():
        if name == "max_output_tokens":
            fields["max_completion_tokens"] = value
        elif name == "reasoning":
            if "effort" in value:
                fields["reasoning_effort"] = value["effort"]
        elif name == "tool_choice":
            fields["tool_choice"] = _chat_style_choice(value)
        elif name in ("truncation", "include"):
            continue  # refused at submit (`unsupported`)
        else:
            fields[name] = value
    return fields


def assistants_run_fields(values: Mapping[str, Any]) -> dict[str, Any]:
    """What an Assistants run accepts; the reasoning effort goes on the assistant."""
    fields: dict[str, Any] = {}
    for name in ("temperature", "top_p", "parallel_tool_calls"):
        if name in values:
            fields[name] = values[name]
    if "max_output_tokens" in values:
        fields["max_completion_tokens"] = values["max_output_tokens"]
    if "tool_choice" in values:
        fields["tool_choice"] = _chat_style_choice(values["tool_choice"])
    if values.get("truncation") == "auto":
        fields["truncation_strategy"] = {"type": "auto"}
    return fields


def assistants_assistant_fields(values: Mapping[str, Any]) -> dict[str, Any]:
    """Settings that belong to the assistant (create-thread-and-run takes no effort)."""
    effort = (values.get("reasoning") or {}).get("effort")
    return {"reasoning_effort": effort} if effort else {}


def tenant_safety_identifier(tenant: str) -> str:
    """A stable identifier for a tenant that does not say its name: OpenAI asks for a
    hashed user or organisation id, so abuse reports reach the right tenant only."""
    return "runq-" + hashlib.sha256(tenant.encode()).hexdigest()[:32]
