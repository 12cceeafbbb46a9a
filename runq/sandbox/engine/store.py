"""In-memory state of the sandbox: every object it has created, by kind and id.

A plain dict per kind. The server runs on one event loop, so handlers see a consistent
store without locks (they never await between reading and writing an object).
"""

from __future__ import annotations

from typing import Any


class Store:
    KINDS = (
        "responses",
        "conversations",
        "files",
        "vector_stores",
        "assistants",
        "threads",
        "runs",
        "chat_completions",
    )

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

    def counts(self) -> dict[str, int]:
        return {kind: len(getattr(self, kind)) for kind in self.KINDS}
