"""Vector stores: files are parsed and chunked, then searchable once ingested.

Ingestion is asynchronous as seen from the client: a file added at ``t`` reports
``in_progress`` until ``t + latency_ms`` and then ``completed`` (or ``failed`` with
``last_error`` when its format cannot be read). Parsing and chunking happen at once, at
add time, so nothing runs in the background. Chunks are 800 tokens with 400 overlap.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from runq.sandbox.api.files import lookup_file
from runq.sandbox.api.http import metadata, ok, page, read_json
from runq.sandbox.engine.documents import UnsupportedFile, extract_text
from runq.sandbox.engine.errors import bad_request, not_found
from runq.sandbox.engine.ids import new_id
from runq.sandbox.engine.retrieval import bm25
from runq.sandbox.engine.state import SandboxState, get_state
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
    rec = lookup_file(state, file_id, "file_id")
    now = time.time()
    error, chunks = None, []
    try:
        text = extract_text(rec.filename, rec.data)
        chunks = [
            {"file_id": rec.id, "filename": rec.filename, "text": c, "vector_store_id": store.id}
            for c in chunk_text(text, CHUNK_TOKENS, CHUNK_OVERLAP)
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


def lookup_store(state: SandboxState, store_id: str) -> VectorStoreRecord:
    rec = state.store.vector_stores.get(store_id)
    if rec is None:
        raise not_found("vector store", store_id)
    return rec


def _file_ids(body: dict[str, Any], required: bool) -> list[str]:
    ids = body.get("file_ids") or []
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise bad_request("Invalid 'file_ids': expected an array of file ids.", "file_ids")
    if required and not ids:
        raise bad_request("Missing required parameter: 'file_ids'.", "file_ids")
    return ids


async def create_store(request: Request) -> Response:
    state = get_state(request)
    body = await read_json(request)
    name = body.get("name")
    rec = VectorStoreRecord(new_id("vs"), name or "", int(time.time()), metadata(body))
    for file_id in _file_ids(body, required=False):
        add_file(state, rec, file_id)
    state.store.vector_stores[rec.id] = rec
    return ok(rec.to_json())


async def list_stores(request: Request) -> Response:
    stores = get_state(request).store.vector_stores.values()
    return ok(page([s.to_json() for s in stores], request))


async def retrieve_store(request: Request) -> Response:
    return ok(lookup_store(get_state(request), request.path_params["vs_id"]).to_json())


async def delete_store(request: Request) -> Response:
    state = get_state(request)
    rec = lookup_store(state, request.path_params["vs_id"])
    del state.store.vector_stores[rec.id]
    return ok({"id": rec.id, "object": "vector_store.deleted", "deleted": True})


async def create_store_file(request: Request) -> Response:
    state = get_state(request)
    rec = lookup_store(state, request.path_params["vs_id"])
    body = await read_json(request)
    file_id = body.get("file_id")
    if not isinstance(file_id, str):
        raise bad_request("Missing required parameter: 'file_id'.", "file_id")
    return ok(add_file(state, rec, file_id).to_json(time.time()))


async def list_store_files(request: Request) -> Response:
    rec = lookup_store(get_state(request), request.path_params["vs_id"])
    now = time.time()
    wanted = request.query_params.get("filter")
    items = [f.to_json(now) for f in rec.files.values()]
    return ok(page([i for i in items if not wanted or i["status"] == wanted], request))


async def retrieve_store_file(request: Request) -> Response:
    rec = lookup_store(get_state(request), request.path_params["vs_id"])
    item = rec.files.get(request.path_params["file_id"])
    if item is None:
        raise not_found("file", request.path_params["file_id"])
    return ok(item.to_json(time.time()))


async def delete_store_file(request: Request) -> Response:
    """Remove a file from the store (its chunks stop being searched); the file remains."""
    rec = lookup_store(get_state(request), request.path_params["vs_id"])
    file_id = request.path_params["file_id"]
    if rec.files.pop(file_id, None) is None:
        raise not_found("file", file_id)
    return ok({"id": file_id, "object": "vector_store.file.deleted", "deleted": True})


def _batch_json(rec: VectorStoreRecord, batch_id: str) -> dict[str, Any]:
    ids = rec.batches[batch_id]
    counts = rec.counts(ids)
    created = min((rec.files[i].created_at for i in ids), default=time.time())
    return {
        "id": batch_id,
        "object": "vector_store.files_batch",
        "created_at": int(created),
        "vector_store_id": rec.id,
        "status": "in_progress" if counts["in_progress"] else "completed",
        "file_counts": counts,
    }


async def create_batch(request: Request) -> Response:
    state = get_state(request)
    rec = lookup_store(state, request.path_params["vs_id"])
    ids = _file_ids(await read_json(request), required=True)
    for file_id in ids:
        add_file(state, rec, file_id)
    batch_id = new_id("vsfb")
    rec.batches[batch_id] = ids
    return ok(_batch_json(rec, batch_id))


async def retrieve_batch(request: Request) -> Response:
    rec = lookup_store(get_state(request), request.path_params["vs_id"])
    batch_id = request.path_params["batch_id"]
    if batch_id not in rec.batches:
        raise not_found("file batch", batch_id)
    return ok(_batch_json(rec, batch_id))


async def search(request: Request) -> Response:
    state = get_state(request)
    rec = lookup_store(state, request.path_params["vs_id"])
    body = await read_json(request)
    query = body.get("query")
    if isinstance(query, list):
        query = " ".join(str(q) for q in query)
    if not isinstance(query, str) or not query:
        raise bad_request("Missing required parameter: 'query'.", "query")
    limit = body.get("max_num_results", 10)
    if not isinstance(limit, int) or not 1 <= limit <= 50:
        raise bad_request("Invalid 'max_num_results': expected 1 to 50.", "max_num_results")
    hits = search_stores(state, [rec.id], query, limit)
    data = [
        {
            "file_id": h["file_id"],
            "filename": h["filename"],
            "score": unit_score(h["score"]),
            "attributes": {},
            "content": [{"type": "text", "text": h["text"]}],
        }
        for h in hits
    ]
    return ok(
        {
            "object": "vector_store.search_results.page",
            "search_query": [query],
            "data": data,
            "has_more": False,
            "next_page": None,
        }
    )


routes = [
    Route("/v1/vector_stores", create_store, methods=["POST"]),
    Route("/v1/vector_stores", list_stores, methods=["GET"]),
    Route("/v1/vector_stores/{vs_id}", retrieve_store, methods=["GET"]),
    Route("/v1/vector_stores/{vs_id}", delete_store, methods=["DELETE"]),
    Route("/v1/vector_stores/{vs_id}/files", create_store_file, methods=["POST"]),
    Route("/v1/vector_stores/{vs_id}/files", list_store_files, methods=["GET"]),
    Route("/v1/vector_stores/{vs_id}/files/{file_id}", retrieve_store_file, methods=["GET"]),
    Route("/v1/vector_stores/{vs_id}/files/{file_id}", delete_store_file, methods=["DELETE"]),
    Route("/v1/vector_stores/{vs_id}/file_batches", create_batch, methods=["POST"]),
    Route("/v1/vector_stores/{vs_id}/file_batches/{batch_id}", retrieve_batch, methods=["GET"]),
    Route("/v1/vector_stores/{vs_id}/search", search, methods=["POST"]),
]
