"""Derive a tool's JSON schema and description from its Python signature and docstring.

A tool author writes an ordinary typed function; the model needs a JSON schema. Deriving
one keeps the two from drifting apart. The mapping is deliberately small, so that every
schema it produces is one that OpenAI-compatible servers accept and that `jsonschema`
enforces exactly:

| hint | schema |
|---|---|
| `str`, `int`, `float`, `bool` | `string`, `integer`, `number`, `boolean` |
| `Literal["a", "b"]` | `{"enum": ["a", "b"]}` (plus `type` when the values share one) |
| `list[X]` | `{"type": "array", "items": <X>}` |
| `dict[str, X]` | `{"type": "object", "additionalProperties": <X>}` |
| `X \\| None` | `<X>` that also accepts `null`; the parameter is not required |
| `Annotated[X, "text"]` | `<X>` with `description: "text"`; a dict in the metadata is merged in |

A parameter with a default is not required (the default is shown to the model when it
is JSON). Parameter descriptions may also come from a Google-style `Args:` section of
the docstring. Anything else (no hint, `Any`, a class, `*args`) raises `TypeError` at
decoration time naming the parameter: a tool that cannot be described must not load.
"""

from __future__ import annotations

import inspect
import json
import re
import types
import typing
from collections.abc import Callable
from typing import Annotated, Any, Literal, Union, get_args, get_origin, get_type_hints

JSONSchema = dict[str, Any]

_SCALARS: dict[Any, str] = {str: "string", int: "integer", float: "number", bool: "boolean"}
_ARGS_HEADERS = ("args:", "arguments:", "parameters:", "params:")
_ARG_LINE = re.compile(r"^(\*{0,2}\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")


def description_from_docstring(func: Callable[..., Any]) -> str:
    """The first paragraph of the docstring, on one line (what the model reads)."""
    doc = inspect.getdoc(func) or ""
    paragraph = doc.strip().split("\n\n", 1)[0]
    return " ".join(paragraph.split())


def parameters_from_signature(func: Callable[..., Any]) -> JSONSchema:
    """An object schema for `func`'s parameters; `TypeError` names what is unsupported."""
    where = f"tool function {func.__qualname__!r}"
    try:
        hints = get_type_hints(func, include_extras=True)
    except Exception as exc:  # NameError from a forward reference, mostly
        raise TypeError(f"{where}: cannot resolve its type hints ({exc})") from exc
    documented = _argument_docs(inspect.getdoc(func) or "")
    properties: dict[str, JSONSchema] = {}
    required: list[str] = []
    for param in inspect.signature(func).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD, param.POSITIONAL_ONLY):
            raise TypeError(
                f"{where}: parameter {param.name!r} must be an ordinary named parameter "
                "(tools are called with keyword arguments only)"
            )
        if param.name not in hints:
            raise TypeError(f"{where}: parameter {param.name!r} has no type hint")
        try:
            schema, optional = _schema_for(hints[param.name])
        except TypeError as exc:
            raise TypeError(f"{where}: parameter {param.name!r}: {exc}") from None
        if param.name in documented:
            schema.setdefault("description", documented[param.name])
        if param.default is not param.empty:
            optional = True
            if _is_json(param.default):
                schema["default"] = param.default
        if not optional:
            required.append(param.name)
        properties[param.name] = schema
    result: JSONSchema = {"type": "object", "properties": properties}
    if required:
        result["required"] = required
    result["additionalProperties"] = False
    return result


def _schema_for(hint: Any) -> tuple[JSONSchema, bool]:
    """The schema for one hint, and whether the hint itself makes the value optional."""
    origin = get_origin(hint)
    if origin is Annotated:
        inner, *metadata = get_args(hint)
        schema, optional = _schema_for(inner)
        for item in metadata:
            if isinstance(item, str):
                schema["description"] = item
            elif isinstance(item, dict):
                schema.update(item)
        return schema, optional
    if origin in (Union, types.UnionType):
        members = [arg for arg in get_args(hint) if arg is not type(None)]
        if len(members) != 1 or len(members) == len(get_args(hint)):
            raise TypeError(f"unsupported union {_name(hint)}; only `X | None` is supported")
        schema, _ = _schema_for(members[0])
        return _nullable(schema), True
    return _plain_schema(hint), False


def _plain_schema(hint: Any) -> JSONSchema:
    origin = get_origin(hint)
    if hint in _SCALARS:
        return {"type": _SCALARS[hint]}
    if origin is Literal:
        values = list(get_args(hint))
        if not all(isinstance(v, str | int | float | bool) for v in values):
            raise TypeError(f"{_name(hint)}: Literal values must be str, int, float or bool")
        kinds = {_SCALARS[type(v)] for v in values}
        schema: JSONSchema = {"enum": values}
        if len(kinds) == 1:
            schema = {"type": kinds.pop(), **schema}
        return schema
    if origin is list and len(get_args(hint)) == 1:
        items, _ = _schema_for(get_args(hint)[0])
        return {"type": "array", "items": items}
    if origin is dict and len(get_args(hint)) == 2 and get_args(hint)[0] is str:
        value_schema, _ = _schema_for(get_args(hint)[1])
        return {"type": "object", "additionalProperties": value_schema}
    if hint in (list, dict, typing.List, typing.Dict):  # noqa: UP006 - we reject them
        raise TypeError(f"bare {_name(hint)} is not supported; say what it holds (list[str])")
    raise TypeError(
        f"unsupported type hint {_name(hint)}; use str, int, float, bool, Literal[...], "
        "list[X], dict[str, X], X | None or Annotated[X, 'description']"
    )


def _nullable(schema: JSONSchema) -> JSONSchema:
    """Let `schema` also accept JSON null (models send null for 'not given')."""
    nullable = dict(schema)
    if "enum" in nullable and None not in nullable["enum"]:
        nullable["enum"] = [*nullable["enum"], None]
    kind = nullable.get("type")
    if isinstance(kind, str):
        nullable["type"] = [kind, "null"]
    elif "type" not in nullable and "enum" not in nullable:
        return {"anyOf": [schema, {"type": "null"}]}
    return nullable


def _argument_docs(doc: str) -> dict[str, str]:
    """Parameter descriptions from a Google-style `Args:` section, if the docstring has one."""
    found: dict[str, str] = {}
    in_section = False
    current: str | None = None
    arg_indent = 0
    for line in doc.splitlines():
        stripped = line.strip()
        if stripped.lower() in _ARGS_HEADERS:
            in_section, current = True, None
            continue
        if not in_section:
            continue
        if not line.startswith((" ", "\t")):  # blank line or the next section ends it
            if stripped:
                in_section = False
            current = None
            continue
        match = _ARG_LINE.match(stripped)
        indent = len(line) - len(line.lstrip())
        if match and (current is None or indent <= arg_indent):
            current, arg_indent = match.group(1).lstrip("*"), indent
            found[current] = match.group(2).strip()
        elif current is not None:
            found[current] = f"{found[current]} {stripped}".strip()
    return found


def _is_json(value: Any) -> bool:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return False
    return True


def _name(hint: Any) -> str:
    return getattr(hint, "__name__", None) or repr(hint).replace("typing.", "")
