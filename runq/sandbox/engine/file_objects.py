"""An uploaded file: its bytes and the ``file`` object the Files API shows.

Kept apart from the routes because vector stores ingest these bytes and the snapshot
saves them, neither of which involves HTTP.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

PURPOSES = ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")


@dataclass
class FileRecord:
    id: str
    filename: str
    purpose: str
    created_at: int
    data: bytes

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "file",
            "bytes": len(self.data),
            "created_at": self.created_at,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
        }
