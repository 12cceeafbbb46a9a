"""Structured outputs: a job's output schema, the request field each backend takes for
it, and the check of what came back.

The worker, not the producer, checks the answer (`parse`): a result's `output_parsed`
is always valid against the schema, and an answer that is not JSON, breaks the schema
or is a refusal becomes an outcome with its own code (`output_invalid_json`,
`output_schema_mismatch`, `output_refused`). Those are retried (`RUNQ_OUTPUT_RETRIES`)
and then walk the fallback chain like any other failure (`runs.endings`).

Strictness: OpenAI's constrained decoding (`strict: true`) needs closed objects whose
properties are all required. `request_schema` closes a schema that already requires
every property (what a pydantic model without defaults gives), so such a job is strict
by default; one with optional fields is sent non-strict, and the worker's check is
what holds it to the schema.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

from runq.errors import BackendError, InvalidJobError
from runq.runs.error_codes import ErrorCode

NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
DEFAULT_NAME = "output"


def check_spec(schema: Any, name: Any, strict: Any) -> None:
    """Raise `InvalidJobError` for a schema that is not one, a bad name, or `strict=True`
    asked of a schema that strict mode cannot take."""
    if schema is None:
        if name is not None or strict is not None:
            raise InvalidJobError("output_schema", "output_name and output_strict need a schema")
        return
    if not isinstance(schema, dict) or not schema:
        raise InvalidJobError("output_schema", "must be a JSON schema (an object)")
    import jsonschema  # here: 40 ms of imports that a command reading a record never needs

    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as err:
        problem = f"is not a valid JSON schema: {err.message}"
        raise InvalidJobError("output_schema", problem) from None
    if name is not None and (not isinstance(name, str) or not NAME.fullmatch(name)):
        raise InvalidJobError("output_name", "takes 1-64 characters of A-Z, a-z, 0-9, _ and -")
    if strict is not None and not isinstance(strict, bool):
        raise InvalidJobError("output_strict", f"must be true or false, got {strict!r}")
    if strict and closed(schema) is None:
        raise InvalidJobError(
            "output_strict",
            "strict mode needs a root object whose objects list every property in "
            "`required` and allow no additional properties",
        )


def closed(schema: dict[str, Any]) -> dict[str, Any] | None:
    """The schema with `additionalProperties: false` on every object, or None when strict
    mode cannot take it (a root that is not an object, an optional property, objects
    open to extra properties)."""
    if schema.get("type") != "object" or "anyOf" in schema:
        return None
    result = copy.deepcopy(schema)
    return result if _close(result) else None


def _close(node: Any) -> bool:
    if isinstance(node, list):
        return all(_close(item) for item in node)
    if not isinstance(node, dict):
        return True
    if node.get("type") == "object" or "properties" in node:
        props = node.get("properties") or {}
        if any(p not in (node.get("required") or []) for p in props):
            return False
        if node.get("additionalProperties", False) is not False:
            return False
        node["additionalProperties"] = False
    for key in ("properties", "$defs", "definitions"):
        if not all(_close(sub) for sub in (node.get(key) or {}).values()):
            return False
    return all(_close(node[key]) for key in ("items", "anyOf", "allOf") if key in node)


def request_schema(spec: Any) -> tuple[dict[str, Any], bool]:
    """The schema a request carries and whether it is strict (see the module docstring)."""
    schema: dict[str, Any] = spec.output_schema
    if spec.output_strict is False:
        return schema, False
    strict = closed(schema)
    return (strict, True) if strict is not None else (schema, False)


def _name(spec: Any) -> str:
    return spec.output_name or DEFAULT_NAME


def responses_format(spec: Any) -> dict[str, Any]:
    """Responses `text.format`."""
    schema, strict = request_schema(spec)
    return {"type": "json_schema", "name": _name(spec), "schema": schema, "strict": strict}


def response_format(spec: Any) -> dict[str, Any]:
    """Chat Completions' and Assistants' `response_format`."""
    schema, strict = request_schema(spec)
    return {
        "type": "json_schema",
        "json_schema": {"name": _name(spec), "schema": schema, "strict": strict},
    }


def parse(spec: Any, text: str | None, refusal: str | None = None) -> Any:
    """The answer as a value valid against the job's schema, or a `BackendError` with
    the outcome's code (retryable: another try may well answer properly)."""
    if refusal:
        raise BackendError(f"the model refused: {refusal}", code=ErrorCode.OUTPUT_REFUSED,
                           retryable=True)  # fmt: skip
    try:
        value = json.loads(text or "")
    except json.JSONDecodeError as err:
        raise BackendError(
            f"the answer is not JSON ({err.msg} at {err.pos})",
            code=ErrorCode.OUTPUT_INVALID_JSON,
            retryable=True,
        ) from None
    import jsonschema

    schema, _ = request_schema(spec)
    errors = jsonschema.Draft202012Validator(schema).iter_errors(value)
    problem = jsonschema.exceptions.best_match(errors)
    if problem is not None:
        where = "/".join(str(p) for p in problem.absolute_path) or "(root)"
        raise BackendError(
            f"the answer breaks the schema at {where}: {problem.message}",
            code=ErrorCode.OUTPUT_SCHEMA_MISMATCH,
            retryable=True,
        )
    return value
