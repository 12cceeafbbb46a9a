"""Vector stores: files parsed and chunked at once, searchable once "ingested".

Ingestion is asynchronous as seen from the client: a file added at ``t`` reports
``in_progress`` until ``t + latency_ms`` and then ``completed`` (or ``failed`` with
``last_error`` when its format cannot be read). Parsing and chunking happen at once, at
add time, so nothing runs in the background. Chunks are 800 tokens with 400 overlap.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from runq.sandbox.engine.documents import UnsupportedFile, extract_text
from runq.sandbox.engine.file_objects import FileRecord
from runq.sandbox.engine.retrieval import bm25
from runq.sandbox.engine.state import SandboxState
from runq.sandbox.engine.tokens import chunk_text

CHUNK_TOKENS, CHUNK_OVERLAP = 800, 400
STATIC_CHUNKING = {
    "type": "static",
    "static": {"max_chunk_size_tokens": CHUNK_TOKENS, "chunk_overlap_tokens": CHUNK_OVERLAP},
}


@dataclass
class StoreFile:
    file_id: str
    filename: str
    vector_store_id: str
    created_at: float
    ready_at: float
    chunks: list[dict[str, Any]]
    usage_bytes: int
    error: str | None = None

    def status(self, now: float) -> str:
        if now < self.ready_at:
            return "in_progress"
        return "failed" if self.error else "completed"

    def to_json(self, now: float) -> dict[str, Any]:
        status = self.status(now)
        return {
            "id": self.file_id,
            "object": "vector_store.file",
            "created_at": int(self.created_at),
            "vector_store_id": self.vector_store_id,
            "status": status,
            "usage_bytes": self.usage_bytes if status == "completed" else 0,
            "last_error": (
                {"code": "unsupported_file", "message": self.error} if status == "failed" else None
            ),
            "chunking_strategy": STATIC_CHUNKING,
            "attributes": {},
        }


@dataclass
class VectorStoreRecord:
    id: str
    name: str | None
    created_at: int
    metadata: dict[str, str]
    files: dict[str, StoreFile] = field(default_factory=dict)
    batches: dict[str, list[str]] = field(default_factory=dict)

    def counts(self, file_ids: list[str] | None = None, now: float | None = None) -> dict[str, int]:
        now = time.time() if now is None else now
        ids = list(self.files) if file_ids is None else file_ids
        statuses = [self.files[i].status(now) for i in ids if i in self.files]
        counts = {s: statuses.count(s) for s in ("in_progress", "completed", "failed")}
        return {**counts, "cancelled": 0, "total": len(statuses)}

    def to_json(self) -> dict[str, Any]:
        now = time.time()
        counts = self.counts(now=now)
        return {
            "id": self.id,
            "object": "vector_store",
            "created_at": self.created_at,
            "name": self.name,
            "usage_bytes": sum(
                f.usage_bytes for f in self.files.values() if f.status(now) == "completed"
            ),
            "file_counts": counts,
            "status": "in_progress" if counts["in_progress"] else "completed",
            "expires_at": None,
            "last_active_at": self.created_at,
            "metadata": self.metadata,
        }


def add_file(state: SandboxState, store: VectorStoreRecord, file_id: str) -> StoreFile:
    """Parse and chunk a file now; it becomes searchable after the ingestion latency."""
    rec: FileRecord = state.store.find("files", file_id, "file_id")
    now = time.time()
    error, chunks = None, []
    try:
        text = extract_text(rec.filename, rec.data)
        pieces = chunk_text(text, CHUNK_TOKENS, CHUNK_OVERLAP)
        chunks = [
            {
                "file_id": rec.id,
                "filename": rec.filename,
                "text": piece,
                "vector_store_id": store.id,
                # A chunk inside the file starts/ends mid-sentence: answers skip those.
                "cut_start": i > 0,
                "cut_end": i < len(pieces) - 1,
            }
            for i, piece in enumerate(pieces)
        ]
    except UnsupportedFile as exc:
        error = str(exc)
    item = StoreFile(
        rec.id,
        rec.filename,
        store.id,
        now,
        now + state.config.latency_ms / 1000,
        chunks,
        len(rec.data),
        error,
    )
    store.files[rec.id] = item
    return item


def search_stores(
    state: SandboxState, store_ids: list[str], query: str, limit: int = 20
) -> list[dict[str, Any]]:
    """BM25 over the completed files of the given vector stores."""
    now = time.time()
    chunks = [
        chunk
        for sid in store_ids
        if (vs := state.store.vector_stores.get(sid)) is not None
        for f in vs.files.values()
        if f.status(now) == "completed"
        for chunk in f.chunks
    ]
    return bm25(query, chunks, top_k=limit)


def unit_score(bm25_score: float) -> float:
    """A BM25 score (unbounded) squashed into the API's [0, 1] range, order kept."""
    return round(bm25_score / (bm25_score + 1.0), 6)
