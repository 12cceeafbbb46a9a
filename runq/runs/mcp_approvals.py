"""OpenAI's MCP approval requests, mapped onto runq's approvals (`runs.approvals`).

A Responses run with an MCP server whose `require_approval` says so does not call the
server's tool: it completes with an output item

    {"type": "mcp_approval_request", "id": "mcpr_...", "server_label": "shop",
     "name": "refund", "arguments": "{...}"}

and the next request answers it with an input item

    {"type": "mcp_approval_response", "approval_request_id": "mcpr_...",
     "approve": true|false, "reason": "..."}

(with `previous_response_id`). runq treats the request as a tool call that waits for a
person: its call id is the request's id, its name `mcp:<server_label>:<tool>`, and the
decision (approved or denied, by a person or the timeout) becomes the call's output,
which `responses_input` turns into the `mcp_approval_response` item. Only the Responses
API has these items (the sandbox emits them too, calling a real MCP server).
"""

from __future__ import annotations

import json
from typing import Any

from runq.runs.backends.base import ToolCallRequest

PREFIX = "mcp:"
ITEM = "mcp_approval_request"
_MARK = "mcp_approval_response"


def _attr(obj: Any, name: str, default: Any = None) -> Any:
    if isinstance(obj, dict):
        return obj.get(name, default)
    return getattr(obj, name, default)


def is_request(item: Any) -> bool:
    return _attr(item, "type") == ITEM


def call_of(item: Any) -> ToolCallRequest:
    """The `mcp_approval_request` item as the call of a tool round."""
    label, name = _attr(item, "server_label", "") or "", _attr(item, "name", "") or ""
    return ToolCallRequest(
        call_id=str(_attr(item, "id")),
        name=f"{PREFIX}{label}:{name}",
        arguments=str(_attr(item, "arguments", "") or ""),
    )


def is_mcp(name: str) -> bool:
    """Is this call of a round an MCP server's approval request?"""
    return name.startswith(PREFIX)


def server_label(name: str) -> str:
    return name.removeprefix(PREFIX).split(":", 1)[0]


def decision_output(approve: bool, reason: str | None) -> str:
    """The call's stored output: the decision, for `responses_input`."""
    answer: dict[str, Any] = {"approve": approve}
    if reason:
        answer["reason"] = reason
    return json.dumps({_MARK: answer})


def responses_input(
    pending_calls: list[dict[str, Any]], outputs: list[tuple[str, str]]
) -> list[dict[str, Any]]:
    """The input items that hand a round's outputs back: `mcp_approval_response` for an
    MCP approval request (a call named `mcp:...` in the round), `function_call_output`
    for every other call."""
    mcp = {c["call_id"] for c in pending_calls if is_mcp(str(c.get("name", "")))}
    return [
        _answer(call_id, output) if call_id in mcp
        else {"type": "function_call_output", "call_id": call_id, "output": output}
        for call_id, output in outputs
    ]  # fmt: skip


def _answer(call_id: str, output: str) -> dict[str, Any]:
    """A decision's output as the `mcp_approval_response` item; anything else (a call
    that never got a decision) is a refusal: the server's tool must not run unasked."""
    try:
        answer = json.loads(output).get(_MARK) or {}
    except (ValueError, AttributeError):
        answer = {}
    item: dict[str, Any] = {
        "type": "mcp_approval_response",
        "approval_request_id": call_id,
        "approve": answer.get("approve") is True,
    }
    if answer.get("reason"):
        item["reason"] = str(answer["reason"])
    return item
