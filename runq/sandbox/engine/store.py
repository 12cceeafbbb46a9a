"""In-memory state of the sandbox: every object it has created, by kind and id.

A plain dict per kind. The server runs on one event loop, so handlers see a consistent
store without locks (they never await between reading and writing an object).
"""

from __future__ import annotations

from typing import Any

from runq.sandbox.engine.errors import not_found

# How a 404 names each kind ("No vector store found with id ...").
NOUNS = {
    "responses": "response",
    "conversations": "conversation",
    "files": "file",
    "vector_stores": "vector store",
    "assistants": "assistant",
    "threads": "thread",
    "runs": "run",
    "chat_completions": "chat completion",
    "batches": "batch",
}


class Store:
    KINDS = tuple(NOUNS)

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.responses: dict[str, Any] = {}
        self.conversations: dict[str, Any] = {}
        self.files: dict[str, Any] = {}
        self.vector_stores: dict[str, Any] = {}
        self.assistants: dict[str, Any] = {}
        self.threads: dict[str, Any] = {}
        self.runs: dict[str, Any] = {}
        self.chat_completions: dict[str, Any] = {}
        self.batches: dict[str, Any] = {}

    def table(self, kind: str) -> dict[str, Any]:
        """The objects of ``kind`` (one of :attr:`KINDS`) by id."""
        table: dict[str, Any] = getattr(self, kind)
        return table

    def find(self, kind: str, object_id: str, param: str | None = None) -> Any:
        """The object of ``kind`` with this id, or the real API's 404 (naming ``param``)."""
        rec = self.table(kind).get(object_id)
        if rec is None:
            raise not_found(NOUNS[kind], object_id, param)
        return rec

    def counts(self) -> dict[str, int]:
        return {kind: len(self.table(kind)) for kind in self.KINDS}
