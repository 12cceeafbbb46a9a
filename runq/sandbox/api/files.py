"""Files API: multipart upload, retrieve, list, delete and content."""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from runq.sandbox.api.http import get_state, ok, page
from runq.sandbox.engine.errors import bad_request
from runq.sandbox.engine.file_objects import PURPOSES, FileRecord
from runq.sandbox.engine.ids import new_id


def _lookup(request: Request) -> FileRecord:
    rec: FileRecord = get_state(request).store.find("files", request.path_params["file_id"])
    return rec


async def upload_file(request: Request) -> Response:
    state = get_state(request)
    try:
        form = await request.form()
    except Exception as exc:  # not multipart at all
        raise bad_request("Expected a multipart/form-data body with 'file' and 'purpose'.") from exc
    upload = form.get("file")
    purpose = form.get("purpose")
    if upload is None or isinstance(upload, str):
        raise bad_request("Missing required parameter: 'file'.", "file")
    if not isinstance(purpose, str) or purpose not in PURPOSES:
        raise bad_request(f"Invalid 'purpose': expected one of {', '.join(PURPOSES)}.", "purpose")
    data = await upload.read()
    rec = FileRecord(new_id("file"), upload.filename or "upload", purpose, int(time.time()), data)
    state.store.files[rec.id] = rec
    return ok(rec.to_json())


async def list_files(request: Request) -> Response:
    state = get_state(request)
    purpose = request.query_params.get("purpose")
    items = [f.to_json() for f in state.store.files.values() if not purpose or f.purpose == purpose]
    return ok(page(items, request, default_order="desc"))


async def retrieve_file(request: Request) -> Response:
    return ok(_lookup(request).to_json())


async def delete_file(request: Request) -> Response:
    state = get_state(request)
    rec = _lookup(request)
    del state.store.files[rec.id]
    return ok({"id": rec.id, "object": "file", "deleted": True})


async def file_content(request: Request) -> Response:
    rec = _lookup(request)
    return Response(rec.data, media_type="application/octet-stream")


routes = [
    Route("/v1/files", upload_file, methods=["POST"]),
    Route("/v1/files", list_files, methods=["GET"]),
    Route("/v1/files/{file_id}", retrieve_file, methods=["GET"]),
    Route("/v1/files/{file_id}", delete_file, methods=["DELETE"]),
    Route("/v1/files/{file_id}/content", file_content, methods=["GET"]),
]
