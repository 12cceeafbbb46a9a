"""A conversation's turns rendered for each protocol, and the turn a job adds.

When a link cannot continue a conversation through a backend handle of its own, the
history goes with the request (the job's `history.turns`, chosen by
`runs.conversations.truncation`):

- Chat Completions: messages before the job's own (`chat_messages`);
- Responses: input items before the job's own, without `previous_response_id`
  (`responses_items`);
- Assistants: a new thread seeded with the messages (`thread_messages`).

Tool calls are carried with their outputs where the protocol has items for them (Chat,
Responses); an Assistants thread holds only messages, so there they are told in the
assistant's text. File references go with Assistants user messages as attachments;
citations stay in the record (no protocol takes them as input).
"""

from __future__ import annotations

import json
from typing import Any

from runq.runs.job import Job


def replayed(job: Job) -> list[dict[str, Any]]:
    """The turns this job's request carries before its own input (none: native or new)."""
    history = job.history or {}
    return list(history.get("turns") or [])


def native(job: Job, name: str) -> str | None:
    """A backend handle runq chose for this job's link (`response_id`, `thread_id`)."""
    handle = (job.history or {}).get("handle") or {}
    value = handle.get(name)
    return value if isinstance(value, str) and value else None


def _calls(turn: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for c in turn.get("tool_calls") or [] if c.get("call_id") and c.get("name")]


def chat_messages(turns: list[dict[str, Any]]) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    for turn in turns:
        calls = _calls(turn)
        if turn["role"] == "assistant" and calls:
            messages.append({"role": "assistant", "content": None, "tool_calls": [
                {"id": c["call_id"], "type": "function",
                 "function": {"name": c["name"], "arguments": str(c.get("arguments") or "")}}
                for c in calls
            ]})  # fmt: skip
            messages.extend(
                {"role": "tool", "tool_call_id": c["call_id"], "content": str(c.get("output"))}
                for c in calls
            )
        messages.append({"role": turn["role"], "content": turn.get("text") or ""})
    return messages


def responses_items(turns: list[dict[str, Any]]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for turn in turns:
        if turn["role"] == "assistant":
            for c in _calls(turn):
                arguments = str(c.get("arguments") or "")
                items.append({"type": "function_call", "call_id": c["call_id"],
                              "name": c["name"], "arguments": arguments})  # fmt: skip
                items.append({"type": "function_call_output", "call_id": c["call_id"],
                              "output": str(c.get("output"))})  # fmt: skip
        items.append({"role": turn["role"], "content": turn.get("text") or ""})
    return items


def thread_messages(turns: list[dict[str, Any]]) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    for turn in turns:
        text = turn.get("text") or ""
        calls = _calls(turn)
        if calls:
            told = "; ".join(f"{c['name']}({c.get('arguments') or ''}) -> {c.get('output')}"
                             for c in calls)  # fmt: skip
            text = f"[tool calls: {told}]\n{text}".strip()
        message: dict[str, Any] = {"role": turn["role"], "content": text or "(no text)"}
        if turn["role"] == "user" and turn.get("files"):
            message["attachments"] = [
                {"file_id": f, "tools": [{"type": "file_search"}]} for f in turn["files"]
            ]
        messages.append(message)
    return messages


def _text_of(content: Any) -> tuple[str, list[str]]:
    """A message's content (text, or parts) as text and the file ids it names."""
    if isinstance(content, str):
        return content, []
    texts: list[str] = []
    files: list[str] = []
    for part in content if isinstance(content, list) else []:
        if not isinstance(part, dict):
            continue
        if isinstance(part.get("text"), str):
            texts.append(part["text"])
        if isinstance(part.get("file_id"), str):
            files.append(part["file_id"])
    return "\n".join(texts), files


def input_turns(job_input: str | list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The turns a job's own input adds to its conversation (system messages are the
    job's instructions, and tool items belong to the earlier turn they answer)."""
    if isinstance(job_input, str):
        return [{"role": "user", "text": job_input}]
    turns: list[dict[str, Any]] = []
    for item in job_input:
        if item.get("role") not in ("user", "assistant") or item.get("type") not in (
            None,
            "message",
        ):
            continue
        text, files = _text_of(item.get("content"))
        turn: dict[str, Any] = {"role": item["role"], "text": text}
        if files:
            turn["files"] = files
        turns.append(turn)
    return turns


def answer_turn(job: Job) -> dict[str, Any]:
    """The assistant's turn a finished job adds: its text, tool calls, citations."""
    turn: dict[str, Any] = {"role": "assistant", "text": job.output_text or ""}
    calls = [
        {"call_id": c.get("call_id"), "name": c.get("name"),
         "arguments": c.get("arguments"), "output": c.get("output")}
        for c in job.tool_calls
    ]  # fmt: skip
    if calls:
        turn["tool_calls"] = calls
    if job.citations:
        turn["citations"] = job.citations
    turn["job_id"] = job.id
    if job.source:
        turn["source"] = job.source
    return turn


def dumps_line(turn: dict[str, Any]) -> str:
    return json.dumps(turn, ensure_ascii=False, separators=(",", ":"))
