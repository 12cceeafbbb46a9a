"""Vector Stores API: stores, their files and file batches, and search.

Ingestion (in the background, :mod:`runq.sandbox.engine.ingestion`), chunking, filters
and BM25 search are the engine's (:mod:`runq.sandbox.engine.vector_store_objects`);
these routes validate bodies and shape the objects and pages.
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
from runq.sandbox.engine.file_search import max_results
from runq.sandbox.engine.filters import validate, validate_attributes
from runq.sandbox.engine.ids import new_id
from runq.sandbox.engine.retrieval import Ranking, unit_score
from runq.sandbox.engine.vector_store_objects import (
    StoreFile,
    VectorStoreRecord,
    add_file,
    chunking_params,
    new_store,
    search_stores,
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


def _expires_after(body: dict[str, Any]) -> dict[str, Any] | None:
    value = body.get("expires_after")
    if value is None:
        return None
    days = value.get("days") if isinstance(value, dict) else None
    if not isinstance(value, dict) or value.get("anchor") != "last_active_at":
        raise bad_request(
            "Invalid 'expires_after.anchor': expected 'last_active_at'.", "expires_after.anchor"
        )
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= 365:
        raise bad_request("Invalid 'expires_after.days': expected 1 to 365.", "expires_after.days")
    return {"anchor": "last_active_at", "days": days}


async def create_store(request: Request) -> Response:
    state = get_state(request)
    body = await read_json(request)
    ids = _file_ids(body, required=False)
    chunking = chunking_params(body.get("chunking_strategy"))
    expires = _expires_after(body)
    for file_id in ids:  # every id known before the store exists
        state.store.find("files", file_id, "file_ids")
    rec = new_store(state, body.get("name"), metadata(body), expires)
    for file_id in ids:
        add_file(state, rec, file_id, chunking=chunking, param="file_ids")
    return ok(rec.to_json())


async def update_store(request: Request) -> Response:
    """``name``, ``metadata`` and ``expires_after`` (``null`` removes it)."""
    rec = VECTOR_STORES.get(request)
    body = await read_json(request)
    expires = _expires_after(body)
    if "name" in body:
        name = body["name"]
        if name is not None and not isinstance(name, str):
            raise bad_request("Invalid 'name': expected a string.", "name")
        rec.name = name or ""
    if body.get("metadata") is not None:
        rec.metadata = metadata(body)
    if "expires_after" in body:
        rec.expires_after = expires
    rec.touch()
    return ok(rec.to_json())


def _add(state: Any, rec: VectorStoreRecord, spec: dict[str, Any], param: str) -> StoreFile:
    """Add one file given as ``{file_id, attributes, chunking_strategy}``."""
    file_id = spec.get("file_id")
    if not isinstance(file_id, str):
        raise bad_request(f"Missing required parameter: '{param}file_id'.", f"{param}file_id")
    attributes = validate_attributes(spec.get("attributes"), f"{param}attributes")
    chunking = chunking_params(spec.get("chunking_strategy"), f"{param}chunking_strategy")
    return add_file(state, rec, file_id, attributes, chunking, f"{param}file_id")


async def create_store_file(request: Request) -> Response:
    rec = VECTOR_STORES.get(request)
    item = _add(get_state(request), rec, await read_json(request), "")
    return ok(item.to_json(time.time()))


def _files_page(rec: VectorStoreRecord, ids: list[str], request: Request) -> dict[str, Any]:
    """A page of the store's files ``ids``, with the ``filter`` on status."""
    now = time.time()
    wanted = request.query_params.get("filter")
    items = [rec.files[i].to_json(now) for i in ids if i in rec.files]
    return page([i for i in items if not wanted or i["status"] == wanted], request)


async def list_store_files(request: Request) -> Response:
    rec = VECTOR_STORES.get(request)
    return ok(_files_page(rec, list(rec.files), request))


def _store_file(request: Request) -> tuple[VectorStoreRecord, StoreFile]:
    rec = VECTOR_STORES.get(request)
    return rec, find_in(rec.files, request.path_params["file_id"], "file")


async def retrieve_store_file(request: Request) -> Response:
    return ok(_store_file(request)[1].to_json(time.time()))


async def update_store_file(request: Request) -> Response:
    """Replace a file's ``attributes`` (searches filter on them at once)."""
    _, item = _store_file(request)
    body = await read_json(request)
    if "attributes" not in body:
        raise bad_request("Missing required parameter: 'attributes'.", "attributes")
    item.attributes = validate_attributes(body["attributes"])
    return ok(item.to_json(time.time()))


async def store_file_content(request: Request) -> Response:
    """The file's parsed text, as one page (empty until it is ingested)."""
    _, item = _store_file(request)
    done = item.status(time.time()) == "completed"
    data = [{"type": "text", "text": item.text}] if done and item.text else []
    return ok(
        {
            "object": "vector_store.file_content.page",
            "data": data,
            "has_more": False,
            "next_page": None,
        }
    )


async def delete_store_file(request: Request) -> Response:
    """Remove a file from the store (its chunks stop being searched); the file remains."""
    rec, item = _store_file(request)
    del rec.files[item.file_id]
    return ok(deleted(item.file_id, "vector_store.file.deleted"))


def _batch_json(rec: VectorStoreRecord, batch_id: str) -> dict[str, Any]:
    ids = rec.batches[batch_id]
    counts = rec.counts(ids)
    created = rec.batch_created_at.get(batch_id)
    if created is None:
        created = int(min((rec.files[i].created_at for i in ids if i in rec.files), default=0))
    return {
        "id": batch_id,
        "object": "vector_store.files_batch",
        "created_at": created or int(time.time()),
        "vector_store_id": rec.id,
        "status": "in_progress" if counts["in_progress"] else "completed",
        "file_counts": counts,
    }


def _batch_specs(body: dict[str, Any]) -> tuple[list[dict[str, Any]], str]:
    """``files: [{file_id, attributes, chunking_strategy}]``, or ``file_ids`` sharing the
    body's ``attributes`` and ``chunking_strategy``: one spec per file."""
    files = body.get("files")
    if files is not None:
        if "file_ids" in body:
            raise bad_request("Give either 'file_ids' or 'files', not both.", "files")
        if not isinstance(files, list) or not files or not all(isinstance(f, dict) for f in files):
            raise bad_request("Invalid 'files': expected a non-empty array of objects.", "files")
        return files, "files[{i}]."
    shared = {k: body[k] for k in ("attributes", "chunking_strategy") if k in body}
    return [{"file_id": i, **shared} for i in _file_ids(body, required=True)], ""


async def create_batch(request: Request) -> Response:
    state = get_state(request)
    rec = VECTOR_STORES.get(request)
    specs, param = _batch_specs(await read_json(request))
    for i, spec in enumerate(specs):  # validate everything before adding anything
        where = param.format(i=i)
        chunking_params(spec.get("chunking_strategy"), f"{where}chunking_strategy")
        validate_attributes(spec.get("attributes"), f"{where}attributes")
        state.store.find("files", str(spec.get("file_id")), f"{where}file_id")
    ids = [_add(state, rec, spec, param.format(i=i)).file_id for i, spec in enumerate(specs)]
    batch_id = new_id("vsfb")
    rec.batches[batch_id] = ids
    rec.batch_created_at[batch_id] = int(time.time())
    return ok(_batch_json(rec, batch_id))


def _batch(request: Request) -> tuple[VectorStoreRecord, str]:
    rec = VECTOR_STORES.get(request)
    batch_id = request.path_params["batch_id"]
    find_in(rec.batches, batch_id, "file batch")
    return rec, batch_id


async def retrieve_batch(request: Request) -> Response:
    return ok(_batch_json(*_batch(request)))


async def list_batch_files(request: Request) -> Response:
    """The batch's files still in the store, paged and filtered like the store's."""
    rec, batch_id = _batch(request)
    return ok(_files_page(rec, rec.batches[batch_id], request))


async def search(request: Request) -> Response:
    state = get_state(request)
    rec = VECTOR_STORES.get(request)
    body = await read_json(request)
    query = body.get("query")
    given = query if isinstance(query, list) else [query]
    queries = [q for q in given if isinstance(q, str) and q]
    if not queries or len(queries) != len(given):
        raise bad_request("Missing required parameter: 'query'.", "query")
    limit = max_results(body.get("max_num_results"), "max_num_results", default=10)
    filters = validate(body.get("filters"))
    ranking = Ranking.parse(body.get("ranking_options"))
    hits = search_stores(
        state, [rec.id], " ".join(queries), limit, filters=filters, ranking=ranking
    )
    data = [
        {
            "file_id": h["file_id"],
            "filename": h["filename"],
            "score": unit_score(h["score"]),
            "attributes": h["attributes"],
            "content": [{"type": "text", "text": h["text"]}],
        }
        for h in hits
    ]
    return ok(
        {
            "object": "vector_store.search_results.page",
            "search_query": queries,
            "data": data,
            "has_more": False,
            "next_page": None,
        }
    )


_STORE = "/v1/vector_stores/{vs_id}"
_FILE = _STORE + "/files/{file_id}"
_BATCH = _STORE + "/file_batches/{batch_id}"
routes = [
    Route("/v1/vector_stores", create_store, methods=["POST"]),
    Route("/v1/vector_stores", VECTOR_STORES.list, methods=["GET"]),
    Route(_STORE, VECTOR_STORES.retrieve, methods=["GET"]),
    Route(_STORE, update_store, methods=["POST"]),
    Route(_STORE, VECTOR_STORES.delete, methods=["DELETE"]),
    Route(_STORE + "/files", create_store_file, methods=["POST"]),
    Route(_STORE + "/files", list_store_files, methods=["GET"]),
    Route(_FILE, retrieve_store_file, methods=["GET"]),
    Route(_FILE, update_store_file, methods=["POST"]),
    Route(_FILE, delete_store_file, methods=["DELETE"]),
    Route(_FILE + "/content", store_file_content, methods=["GET"]),
    Route(_STORE + "/file_batches", create_batch, methods=["POST"]),
    Route(_BATCH, retrieve_batch, methods=["GET"]),
    Route(_BATCH + "/files", list_batch_files, methods=["GET"]),
    Route(_STORE + "/search", search, methods=["POST"]),
]
