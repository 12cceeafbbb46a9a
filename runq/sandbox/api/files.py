"""Files API: multipart upload, retrieve, list, delete and content.

An upload is read within ``max_upload_bytes`` (:mod:`runq.sandbox.api.uploads`).
"""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from runq.sandbox.api.crud import Collection, page
from runq.sandbox.api.http import get_state, ok
from runq.sandbox.api.uploads import read_form, too_large
from runq.sandbox.engine.errors import bad_request
from runq.sandbox.engine.file_objects import PURPOSES, FileRecord
from runq.sandbox.engine.ids import new_id

FILES = Collection[FileRecord]("files", "file_id", "file", FileRecord.to_json)


async def upload_file(request: Request) -> Response:
    state = get_state(request)
    limit = state.config.max_upload_bytes
    form = await read_form(request, limit)
    try:
        upload = form.get("file")
        purpose = form.get("purpose")
        if upload is None or isinstance(upload, str):
            raise bad_request("Missing required parameter: 'file'.", "file")
        if not isinstance(purpose, str) or purpose not in PURPOSES:
            raise bad_request(
                f"Invalid 'purpose': expected one of {', '.join(PURPOSES)}.", "purpose"
            )
        if limit and (upload.size or 0) > limit:
            raise too_large(limit, upload.size or 0)
        data = await upload.read()
    finally:
        await form.close()
    rec = FileRecord(new_id("file"), upload.filename or "upload", purpose, int(time.time()), data)
    state.store.files[rec.id] = rec
    return ok(rec.to_json())


async def list_files(request: Request) -> Response:
    """Like every list, plus the ``purpose`` filter."""
    purpose = request.query_params.get("purpose")
    files = FILES.table(request).values()
    items = [f.to_json() for f in files if not purpose or f.purpose == purpose]
    return ok(page(items, request, default_order="desc"))


async def file_content(request: Request) -> Response:
    return Response(FILES.get(request).data, media_type="application/octet-stream")


routes = [
    Route("/v1/files", upload_file, methods=["POST"]),
    Route("/v1/files", list_files, methods=["GET"]),
    Route("/v1/files/{file_id}", FILES.retrieve, methods=["GET"]),
    Route("/v1/files/{file_id}", FILES.delete, methods=["DELETE"]),
    Route("/v1/files/{file_id}/content", file_content, methods=["GET"]),
]
