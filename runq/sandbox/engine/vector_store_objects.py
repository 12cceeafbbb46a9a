"""Vector stores and their files: ingestion in the background, search over the chunks.

A file added to a store is ``in_progress`` while a child process parses and chunks it
(:mod:`.ingestion`), and for at least ``latency_ms`` after it was added (the latency
model); then ``completed``, or ``failed`` with ``last_error {code, message}``. Only
completed files are searched. Each file keeps its ``attributes`` (searches filter on
them, :mod:`.filters`) and its static chunking: ``max_chunk_size_tokens`` (100-4096,
default 800) and ``chunk_overlap_tokens`` (at most half of it, default 400); ``auto``
is 800/400 and is shown as that static strategy, as the API shows it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from runq.sandbox.engine.errors import bad_request
from runq.sandbox.engine.file_objects import FileRecord
from runq.sandbox.engine.filters import matches
from runq.sandbox.engine.ids import new_id
from runq.sandbox.engine.ingestion import Parsed
from runq.sandbox.engine.retrieval import Ranking, bm25
from runq.sandbox.engine.state import SandboxState

CHUNK_TOKENS, CHUNK_OVERLAP = 800, 400
MIN_CHUNK_TOKENS, MAX_CHUNK_TOKENS = 100, 4096


def chunking_params(strategy: Any, param: str = "chunking_strategy") -> tuple[int, int]:
    """``(max_chunk_size_tokens, chunk_overlap_tokens)`` of a request's strategy, or a 400."""
    if strategy is None:
        return CHUNK_TOKENS, CHUNK_OVERLAP
    kind = strategy.get("type") if isinstance(strategy, dict) else None
    if kind == "auto":
        return CHUNK_TOKENS, CHUNK_OVERLAP
    if kind != "static":
        raise bad_request(f"Invalid '{param}.type': expected 'auto' or 'static'.", f"{param}.type")
    static = strategy.get("static")
    if not isinstance(static, dict):
        raise bad_request(f"Missing required parameter: '{param}.static'.", f"{param}.static")
    size, overlap = static.get("max_chunk_size_tokens"), static.get("chunk_overlap_tokens")
    for name, value in (("max_chunk_size_tokens", size), ("chunk_overlap_tokens", overlap)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad_request(
                f"Invalid '{param}.static.{name}': expected an integer.", f"{param}.static.{name}"
            )
    assert isinstance(size, int) and isinstance(overlap, int)
    if not MIN_CHUNK_TOKENS <= size <= MAX_CHUNK_TOKENS:
        raise bad_request(
            f"Invalid '{param}.static.max_chunk_size_tokens': expected {MIN_CHUNK_TOKENS} "
            f"to {MAX_CHUNK_TOKENS}.",
            f"{param}.static.max_chunk_size_tokens",
        )
    if not 0 <= overlap <= size // 2:
        raise bad_request(
            f"Invalid '{param}.static.chunk_overlap_tokens': expected 0 to half of "
            "max_chunk_size_tokens.",
            f"{param}.static.chunk_overlap_tokens",
        )
    return size, overlap


@dataclass
class StoreFile:
    file_id: str
    filename: str
    vector_store_id: str
    created_at: float
    ready_at: float  # the latency model: in_progress at least until then
    chunks: list[dict[str, Any]]
    usage_bytes: int
    error: str | None = None
    error_code: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    chunk_size: int = CHUNK_TOKENS
    chunk_overlap: int = CHUNK_OVERLAP
    text: str = ""
    parsed_at: float | None = None  # set by the ingestion thread, last

    def status(self, now: float) -> str:
        if self.parsed_at is None or now < self.ready_at:
            return "in_progress"
        return "failed" if self.error else "completed"

    def to_json(self, now: float) -> dict[str, Any]:
        status = self.status(now)
        failed = status == "failed"
        return {
            "id": self.file_id,
            "object": "vector_store.file",
            "created_at": int(self.created_at),
            "vector_store_id": self.vector_store_id,
            "status": status,
            "usage_bytes": self.usage_bytes if status == "completed" else 0,
            "last_error": (
                {"code": self.error_code or "invalid_file", "message": self.error}
                if failed
                else None
            ),
            "chunking_strategy": {
                "type": "static",
                "static": {
                    "max_chunk_size_tokens": self.chunk_size,
                    "chunk_overlap_tokens": self.chunk_overlap,
                },
            },
            "attributes": self.attributes,
        }

    def ingested(self, parsed: Parsed) -> None:
        """Store a parse's outcome (called on an ingestion thread; ``parsed_at`` last)."""
        self.text = parsed.text
        self.chunks = [
            {
                "file_id": self.file_id,
                "filename": self.filename,
                "text": piece,
                "vector_store_id": self.vector_store_id,
                # A chunk inside the file starts/ends mid-sentence: answers skip those.
                "cut_start": i > 0,
                "cut_end": i < len(parsed.chunks) - 1,
            }
            for i, piece in enumerate(parsed.chunks)
        ]
        self.error, self.error_code = parsed.error, parsed.error_code
        self.parsed_at = time.time()


@dataclass
class VectorStoreRecord:
    id: str
    name: str | None
    created_at: int
    metadata: dict[str, str]
    files: dict[str, StoreFile] = field(default_factory=dict)
    batches: dict[str, list[str]] = field(default_factory=dict)
    expires_after: dict[str, Any] | None = None
    last_active_at: int | None = None
    batch_created_at: dict[str, int] = field(default_factory=dict)

    def counts(self, file_ids: list[str] | None = None, now: float | None = None) -> dict[str, int]:
        now = time.time() if now is None else now
        ids = list(self.files) if file_ids is None else file_ids
        statuses = [self.files[i].status(now) for i in ids if i in self.files]
        counts = {s: statuses.count(s) for s in ("in_progress", "completed", "failed")}
        return {**counts, "cancelled": 0, "total": len(statuses)}

    def touch(self) -> None:
        """The store was used (a file added, a search): ``last_active_at`` moves."""
        self.last_active_at = int(time.time())

    def to_json(self) -> dict[str, Any]:
        now = time.time()
        counts = self.counts(now=now)
        active = self.last_active_at or self.created_at
        out: dict[str, Any] = {
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
            "last_active_at": active,
            "metadata": self.metadata,
        }
        if self.expires_after:
            out["expires_after"] = self.expires_after
            out["expires_at"] = active + int(self.expires_after["days"]) * 86400
        return out


def new_store(
    state: SandboxState,
    name: str | None = None,
    metadata: dict[str, str] | None = None,
    expires_after: dict[str, Any] | None = None,
) -> VectorStoreRecord:
    """An empty vector store, registered in the state."""
    rec = VectorStoreRecord(
        new_id("vs"),
        name or "",
        int(time.time()),
        dict(metadata or {}),
        expires_after=expires_after,
    )
    state.store.vector_stores[rec.id] = rec
    return rec


def add_file(
    state: SandboxState,
    store: VectorStoreRecord,
    file_id: str,
    attributes: dict[str, Any] | None = None,
    chunking: tuple[int, int] = (CHUNK_TOKENS, CHUNK_OVERLAP),
    param: str = "file_id",
) -> StoreFile:
    """Add a file to ``store`` now and parse it in the background (see :mod:`.ingestion`)."""
    rec: FileRecord = state.store.find("files", file_id, param)
    now = time.time()
    item = StoreFile(
        rec.id,
        rec.filename,
        store.id,
        now,
        now + state.config.latency_ms / 1000,
        [],
        len(rec.data),
        attributes=dict(attributes or {}),
        chunk_size=chunking[0],
        chunk_overlap=chunking[1],
    )
    store.files[rec.id] = item
    store.touch()
    state.ingestor.submit(rec.filename, rec.data, chunking, item.ingested)
    return item


def resume_ingestion(state: SandboxState) -> None:
    """Parse again the files a snapshot saved while they were still being parsed."""
    for store in state.store.vector_stores.values():
        for item in store.files.values():
            if item.parsed_at is not None:
                continue
            rec = state.store.files.get(item.file_id)
            if rec is None:
                item.ingested(Parsed(error_code="server_error", error="The file was deleted."))
                continue
            chunking = (item.chunk_size, item.chunk_overlap)
            state.ingestor.submit(rec.filename, rec.data, chunking, item.ingested)


def search_stores(
    state: SandboxState,
    store_ids: list[str],
    query: str,
    limit: int = 20,
    *,
    filters: dict[str, Any] | None = None,
    ranking: Ranking | None = None,
) -> list[dict[str, Any]]:
    """BM25 over the completed files of the given stores that pass ``filters``.

    Each hit carries its file's ``attributes``.
    """
    now = time.time()
    files: list[StoreFile] = []
    for sid in store_ids:
        vs = state.store.vector_stores.get(sid)
        if vs is None:
            continue
        vs.touch()
        files += [
            f
            for f in vs.files.values()
            if f.status(now) == "completed" and matches(filters, f.attributes)
        ]
    chunks = [chunk for f in files for chunk in f.chunks]
    key = tuple((f.vector_store_id, f.file_id, f.parsed_at) for f in files)
    hits = bm25(query, chunks, top_k=limit, ranking=ranking, cache_key=key)
    attributes = {(f.vector_store_id, f.file_id): f.attributes for f in files}
    return [{**h, "attributes": attributes[(h["vector_store_id"], h["file_id"])]} for h in hits]
