"""Assistants threads and their messages.

Assistant messages written by runs are stored when the run is planned but only become
visible at the time the run produces them (``visible_at``, the first element of each
``messages`` pair), so listing a thread never shows an answer before its run has
finished.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from runq.sandbox.engine.ids import new_id
from runq.sandbox.engine.run_objects import ACTIVE
from runq.sandbox.engine.store import Store


@dataclass
class ThreadRecord:
    id: str
    created_at: int
    metadata: dict[str, str]
    tool_resources: dict[str, Any] | None
    messages: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    run_ids: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "thread",
            "created_at": self.created_at,
            "metadata": self.metadata,
            "tool_resources": self.tool_resources or {},
        }

    def visible(self, now: float | None = None) -> list[dict[str, Any]]:
        now = time.time() if now is None else now
        return [m for at, m in self.messages if at <= now]


def message_json(
    thread_id: str,
    role: str,
    text: str,
    *,
    created: float,
    annotations: list[dict[str, Any]] | None = None,
    run_id: str | None = None,
    assistant_id: str | None = None,
    meta: dict[str, str] | None = None,
    message_id: str | None = None,
) -> dict[str, Any]:
    return {
        "id": message_id or new_id("msg"),
        "object": "thread.message",
        "created_at": int(created),
        "thread_id": thread_id,
        "status": "completed",
        "incomplete_details": None,
        "completed_at": int(created),
        "incomplete_at": None,
        "role": role,
        "content": [{"type": "text", "text": {"value": text, "annotations": annotations or []}}],
        "assistant_id": assistant_id,
        "run_id": run_id,
        "attachments": [],
        "metadata": meta or {},
    }


def active_run(store: Store, thread: ThreadRecord) -> str | None:
    """The id of the thread's run that is still going, if any (the newest first)."""
    now = time.time()
    for run_id in reversed(thread.run_ids):
        run = store.runs.get(run_id)
        if run is not None and run.status(now) in ACTIVE:
            return run_id
    return None
