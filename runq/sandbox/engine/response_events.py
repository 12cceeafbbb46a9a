"""Stream events of a response, planned from its record and timeline.

The event list is a pure function of the stored response, so a background stream can
be replayed from any ``sequence_number`` (``GET /responses/{id}?stream=true&
starting_after=N``) and every client sees the same sequence. Each event is due at a
time on the response's timeline (created at creation, deltas spread between the first
token and the end); the streamer (:mod:`runq.sandbox.api.responses`) waits for that
time before sending it as a server-sent event.
"""

from __future__ import annotations

import copy
from typing import Any

from runq.sandbox.engine.response_objects import ResponseRecord, render
from runq.sandbox.engine.tokens import split_tokens

Event = tuple[float, dict[str, Any]]


# What an item holds when it is announced (``response.output_item.added``), before its
# content streams in.
_EMPTY_WHEN_ADDED: dict[str, dict[str, Any]] = {
    "message": {"content": []},
    "function_call": {"arguments": ""},
    "reasoning": {"summary": []},
    "code_interpreter_call": {"code": "", "outputs": None},
    "mcp_list_tools": {"tools": []},
    "mcp_call": {"arguments": "", "output": None, "error": None},
}


def _item_events(rec: ResponseRecord, index: int, item: dict[str, Any]) -> list[dict[str, Any]]:
    base = {"output_index": index, "item_id": item["id"]}
    added = copy.deepcopy(item)
    added["status"] = "in_progress"
    added.update(copy.deepcopy(_EMPTY_WHEN_ADDED.get(item["type"], {})))
    events: list[dict[str, Any]] = [
        {"type": "response.output_item.added", "output_index": index, "item": added}
    ]
    if item["type"] == "message" and item["content"][0]["type"] == "refusal":
        events.extend(_refusal_events(base, item["content"][0]))
    elif item["type"] == "message":
        part = item["content"][0]
        events.append(
            {
                **base,
                "type": "response.content_part.added",
                "content_index": 0,
                "part": {"type": "output_text", "text": "", "annotations": [], "logprobs": []},
            }
        )
        for delta in split_tokens(part["text"]):
            events.append(
                {
                    **base,
                    "type": "response.output_text.delta",
                    "content_index": 0,
                    "delta": delta,
                    "logprobs": [],
                }
            )
        for i, annotation in enumerate(part["annotations"]):
            events.append(
                {
                    **base,
                    "type": "response.output_text.annotation.added",
                    "content_index": 0,
                    "annotation_index": i,
                    "annotation": annotation,
                }
            )
        events.append(
            {
                **base,
                "type": "response.output_text.done",
                "content_index": 0,
                "text": part["text"],
                "logprobs": [],
            }
        )
        events.append(
            {**base, "type": "response.content_part.done", "content_index": 0, "part": part}
        )
    elif item["type"] == "function_call":
        events.append(
            {**base, "type": "response.function_call_arguments.delta", "delta": item["arguments"]}
        )
        events.append(
            {
                **base,
                "type": "response.function_call_arguments.done",
                "arguments": item["arguments"],
                "name": item["name"],
            }
        )
    elif item["type"] == "reasoning":
        events.extend(_summary_events(base, item))
    elif item["type"] == "file_search_call":
        for stage in ("in_progress", "searching", "completed"):
            events.append({**base, "type": f"response.file_search_call.{stage}"})
    elif item["type"] == "code_interpreter_call":
        events.extend(_code_events(base, item))
    else:
        events.extend(_hosted_events(base, item))
    events.append({"type": "response.output_item.done", "output_index": index, "item": item})
    return events


def _code_events(base: dict[str, Any], item: dict[str, Any]) -> list[dict[str, Any]]:
    """A code interpreter call: its code streamed, then it runs (it already ran)."""
    code = item["code"] or ""
    prefix = "response.code_interpreter_call"
    events: list[dict[str, Any]] = [{**base, "type": f"{prefix}.in_progress"}]
    for delta in split_tokens(code):
        events.append({**base, "type": f"{prefix}_code.delta", "delta": delta})
    events.append({**base, "type": f"{prefix}_code.done", "code": code})
    events.append({**base, "type": f"{prefix}.interpreting"})
    events.append({**base, "type": f"{prefix}.completed"})
    return events


def _hosted_events(base: dict[str, Any], item: dict[str, Any]) -> list[dict[str, Any]]:
    """A web search or an MCP list or call: its stages (all already done)."""
    kind = item["type"]
    if kind == "web_search_call":
        stages = ["in_progress", "searching", "completed"]
        return [{**base, "type": f"response.web_search_call.{s}"} for s in stages]
    if kind == "mcp_list_tools":
        end = "failed" if item.get("error") else "completed"
        return [{**base, "type": f"response.mcp_list_tools.{s}"} for s in ("in_progress", end)]
    if kind == "mcp_call":
        end = "failed" if item.get("status") == "failed" else "completed"
        return [
            {**base, "type": "response.mcp_call.in_progress"},
            {**base, "type": "response.mcp_call_arguments.delta", "delta": item["arguments"]},
            {**base, "type": "response.mcp_call_arguments.done", "arguments": item["arguments"]},
            {**base, "type": f"response.mcp_call.{end}"},
        ]
    return []


def _refusal_events(base: dict[str, Any], part: dict[str, Any]) -> list[dict[str, Any]]:
    """A refusal streams as its own part: ``response.refusal.delta`` then ``.done``."""
    events: list[dict[str, Any]] = [
        {
            **base,
            "type": "response.content_part.added",
            "content_index": 0,
            "part": {"type": "refusal", "refusal": ""},
        }
    ]
    for delta in split_tokens(part["refusal"]):
        events.append(
            {**base, "type": "response.refusal.delta", "content_index": 0, "delta": delta}
        )
    events.append(
        {**base, "type": "response.refusal.done", "content_index": 0, "refusal": part["refusal"]}
    )
    events.append({**base, "type": "response.content_part.done", "content_index": 0, "part": part})
    return events


def _summary_events(base: dict[str, Any], item: dict[str, Any]) -> list[dict[str, Any]]:
    """A reasoning item's summary parts, each added, streamed and done."""
    events: list[dict[str, Any]] = []
    for i, part in enumerate(item["summary"]):
        at = {**base, "summary_index": i}
        empty = {"type": "summary_text", "text": ""}
        events.append({**at, "type": "response.reasoning_summary_part.added", "part": empty})
        for delta in split_tokens(part["text"]):
            events.append({**at, "type": "response.reasoning_summary_text.delta", "delta": delta})
        events.append({**at, "type": "response.reasoning_summary_text.done", "text": part["text"]})
        events.append({**at, "type": "response.reasoning_summary_part.done", "part": part})
    return events


def plan_events(rec: ResponseRecord) -> list[Event]:
    """Every event of the response's stream with the time it is due."""
    tl = rec.timeline
    first = "queued" if rec.background else "in_progress"
    events: list[Event] = [
        (
            tl.created_at,
            {"type": "response.created", "response": render(rec, tl.created_at, first)},
        ),
    ]
    if rec.background:
        events.append(
            (
                tl.created_at,
                {"type": "response.queued", "response": render(rec, tl.created_at, "queued")},
            )
        )
    events.append(
        (
            tl.started_at,
            {"type": "response.in_progress", "response": render(rec, tl.started_at, "in_progress")},
        )
    )
    body: list[dict[str, Any]] = []
    for index, item in enumerate(rec.output):
        body.extend(_item_events(rec, index, item))
    for i, event in enumerate(body):
        events.append((tl.token_time(i, len(body)), event))
    final_type = {
        "completed": "response.completed",
        "failed": "response.failed",
        "incomplete": "response.incomplete",
    }[rec.final_status]
    events.append((tl.done_at, {"type": final_type, "response": render(rec, tl.done_at + 1e-6)}))
    for seq, (_, event) in enumerate(events):
        event["sequence_number"] = seq
    return events
