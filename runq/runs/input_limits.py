"""Bounds on a job's input in every form, checked by `JobSpec.validate` for every producer.

Why: the character limit once applied to a plain-text input only. A list-form input
carrying 20 MB of message content, or an item with a field the backends do not know,
was accepted, stored in the job record, copied into events and sent to the model. An
input is stored and re-read at every step, so its size is everyone's cost: here the
whole input is bounded, whatever its form.

- text: at most `MAX_INPUT_CHARS` characters;
- a list: at most `MAX_INPUT_ITEMS` items, and `MAX_INPUT_CHARS` characters in all its
  strings together (content, content parts, tool outputs, names, ids), at most
  `MAX_INPUT_VALUES` JSON values in all and `MAX_INPUT_DEPTH` levels of nesting;
- each item has only the fields its kind has (a message: role, content, ...; a
  `function_call_output`: call_id, output, ...); an unknown field or item type is refused,
  naming it, rather than stored and forwarded.
"""

from __future__ import annotations

from typing import Any

from runq.errors import InvalidJobError

MAX_INPUT_CHARS = 1_000_000
MAX_INPUT_ITEMS = 1_000
MAX_INPUT_VALUES = 100_000
MAX_INPUT_DEPTH = 16

# The fields of a chat message (Responses and Chat Completions spellings).
MESSAGE_FIELDS = frozenset(
    {"role", "content", "type", "name", "tool_calls", "tool_call_id", "id", "status", "refusal"}
)
# The fields of each other kind of input item, by its `type`.
ITEM_FIELDS: dict[str, frozenset[str]] = {
    "message": MESSAGE_FIELDS,
    "function_call": frozenset({"type", "call_id", "name", "arguments", "id", "status"}),
    "function_call_output": frozenset({"type", "call_id", "output", "id", "status"}),
    "custom_tool_call": frozenset({"type", "call_id", "name", "input", "id", "status"}),
    "custom_tool_call_output": frozenset({"type", "call_id", "output", "id", "status"}),
    "item_reference": frozenset({"type", "id"}),
    "reasoning": frozenset({"type", "id", "summary", "encrypted_content", "content", "status"}),
}


def check_input(value: Any) -> None:
    """Raise `InvalidJobError` (option `input` or `input[n]...`) if `value` is too large or
    an item has a field or a type its kind does not have. Shape is `JobSpec`'s business."""
    if isinstance(value, str):
        if len(value) > MAX_INPUT_CHARS:
            raise InvalidJobError("input", f"is longer than {MAX_INPUT_CHARS} characters")
        return
    if not isinstance(value, list):
        return
    if len(value) > MAX_INPUT_ITEMS:
        raise InvalidJobError("input", f"has more than {MAX_INPUT_ITEMS} items")
    for n, item in enumerate(value):
        if isinstance(item, dict):
            _check_fields(n, item)
    chars, values = _measure(value)
    if chars > MAX_INPUT_CHARS:
        raise InvalidJobError(
            "input", f"holds more than {MAX_INPUT_CHARS} characters in all its items"
        )
    if values > MAX_INPUT_VALUES:
        raise InvalidJobError("input", f"holds more than {MAX_INPUT_VALUES} values")


def _check_fields(n: int, item: dict[str, Any]) -> None:
    kind = item.get("type")
    if kind is None or (kind == "message" and "role" in item):
        allowed = MESSAGE_FIELDS
    elif isinstance(kind, str) and kind in ITEM_FIELDS:
        allowed = ITEM_FIELDS[kind]
    elif isinstance(kind, str):
        known = ", ".join(sorted(ITEM_FIELDS))
        raise InvalidJobError(
            f"input[{n}].type", f"unknown input item type {kind[:64]!r} (known: {known})"
        )
    else:
        return  # not text: JobSpec names the shape error
    unknown = sorted(str(key)[:64] for key in item if key not in allowed)
    if unknown:
        raise InvalidJobError(
            f"input[{n}]",
            f"unknown field(s) {', '.join(unknown)}; an item of this kind has "
            f"{', '.join(sorted(allowed))}",
        )


def _measure(value: Any) -> tuple[int, int]:
    """(characters in every string and key, JSON values) of `value`, without recursion
    (a deep input cannot exhaust the stack); deeper than `MAX_INPUT_DEPTH` is refused."""
    chars = values = 0
    pending: list[tuple[Any, int]] = [(value, 0)]
    while pending:
        node, depth = pending.pop()
        values += 1
        if values > MAX_INPUT_VALUES:
            return chars, values
        if depth > MAX_INPUT_DEPTH:
            raise InvalidJobError("input", f"is nested more than {MAX_INPUT_DEPTH} levels deep")
        if isinstance(node, str):
            chars += len(node)
        elif isinstance(node, dict):
            for key, child in node.items():
                chars += len(key) if isinstance(key, str) else 0
                pending.append((child, depth + 1))
        elif isinstance(node, list | tuple):
            pending.extend((child, depth + 1) for child in node)
        if chars > MAX_INPUT_CHARS:
            return chars, values
    return chars, values
