"""Conversations into and out of runq: an Assistants thread or a JSONL transcript in,
a JSONL transcript out.

The Assistants API is shut down at OpenAI, but applications still hold threads on
compatible servers and transcripts in their own records. An import turns either into
a runq conversation, which then continues on any backend (`runs.conversations.history`).

What a thread import carries: every message in order (user and assistant), its text,
the files it names (attachments, `image_file` parts) and its citations (`file_citation`
and `file_path` annotations); the instructions are the job's own. What it does not: a
run's steps (code interpreter sessions and their sandboxes, tool calls inside runs), the
thread's metadata and tool resources, the assistant. The thread stays valid for the
link it was read from: a turn on an Assistants link of that server continues in it.

A transcript line is one turn: `{"role": "user" | "assistant", "text": "...", "files":
[...], "citations": [...], "tool_calls": [...]}`; a `{"role": "system", "text": ...}`
line gives the instructions.
"""

from __future__ import annotations

import json
from typing import Any

from runq.errors import InvalidJobError
from runq.runs.conversations.ids import new_conversation_id
from runq.runs.conversations.record import (
    Conversation,
    ConversationStore,
    check_id,
    check_tenant,
    check_turn,
    link_key,
)

MAX_TURNS = 10_000


def _new(conversation_id: str | None, tenant: str | None) -> Conversation:
    chosen = check_id(conversation_id) if conversation_id else new_conversation_id()
    return Conversation(chosen, tenant=check_tenant(tenant))


def from_transcript(
    lines: list[Any], *, conversation_id: str | None = None, tenant: str | None = None
) -> Conversation:
    """A conversation from transcript lines (already parsed JSON objects)."""
    if not isinstance(lines, list) or not lines:
        raise InvalidJobError("transcript", "must be a non-empty list of turns")
    if len(lines) > MAX_TURNS:
        raise InvalidJobError("transcript", f"at most {MAX_TURNS} turns")
    record = _new(conversation_id, tenant)
    for n, line in enumerate(lines):
        if isinstance(line, dict) and line.get("role") == "system":
            if not isinstance(line.get("text"), str):
                raise InvalidJobError(f"transcript[{n}].text", "must be text")
            record.instructions = line["text"]
            continue
        record.turns.append(check_turn(line, f"transcript[{n}]"))
    return record


def parse_jsonl(text: str) -> list[Any]:
    """JSONL text as a list of objects; a bad line is named by its number."""
    lines: list[Any] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            lines.append(json.loads(raw))
        except ValueError as err:
            raise InvalidJobError("transcript", f"line {number} is not JSON: {err}") from None
    return lines


def to_jsonl(record: Conversation) -> str:
    return "".join(
        json.dumps(line, ensure_ascii=False, separators=(",", ":")) + "\n"
        for line in record.transcript()
    )


def _attr(obj: Any, name: str, default: Any = None) -> Any:
    return getattr(obj, name, default)


def thread_turn(message: Any) -> dict[str, Any]:
    """One Assistants message as a neutral turn: text, files, citations."""
    texts: list[str] = []
    files: list[str] = []
    citations: list[dict[str, Any]] = []
    for part in _attr(message, "content", None) or []:
        kind = _attr(part, "type")
        if kind == "text":
            text = _attr(part, "text")
            offset = sum(len(t) for t in texts)
            texts.append(_attr(text, "value", "") or "")
            for note in _attr(text, "annotations", None) or []:
                cited = _attr(note, "file_citation", None) or _attr(note, "file_path", None)
                file_id = _attr(cited, "file_id", None)
                if file_id:
                    start = int(_attr(note, "start_index", 0) or 0)
                    citations.append(
                        {"type": _attr(note, "type"), "file_id": file_id,
                         "quote": _attr(note, "text"), "index": offset + start}
                    )  # fmt: skip
        elif kind == "image_file":
            file_id = _attr(_attr(part, "image_file"), "file_id", None)
            if file_id:
                files.append(file_id)
    for attachment in _attr(message, "attachments", None) or []:
        file_id = _attr(attachment, "file_id", None)
        if file_id and file_id not in files:
            files.append(file_id)
    turn: dict[str, Any] = {"role": _attr(message, "role"), "text": "".join(texts)}
    if files:
        turn["files"] = files
    if citations:
        turn["citations"] = citations
    return turn


def from_thread(
    client: Any,
    thread_id: str,
    *,
    base_url: str | None,
    conversation_id: str | None = None,
    tenant: str | None = None,
) -> Conversation:
    """Read a thread's messages, oldest first, from an Assistants-speaking server.

    `client` is an `openai.OpenAI` built from runq's own settings (the deployment's
    endpoint, or a configured link's), never from the caller's input; `base_url` is the
    link's own (None: the deployment's endpoint), to name the link the thread is valid for.
    """
    if not isinstance(thread_id, str) or not thread_id.strip():
        raise InvalidJobError("thread_id", "must be a thread id")
    record = _new(conversation_id, tenant)
    for message in client.beta.threads.messages.list(thread_id, order="asc", limit=100):
        if _attr(message, "role") in ("user", "assistant"):
            record.turns.append(thread_turn(message))
        if len(record.turns) > MAX_TURNS:
            raise InvalidJobError("thread_id", f"the thread has more than {MAX_TURNS} messages")
    record.record_handle(link_key("assistants", "", base_url), {"thread_id": thread_id})
    return record


def save_new(store: ConversationStore, record: Conversation) -> Conversation:
    """Write an imported conversation (an id in use is refused)."""
    store.create(record)
    return record
