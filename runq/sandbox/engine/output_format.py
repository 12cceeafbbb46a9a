"""The answer format a request asks for, checked the way OpenAI checks it.

Three protocols spell it differently: Chat Completions and Assistants
``response_format`` (``{"type": "json_schema", "json_schema": {"name", "schema",
"strict"}}``), Responses ``text.format`` (``{"type": "json_schema", "name",
"schema", "strict"}``). :class:`OutputFormat` is the one shape the model sees; each
protocol echoes the request's own spelling back.

OpenAI refuses a strict schema that its constrained decoding cannot follow (every
object needs ``additionalProperties: false`` and every property ``required``), and a
``json_object`` request whose messages never say "JSON". The sandbox refuses the same
requests with the same 400s, so that a client bug shows up here, not in production.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from runq.sandbox.engine.errors import SandboxError, bad_request

_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


@dataclass(frozen=True)
class OutputFormat:
    kind: str  # text | json_object | json_schema
    name: str = ""
    schema: dict[str, Any] | None = None
    strict: bool = False

    @property
    def is_json(self) -> bool:
        return self.kind != "text"


TEXT = OutputFormat("text")


def _invalid_schema(name: str, context: str, problem: str, param: str) -> SandboxError:
    """Worded like OpenAI: ``Invalid schema for response_format 'X': In context=(...), ...``."""
    return bad_request(
        f"Invalid schema for response_format '{name}': In context={context}, {problem}",
        param,
        "invalid_json_schema",
    )


def check_strict_schema(name: str, schema: Any, param: str) -> None:
    """OpenAI's rules for ``strict: true``: a root object, closed objects, all required."""
    if not isinstance(schema, dict):
        raise bad_request(f"Invalid type for '{param}': expected an object.", param)
    if schema.get("type") != "object" or "anyOf" in schema:
        raise _invalid_schema(
            name, "()", "schema must be a JSON Schema of 'type: \"object\"', got "
            f"'type: \"{schema.get('type')}\"'.", param,
        )  # fmt: skip
    _walk_strict(name, schema, (), param)


def _walk_strict(name: str, node: Any, context: tuple[str, ...], param: str) -> None:
    if isinstance(node, list):
        for item in node:
            _walk_strict(name, item, context, param)
        return
    if not isinstance(node, dict):
        return
    if node.get("type") == "object" or "properties" in node:
        _check_closed_object(name, node, context, param)
    for key in ("properties", "$defs", "definitions"):
        for sub_name, sub in (node.get(key) or {}).items():
            _walk_strict(name, sub, (*context, key, sub_name), param)
    for key in ("items", "anyOf", "allOf"):
        if key in node:
            _walk_strict(name, node[key], (*context, key), param)


def _check_closed_object(
    name: str, node: dict[str, Any], context: tuple[str, ...], param: str
) -> None:
    ctx = "(" + ", ".join(repr(c) for c in context) + ("," if len(context) == 1 else "") + ")"
    if node.get("additionalProperties") is not False:
        raise _invalid_schema(
            name, ctx, "'additionalProperties' is required to be supplied and to be false.",
            param,
        )  # fmt: skip
    missing = [p for p in node.get("properties") or {} if p not in (node.get("required") or [])]
    if missing:
        raise _invalid_schema(
            name, ctx,
            "'required' is required to be supplied and to be an array including every key in "
            f"properties. Missing '{missing[0]}'.",
            param,
        )  # fmt: skip


def _json_schema(spec: Any, param: str) -> OutputFormat:
    if not isinstance(spec, dict):
        raise bad_request(f"Missing required parameter: '{param}'.", param)
    name = spec.get("name")
    if not isinstance(name, str):
        raise bad_request(f"Missing required parameter: '{param}.name'.", f"{param}.name")
    if not _NAME.match(name):
        raise bad_request(
            f"Invalid '{param}.name': string does not match pattern. Expected a string that "
            "matches the pattern '^[a-zA-Z0-9_-]+$'.",
            f"{param}.name",
            "invalid_value",
        )
    schema = spec.get("schema")
    strict = spec.get("strict") is True
    schema_param = f"{param}.schema"
    if strict:
        check_strict_schema(name, schema, schema_param)
    elif schema is not None and not isinstance(schema, dict):
        raise bad_request(f"Invalid type for '{schema_param}': expected an object.", schema_param)
    return OutputFormat("json_schema", name, schema or {"type": "object"}, strict)


def from_response_format(value: Any, param: str = "response_format") -> OutputFormat:
    """Chat Completions / Assistants ``response_format`` (``"auto"`` is text)."""
    if value is None or value == "auto":
        return TEXT
    if not isinstance(value, dict):
        raise bad_request(f"Invalid type for '{param}': expected an object.", param)
    kind = value.get("type")
    if kind == "text":
        return TEXT
    if kind == "json_object":
        return OutputFormat("json_object")
    if kind == "json_schema":
        return _json_schema(value.get("json_schema"), f"{param}.json_schema")
    raise bad_request(
        f"Invalid value: '{kind}'. Supported values are: 'text', 'json_object', and 'json_schema'.",
        f"{param}.type",
        "invalid_value",
    )


def from_text_param(text: Any) -> OutputFormat:
    """Responses ``text`` (``{"format": {...}, "verbosity": ...}``)."""
    if text is None:
        return TEXT
    if not isinstance(text, dict):
        raise bad_request("Invalid type for 'text': expected an object.", "text")
    fmt = text.get("format")
    if fmt is None:
        return TEXT
    if not isinstance(fmt, dict):
        raise bad_request("Invalid type for 'text.format': expected an object.", "text.format")
    kind = fmt.get("type")
    if kind == "text":
        return TEXT
    if kind == "json_object":
        return OutputFormat("json_object")
    if kind == "json_schema":
        return _json_schema(fmt, "text.format")
    raise bad_request(
        f"Invalid value: '{kind}'. Supported values are: 'text', 'json_object', and 'json_schema'.",
        "text.format.type",
        "invalid_value",
    )


def require_json_word(fmt: OutputFormat, texts: list[str], message: str, param: str) -> None:
    """``json_object`` needs the word JSON somewhere in the messages, as OpenAI insists."""
    if fmt.kind == "json_object" and not any("json" in (t or "").lower() for t in texts):
        raise bad_request(message, param)


def schema_in_text(texts: list[str]) -> dict[str, Any] | None:
    """The first JSON schema written into an instruction (prompted JSON output)."""
    decoder = json.JSONDecoder()
    for text in texts:
        for match in re.finditer(r"\{", text or ""):
            try:
                value, _ = decoder.raw_decode(text[match.start() :])
            except ValueError:
                continue
            if isinstance(value, dict) and ("properties" in value or "$defs" in value):
                return value
    return None
