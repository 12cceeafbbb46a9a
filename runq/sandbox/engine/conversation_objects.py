"""A conversation: the durable list of items that responses read and append to.

Its ``history`` is the transcript the model sees on the next turn, so a response that
names the conversation continues it exactly as ``previous_response_id`` would.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from runq.sandbox.engine.response_objects import ResponseRecord
from runq.sandbox.engine.transcript import Turn


@dataclass
class ConversationRecord:
    id: str
    created_at: int
    metadata: dict[str, str]
    items: list[dict[str, Any]] = field(default_factory=list)
    history: list[Turn] = field(default_factory=list)

    def add_response(self, rec: ResponseRecord) -> None:
        """Append a response's input and output, so the next turn sees them."""
        self.items.extend(rec.input_items)
        self.items.extend(rec.output)
        self.history = list(rec.history)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "conversation",
            "created_at": self.created_at,
            "metadata": self.metadata,
        }
