"""Turn a model's raw `arguments` string into checked keyword arguments, or say why not.

Models get arguments wrong in three ways: text that is not JSON, JSON that is not an
object, and an object that breaks the schema. Each becomes a `ToolError` whose message
is written for the model as much as for the operator (it is sent back as the call's
output, see `error_output`), so it names the field path and the rule, lists every
problem at once (the model fixes them all in one retry), and puts the most relevant
problem first (jsonschema's `best_match` ordering).
"""

from __future__ import annotations

import json
from typing import Any

from jsonschema.exceptions import ValidationError, best_match

from runq.errors import ToolError
from runq.runs.error_codes import ToolErrorCode
from runq.runs.tools.spec import ToolSpec

_MAX_PROBLEMS = 10
_MAX_PROBLEM_CHARS = 300


def parse_arguments(spec: ToolSpec, raw: str | dict[str, Any] | None) -> dict[str, Any]:
    """Decode (when `raw` is a string) and validate arguments for `spec`.

    An empty string or `None` means "no arguments" (some servers send that instead of
    "{}" for a parameterless function). JSON's non-standard `NaN`/`Infinity` are refused.
    """
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        arguments: Any = {}
    elif isinstance(raw, str | bytes | bytearray):
        arguments = _decode(spec.name, raw)
    else:
        arguments = raw
    if not isinstance(arguments, dict):
        raise ToolError(
            f"arguments for tool {spec.name!r} must be a JSON object, got {_json_type(arguments)}",
            code=ToolErrorCode.INVALID_ARGUMENTS,
        )
    validate_arguments(spec, arguments)
    return arguments


def validate_arguments(spec: ToolSpec, arguments: dict[str, Any]) -> None:
    """Raise `ToolError(code="invalid_arguments")` listing every schema violation.

    The most relevant problem (jsonschema's `best_match`) comes first, the others follow
    shallowest first and in the order of the arguments.
    """
    errors = list(spec.validator.iter_errors(arguments))
    if not errors:
        return
    best = best_match(errors)
    rest = sorted((e for e in errors if e is not best), key=_position)
    problems = [_describe(error) for error in (best, *rest)]
    if len(problems) > _MAX_PROBLEMS:
        problems = [*problems[:_MAX_PROBLEMS], f"... and {len(problems) - _MAX_PROBLEMS} more"]
    raise ToolError(
        f"invalid arguments for tool {spec.name!r}: " + "; ".join(problems),
        code=ToolErrorCode.INVALID_ARGUMENTS,
    )


def _position(error: ValidationError) -> tuple[int, list[tuple[bool, Any]]]:
    path = list(error.absolute_path)
    return len(path), [(isinstance(part, str), part) for part in path]


def _decode(name: str, raw: str | bytes | bytearray) -> Any:
    def refuse_constant(token: str) -> Any:
        raise ValueError(f"{token} is not valid JSON")

    try:
        return json.loads(raw, parse_constant=refuse_constant)
    except json.JSONDecodeError as exc:
        raise ToolError(
            f"arguments for tool {name!r} are not valid JSON: {exc.msg} at line {exc.lineno} "
            f"column {exc.colno} (char {exc.pos})",
            code=ToolErrorCode.INVALID_JSON,
        ) from None
    except (ValueError, RecursionError) as exc:
        raise ToolError(
            f"arguments for tool {name!r} are not valid JSON: {exc}",
            code=ToolErrorCode.INVALID_JSON,
        ) from None


def _describe(error: ValidationError) -> str:
    """`arguments.items[0]: 'x' is not of type 'integer' (rule: type)`, kept short."""
    message = error.message
    if len(message) > _MAX_PROBLEM_CHARS:
        message = message[: _MAX_PROBLEM_CHARS - 3] + "..."
    return f"{field_path(error.absolute_path)}: {message} (rule: {error.validator})"


def field_path(parts: Any) -> str:
    """A readable path into the arguments: `arguments`, `arguments.items[0]`."""
    path = "arguments"
    for part in parts:
        if isinstance(part, int):
            path += f"[{part}]"
        elif isinstance(part, str) and part.isidentifier():
            path += f".{part}"
        else:
            path += f"[{json.dumps(part, ensure_ascii=False)}]"
    return path


def _json_type(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if value is None:
        return "null"
    return type(value).__name__
