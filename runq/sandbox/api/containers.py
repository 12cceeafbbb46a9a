"""Containers API: containers (create, retrieve, list, delete) and their files (create
from an upload or a ``file_id``, retrieve, list, content, delete).

The containers and their directories are :mod:`runq.sandbox.engine.containers`; the
code interpreter (:mod:`runq.sandbox.api.code_interpreter`) runs code in them. An
expired container is still retrieved and listed (``status: "expired"``), without
files.
"""

from __future__ import annotations

import mimetypes

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from runq.sandbox.api import validation
from runq.sandbox.api.code_interpreter import copy_files
from runq.sandbox.api.crud import deleted, page
from runq.sandbox.api.http import get_state, ok, read_json
from runq.sandbox.api.uploads import read_form, too_large
from runq.sandbox.engine.containers import MEMORY_LIMITS, ContainerRecord
from runq.sandbox.engine.errors import bad_request

CREATE_PARAMS = frozenset(
    ("name", "file_ids", "expires_after", "memory_limit", "skills", "network_policy")
)


def _container(request: Request) -> ContainerRecord:
    return get_state(request).containers.get(request.path_params["container_id"])


def _idle_minutes(expires_after: object) -> int | None:
    if expires_after is None:
        return None
    if not isinstance(expires_after, dict):
        raise bad_request("Invalid 'expires_after': expected an object.", "expires_after")
    if expires_after.get("anchor") != "last_active_at":
        raise bad_request(
            "Invalid 'expires_after.anchor': expected 'last_active_at'.", "expires_after.anchor"
        )
    minutes = expires_after.get("minutes")
    if isinstance(minutes, bool) or not isinstance(minutes, int) or not 1 <= minutes <= 1440:
        raise bad_request(
            "Invalid 'expires_after.minutes': expected an integer from 1 to 1440.",
            "expires_after.minutes",
        )
    return minutes


async def create_container(request: Request) -> Response:
    state = get_state(request)
    body = await read_json(request)
    validation.known_parameters(body, CREATE_PARAMS)
    name = body.get("name")
    if not isinstance(name, str) or not name:
        raise bad_request("Missing required parameter: 'name'.", "name")
    memory = body.get("memory_limit") or "1g"
    if memory not in MEMORY_LIMITS:
        raise bad_request(
            f"Invalid 'memory_limit': expected one of {', '.join(MEMORY_LIMITS)}.", "memory_limit"
        )
    minutes = _idle_minutes(body.get("expires_after"))
    for file_id in body.get("file_ids") or []:
        state.store.find("files", str(file_id), "file_ids")
    rec = state.containers.create(name, minutes, memory)
    copy_files(state, rec, body.get("file_ids"), "file_ids")
    return ok(rec.to_json())


async def list_containers(request: Request) -> Response:
    pool = get_state(request).containers
    pool.sweep()
    name = request.query_params.get("name")
    items = [c.to_json() for c in pool.containers.values() if not name or c.name == name]
    return ok(page(items, request))


async def retrieve_container(request: Request) -> Response:
    return ok(_container(request).to_json())


async def delete_container(request: Request) -> Response:
    container_id = request.path_params["container_id"]
    get_state(request).containers.delete(container_id)
    return ok(deleted(container_id, "container.deleted"))


async def create_file(request: Request) -> Response:
    """A multipart upload (``file``) or a JSON body naming an uploaded ``file_id``."""
    state = get_state(request)
    pool = state.containers
    rec = pool.running(request.path_params["container_id"])
    if "multipart/form-data" in request.headers.get("content-type", ""):
        limit = state.config.max_upload_bytes
        form = await read_form(request, limit)
        try:
            upload = form.get("file")
            if upload is None or isinstance(upload, str):
                raise bad_request("Missing required parameter: 'file'.", "file")
            if limit and (upload.size or 0) > limit:
                raise too_large(limit, upload.size or 0)
            data = await upload.read()
        finally:
            await form.close()
        cfile = pool.add_file(rec, upload.filename or "upload", data)
        return ok(cfile.to_json())
    body = await read_json(request)
    validation.known_parameters(body, ("file_id",))
    file_id = body.get("file_id")
    if not isinstance(file_id, str):
        raise bad_request("Missing required parameter: 'file_id' (or upload a 'file').", "file_id")
    upload = state.store.find("files", file_id, "file_id")
    cfile = pool.add_file(rec, upload.filename, upload.data)
    return ok(cfile.to_json())


async def list_files(request: Request) -> Response:
    rec = _container(request)
    return ok(page([f.to_json() for f in rec.files.values()], request))


async def retrieve_file(request: Request) -> Response:
    rec = _container(request)
    return ok(get_state(request).containers.file(rec, request.path_params["file_id"]).to_json())


async def file_content(request: Request) -> Response:
    pool = get_state(request).containers
    rec = _container(request)
    cfile = pool.file(rec, request.path_params["file_id"])
    media = mimetypes.guess_type(cfile.name)[0] or "application/octet-stream"
    return Response(pool.read(rec, cfile), media_type=media)


async def delete_file(request: Request) -> Response:
    file_id = request.path_params["file_id"]
    get_state(request).containers.delete_file(_container(request), file_id)
    return ok(deleted(file_id, "container.file.deleted"))


routes = [
    Route("/v1/containers", create_container, methods=["POST"]),
    Route("/v1/containers", list_containers, methods=["GET"]),
    Route("/v1/containers/{container_id}", retrieve_container, methods=["GET"]),
    Route("/v1/containers/{container_id}", delete_container, methods=["DELETE"]),
    Route("/v1/containers/{container_id}/files", create_file, methods=["POST"]),
    Route("/v1/containers/{container_id}/files", list_files, methods=["GET"]),
    Route("/v1/containers/{container_id}/files/{file_id}", retrieve_file, methods=["GET"]),
    Route("/v1/containers/{container_id}/files/{file_id}", delete_file, methods=["DELETE"]),
    Route("/v1/containers/{container_id}/files/{file_id}/content", file_content, methods=["GET"]),
]
