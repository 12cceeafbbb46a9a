"""A conversation: the durable list of items that responses read and append to.

Its ``history`` is the transcript the model sees on the next turn, so a response that
names the conversation continues it exactly as ``previous_response_id`` would. Items
added or deleted through the items API rebuild it from the item list.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from runq.sandbox.engine.response_objects import ResponseRecord
from runq.sandbox.engine.transcript import Turn, turns_from_response_input


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

    def add_items(self, items: list[dict[str, Any]]) -> None:
        """Append items added through the items API; the transcript follows."""
        self.items.extend(items)
        self.history = turns_from_response_input(self.items)

    def remove_item(self, item_id: str) -> None:
        self.items = [item for item in self.items if item["id"] != item_id]
        self.history = turns_from_response_input(self.items)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "conversation",
            "created_at": self.created_at,
            "metadata": self.metadata,
        }
