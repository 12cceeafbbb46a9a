"""Attribute filters: which vector-store files a search may return.

A vector-store file carries ``attributes`` (up to 16 keys; values are strings of up to
512 characters, numbers or booleans). A search (``POST /vector_stores/{id}/search``) or
the file_search tool may give ``filters``, one of the spec's two shapes:

- a comparison ``{"type": "eq" | "ne" | "gt" | "gte" | "lt" | "lte" | "in" | "nin",
  "key": K, "value": V}``;
- a compound ``{"type": "and" | "or", "filters": [...]}`` of comparisons or compounds.

Semantics, as the API describes them: ``eq``/``ne`` compare for equality (a boolean
equals only a boolean, never ``1``); ``gt``/``gte``/``lt``/``lte`` order numbers with
numbers and strings with strings (other pairs never match); ``in``/``nin`` test
membership in the array ``V``. A file without the key fails every comparison except
``ne`` and ``nin``, which it passes. An empty ``and`` matches every file, an empty
``or`` none.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

from runq.sandbox.engine.errors import bad_request

COMPARISONS = ("eq", "ne", "gt", "gte", "lt", "lte", "in", "nin")
COMPOUNDS = ("and", "or")
_ORDER: dict[str, Callable[[Any, Any], bool]] = {
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
}
MAX_ATTRIBUTES, MAX_KEY, MAX_STRING = 16, 64, 512


def _scalar(value: Any) -> bool:
    return isinstance(value, str | int | float | bool)


def validate(node: Any, param: str = "filters") -> dict[str, Any] | None:
    """``node`` if it is a well-formed filter (``None`` stays ``None``), else a 400."""
    if node is None:
        return None
    if not isinstance(node, dict):
        raise bad_request(f"Invalid '{param}': expected an object.", param)
    kind = node.get("type")
    if kind in COMPOUNDS:
        children = node.get("filters")
        if not isinstance(children, list):
            raise bad_request(f"Invalid '{param}.filters': expected an array.", f"{param}.filters")
        for i, child in enumerate(children):
            validate(child, f"{param}.filters[{i}]")
        return node
    if kind not in COMPARISONS:
        expected = ", ".join(COMPARISONS + COMPOUNDS)
        raise bad_request(f"Invalid '{param}.type': expected one of {expected}.", f"{param}.type")
    if not isinstance(node.get("key"), str):
        raise bad_request(f"Missing required parameter: '{param}.key'.", f"{param}.key")
    if "value" not in node:
        raise bad_request(f"Missing required parameter: '{param}.value'.", f"{param}.value")
    value = node["value"]
    if kind in ("in", "nin"):
        if not isinstance(value, list) or not all(_scalar(v) for v in value):
            raise bad_request(
                f"Invalid '{param}.value': '{kind}' expects an array of strings or numbers.",
                f"{param}.value",
            )
    elif not _scalar(value):
        raise bad_request(
            f"Invalid '{param}.value': expected a string, number or boolean.", f"{param}.value"
        )
    return node


def _same(a: Any, b: Any) -> bool:
    """Equality that keeps booleans apart from numbers (``True`` is not ``1``)."""
    return isinstance(a, bool) == isinstance(b, bool) and a == b


def _comparable(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return False
    numbers = isinstance(a, int | float) and isinstance(b, int | float)
    return numbers or (isinstance(a, str) and isinstance(b, str))


def matches(node: dict[str, Any] | None, attributes: dict[str, Any]) -> bool:
    """Does a file with ``attributes`` pass the (validated) filter ``node``?"""
    if node is None:
        return True
    kind = node["type"]
    if kind == "and":
        return all(matches(child, attributes) for child in node["filters"])
    if kind == "or":
        return any(matches(child, attributes) for child in node["filters"])
    key, value = node["key"], node["value"]
    if key not in attributes:
        return kind in ("ne", "nin")
    actual = attributes[key]
    if kind == "eq":
        return _same(actual, value)
    if kind == "ne":
        return not _same(actual, value)
    if kind == "in":
        return any(_same(actual, v) for v in value)
    if kind == "nin":
        return not any(_same(actual, v) for v in value)
    return _comparable(actual, value) and _ORDER[kind](actual, value)


def validate_attributes(attributes: Any, param: str = "attributes") -> dict[str, Any]:
    """A file's ``attributes`` as the API accepts them (``None`` = none), else a 400."""
    if attributes is None:
        return {}
    if not isinstance(attributes, dict):
        raise bad_request(f"Invalid '{param}': expected an object.", param)
    if len(attributes) > MAX_ATTRIBUTES:
        raise bad_request(
            f"Invalid '{param}': expected at most {MAX_ATTRIBUTES} keys, got {len(attributes)}.",
            param,
        )
    for key, value in attributes.items():
        if len(key) > MAX_KEY:
            raise bad_request(
                f"Invalid '{param}': key '{key[:20]}...' is longer than {MAX_KEY} characters.",
                param,
            )
        if not _scalar(value):
            raise bad_request(
                f"Invalid '{param}.{key}': expected a string, number or boolean.",
                f"{param}.{key}",
            )
        if isinstance(value, str) and len(value) > MAX_STRING:
            raise bad_request(
                f"Invalid '{param}.{key}': longer than {MAX_STRING} characters.", f"{param}.{key}"
            )
    return dict(attributes)
