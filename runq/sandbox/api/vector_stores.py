"""Vector Stores API: stores, their files and file batches, and search.

Ingestion, chunking and BM25 search are the engine's
(:mod:`runq.sandbox.engine.vector_store_objects`); these routes validate bodies and
shape the pages.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from runq.sandbox.api.http import get_state, metadata, ok, page, read_json
from runq.sandbox.engine.errors import bad_request, not_found
from runq.sandbox.engine.ids import new_id
from runq.sandbox.engine.state import SandboxState
from runq.sandbox.engine.vector_store_objects import (
    VectorStoreRecord,
    add_file,
    search_stores,
    unit_score,
)


def lookup_store(state: SandboxState, store_id: str) -> VectorStoreRecord:
    rec: VectorStoreRecord = state.store.find("vector_stores", store_id)
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
