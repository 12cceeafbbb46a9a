"""A Responses request's input items as OpenAI keeps them: checked, given ids, listed.

``GET /v1/responses/{id}/input_items`` lists every item the request carried, in order:
messages, function calls and their outputs, and the hosted tools' items sent back for
continuity (``code_interpreter_call``, ``file_search_call``, ``web_search_call``, MCP
items...). Each has an id: its own when it came with one, else a new one with OpenAI's
prefix. An ``item_reference`` is listed as the item it names (the spec's list has no
reference type). Before any of that, :func:`check_required` refuses an item sent back
without a field the spec requires, with OpenAI's ``input[2].container_id`` wording.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from runq.sandbox.engine.errors import bad_request
from runq.sandbox.engine.ids import new_id

# Required fields of the input item types the sandbox reads, from the spec's ``Item``
# schemas (a ``type``-less item is a message). Required but nullable fields (a code
# interpreter call's ``code`` and ``outputs``) are left out: a client that drops its
# nulls before sending an item back (``model_dump(exclude_none=True)``) omits them.
REQUIRED_FIELDS: dict[str, tuple[str, ...]] = {
    "message": ("role", "content"),
    "function_call_output": ("call_id", "output"),
    "function_call": ("call_id", "name", "arguments"),
    "file_search_call": ("id", "status", "queries"),
    "web_search_call": ("id", "status", "action"),
    "code_interpreter_call": ("id", "status", "container_id"),
    "reasoning": ("id", "summary"),
    "mcp_list_tools": ("id", "server_label", "tools"),
    "mcp_approval_request": ("id", "server_label", "name", "arguments"),
    "mcp_approval_response": ("approval_request_id", "approve"),
    "mcp_call": ("id", "server_label", "name", "arguments"),
    "item_reference": ("id",),
    "compaction": ("encrypted_content",),
}
# Prefixes of the ids given to items that came without one.
_ID_PREFIXES = {
    "message": "msg",
    "function_call": "fc",
    "function_call_output": "fco",
    "mcp_approval_response": "mcpr",
    "compaction": "cmp",
}

Resolver = Callable[[str], dict[str, Any] | None]


def check_required(raw: Any) -> None:
    """400 ``Missing required parameter: 'input[i].field'.`` for an item lacking a field
    (an absent key: a wrong value is the transcript's or the tool's to refuse)."""
    if not isinstance(raw, list):
        return
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            continue
        for name in REQUIRED_FIELDS.get(item.get("type") or "message", ()):
            if name not in item:
                param = f"input[{i}].{name}"
                raise bad_request(
                    f"Missing required parameter: '{param}'.", param, "missing_required_parameter"
                )


def listed(raw: Any, resolve: Resolver) -> list[dict[str, Any]]:
    """The items of a Responses ``input`` as ``input_items`` lists them, in order."""
    if raw is None:
        return []
    if isinstance(raw, str):
        return [_message({"role": "user", "content": raw})]
    items: list[dict[str, Any]] = []
    for item in raw:
        kind = item.get("type") or "message"
        if kind == "message":
            items.append(_message(item))
        elif kind == "item_reference":
            found = resolve(item["id"])
            items.append(dict(found) if found is not None else {"type": kind, "id": item["id"]})
        else:
            items.append(_with_id(kind, item))
    return items


def _with_id(kind: str, item: dict[str, Any]) -> dict[str, Any]:
    listed_item = dict(item)
    listed_item["type"] = kind
    if not listed_item.get("id"):
        listed_item["id"] = new_id(_ID_PREFIXES.get(kind, "item"))
    if kind in ("function_call", "function_call_output"):
        listed_item.setdefault("status", "completed")
    return listed_item


def _message(item: dict[str, Any]) -> dict[str, Any]:
    """A message with typed content parts (a string becomes one text part)."""
    role = item["role"]
    text_type = "output_text" if role == "assistant" else "input_text"
    content = item.get("content")
    if isinstance(content, str) or content is None:
        content = [{"type": text_type, "text": content or ""}]
    parts = []
    for part in content:
        part = {"type": text_type, "text": part} if isinstance(part, str) else dict(part)
        if part.get("type") == "output_text":
            part.setdefault("annotations", [])
            part.setdefault("logprobs", [])
        parts.append(part)
    return {
        "type": "message",
        "id": item.get("id") or new_id("msg"),
        "role": role,
        "status": item.get("status") or "completed",
        "content": parts,
    }
