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

from runq.sandbox.api.crud import Collection, deleted, find_in, page
from runq.sandbox.api.http import get_state, metadata, ok, read_json
from runq.sandbox.engine.errors import bad_request
from runq.sandbox.engine.ids import new_id
from runq.sandbox.engine.vector_store_objects import (
    VectorStoreRecord,
    add_file,
    search_stores,
    unit_score,
)

VECTOR_STORES = Collection[VectorStoreRecord](
    "vector_stores", "vs_id", "vector_store.deleted", VectorStoreRecord.to_json
)


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


async def create_store_file(request: Request) -> Response:
    state = get_state(request)
    rec = VECTOR_STORES.get(request)
    body = await read_json(request)
    file_id = body.get("file_id")
    if not isinstance(file_id, str):
        raise bad_request("Missing required parameter: 'file_id'.", "file_id")
    return ok(add_file(state, rec, file_id).to_json(time.time()))


async def list_store_files(request: Request) -> Response:
    rec = VECTOR_STORES.get(request)
    now = time.time()
    wanted = request.query_params.get("filter")
    items = [f.to_json(now) for f in rec.files.values()]
    return ok(page([i for i in items if not wanted or i["status"] == wanted], request))


async def retrieve_store_file(request: Request) -> Response:
    item = find_in(VECTOR_STORES.get(request).files, request.path_params["file_id"], "file")
    return ok(item.to_json(time.time()))


async def delete_store_file(request: Request) -> Response:
    """Remove a file from the store (its chunks stop being searched); the file remains."""
    rec = VECTOR_STORES.get(request)
    file_id = request.path_params["file_id"]
    find_in(rec.files, file_id, "file")
    del rec.files[file_id]
    return ok(deleted(file_id, "vector_store.file.deleted"))


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
    rec = VECTOR_STORES.get(request)
    ids = _file_ids(await read_json(request), required=True)
    for file_id in ids:
        add_file(state, rec, file_id)
    batch_id = new_id("vsfb")
    rec.batches[batch_id] = ids
    return ok(_batch_json(rec, batch_id))


async def retrieve_batch(request: Request) -> Response:
    rec = VECTOR_STORES.get(request)
    batch_id = request.path_params["batch_id"]
    find_in(rec.batches, batch_id, "file batch")
    return ok(_batch_json(rec, batch_id))


async def search(request: Request) -> Response:
    state = get_state(request)
    rec = VECTOR_STORES.get(request)
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
    Route("/v1/vector_stores", VECTOR_STORES.list, methods=["GET"]),
    Route("/v1/vector_stores/{vs_id}", VECTOR_STORES.retrieve, methods=["GET"]),
    Route("/v1/vector_stores/{vs_id}", VECTOR_STORES.delete, methods=["DELETE"]),
    Route("/v1/vector_stores/{vs_id}/files", create_store_file, methods=["POST"]),
    Route("/v1/vector_stores/{vs_id}/files", list_store_files, methods=["GET"]),
    Route("/v1/vector_stores/{vs_id}/files/{file_id}", retrieve_store_file, methods=["GET"]),
    Route("/v1/vector_stores/{vs_id}/files/{file_id}", delete_store_file, methods=["DELETE"]),
    Route("/v1/vector_stores/{vs_id}/file_batches", create_batch, methods=["POST"]),
    Route("/v1/vector_stores/{vs_id}/file_batches/{batch_id}", retrieve_batch, methods=["GET"]),
    Route("/v1/vector_stores/{vs_id}/search", search, methods=["POST"]),
]
