"""The Responses API object: a stored record and its JSON rendering at a given time.

A :class:`ResponseRecord` holds the response's *planned* final state (output, usage,
final status) and its :class:`~runq.sandbox.engine.lifecycle.Timeline`. :func:`render` shows what a
client would see at ``now``: ``queued``/``in_progress`` with no output before
``done_at``, then the final object; ``cancelled`` once cancelled before its end.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from runq.sandbox.engine.ids import new_id
from runq.sandbox.engine.lifecycle import Timeline
from runq.sandbox.engine.model import Reply
from runq.sandbox.engine.transcript import Turn

# How each outcome fault ends a response (Responses has no "expired" status).
FAULT_ENDINGS: dict[str, tuple[str, dict[str, Any] | None, dict[str, Any] | None]] = {
    "failed": (
        "failed",
        {"code": "server_error", "message": "The model failed to generate a response."},
        None,
    ),
    "rate_limited": (
        "failed",
        {"code": "rate_limit_exceeded", "message": "Rate limit reached while generating."},
        None,
    ),
    "expired": (
        "failed",
        {"code": "server_error", "message": "The response expired before it completed."},
        None,
    ),
    "incomplete": ("incomplete", None, {"reason": "max_output_tokens"}),
}


@dataclass
class ResponseRecord:
    id: str
    params: dict[str, Any]  # echoed request parameters (model, instructions, tools, ...)
    timeline: Timeline
    background: bool
    store: bool
    final_status: str
    output: list[dict[str, Any]]
    usage: dict[str, Any]
    input_items: list[dict[str, Any]]
    history: list[Turn]  # the transcript including this response's output
    error: dict[str, Any] | None = None
    incomplete_details: dict[str, Any] | None = None
    cancelled_at: float | None = None
    job_id: str | None = None
    events: list[dict[str, Any]] = field(default_factory=list)  # planned stream events

    def status(self, now: float | None = None) -> str:
        if self.cancelled_at is not None:
            return "cancelled"
        phase = self.timeline.phase(now)
        return self.final_status if phase == "done" else phase

    def is_terminal(self, now: float | None = None) -> bool:
        return self.status(now) not in ("queued", "in_progress")


def usage_block(input_tokens: int, output_tokens: int, reasoning_tokens: int = 0) -> dict[str, Any]:
    """Responses usage; ``output_tokens`` already includes the reasoning tokens."""
    return {
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": reasoning_tokens},
        "total_tokens": input_tokens + output_tokens,
    }


def output_items(reply: Reply, status: str = "completed") -> list[dict[str, Any]]:
    """Output items for a model reply: file_search call, function calls, or a message."""
    items: list[dict[str, Any]] = []
    if reply.searched:
        items.append(
            {
                "type": "file_search_call",
                "id": new_id("fs"),
                "status": "completed",
                "queries": reply.search_queries,
                "results": None,
            }
        )
    for call in reply.calls:
        items.append(
            {
                "type": "function_call",
                "id": new_id("fc"),
                "call_id": call.call_id,
                "name": call.name,
                "arguments": call.arguments,
                "status": "completed",
            }
        )
    if reply.refusal is not None:
        part: dict[str, Any] = {"type": "refusal", "refusal": reply.refusal}
    else:
        part = {
            "type": "output_text",
            "text": reply.text,
            "annotations": reply.responses_annotations(),
            "logprobs": [],
        }
    if reply.text or reply.refusal is not None or not reply.calls:
        items.append(
            {
                "type": "message",
                "id": new_id("msg"),
                "status": status,
                "role": "assistant",
                "content": [part],
            }
        )
    return items


def input_item(turn: Turn) -> dict[str, Any]:
    """A Responses input item (as listed by ``GET /responses/{id}/input_items``)."""
    if turn.kind == "function_call_output":
        return {
            "type": "function_call_output",
            "id": new_id("fco"),
            "call_id": turn.call_id,
            "output": turn.text,
            "status": "completed",
        }
    if turn.kind == "function_call":
        return {
            "type": "function_call",
            "id": new_id("fc"),
            "call_id": turn.call_id,
            "name": turn.name,
            "arguments": turn.arguments or "",
            "status": "completed",
        }
    part = "output_text" if turn.role == "assistant" else "input_text"
    content: dict[str, Any] = {"type": part, "text": turn.text}
    if part == "output_text":
        content["annotations"] = []
        content["logprobs"] = []
    return {
        "type": "message",
        "id": new_id("msg"),
        "role": turn.role,
        "status": "completed",
        "content": [content],
    }


def render(
    rec: ResponseRecord, now: float | None = None, force_status: str | None = None
) -> dict[str, Any]:
    """The response object as a client sees it at ``now`` (or in ``force_status``)."""
    now = time.time() if now is None else now
    status = force_status or rec.status(now)
    final = status == rec.final_status and rec.timeline.phase(now) == "done"
    final = final and rec.cancelled_at is None
    p = rec.params
    completed_at = int(rec.timeline.done_at) if final and status == "completed" else None
    return {
        "id": rec.id,
        "object": "response",
        "created_at": int(rec.timeline.created_at),
        "status": status,
        "background": rec.background,
        "completed_at": completed_at,
        "conversation": p.get("conversation"),
        "error": rec.error if final else None,
        "incomplete_details": rec.incomplete_details if final else None,
        "instructions": p.get("instructions"),
        "max_output_tokens": p.get("max_output_tokens"),
        "max_tool_calls": None,
        "metadata": p.get("metadata") or {},
        "model": p["model"],
        "output": rec.output if final else [],
        "parallel_tool_calls": p.get("parallel_tool_calls", True),
        "previous_response_id": p.get("previous_response_id"),
        "presence_penalty": 0.0,
        "frequency_penalty": 0.0,
        "prompt": None,
        "prompt_cache_key": p.get("prompt_cache_key"),
        "prompt_cache_retention": p.get("prompt_cache_retention"),
        "reasoning": p.get("reasoning") or {"effort": None, "summary": None},
        "safety_identifier": p.get("safety_identifier"),
        "service_tier": p.get("service_tier") or "default",
        "store": rec.store,
        "temperature": p.get("temperature", 1.0),
        "text": p.get("text") or {"format": {"type": "text"}, "verbosity": "medium"},
        "tool_choice": p.get("tool_choice", "auto"),
        "tools": p.get("tools") or [],
        "top_logprobs": p.get("top_logprobs") or 0,
        "top_p": p.get("top_p", 1.0),
        "truncation": p.get("truncation") or "disabled",
        **({"user": p["user"]} if p.get("user") else {}),  # the spec's user is not nullable
        # Until the end nothing is billed: zeros, since OpenAI's spec does not let usage
        # be null and the Open Responses spec requires the key on every response object.
        "usage": rec.usage if final else usage_block(0, 0),
    }
