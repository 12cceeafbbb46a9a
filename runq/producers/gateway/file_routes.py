"""The gateway's file endpoints: the files a job's run produced, to its own tenant only.

`GET /v1/jobs/{id}/files` lists them (the result's `files`, each stored one with its
URL); `GET /v1/jobs/{id}/files/{name}` serves one. Another tenant's job answers 404,
as for a job that does not exist. A file is served as an attachment, with `nosniff`
and a sandboxing CSP: the code interpreter may write HTML or SVG, which a browser must
not run on the gateway's origin.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException

from runq.producers.gateway.routes import ERRORS, JobId, Tenant, client_of, owned_job
from runq.runs.files.produced import FileGoneError, load_one

router = APIRouter()
FILE_NAME_PATTERN = r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$"


class FileListed(BaseModel):
    """A file the run produced; `stored: false` ones were over a cap (`reason`)."""

    model_config = ConfigDict(extra="allow")

    name: str
    bytes: int | None = None
    content_type: str | None = None
    sha256: str | None = None
    stored: bool
    url: str | None = Field(default=None, description="where to download it (stored files)")


class JobFiles(BaseModel):
    job_id: str
    status: str
    files: list[FileListed]


FILE_RESPONSES: dict[int | str, dict[str, Any]] = {
    **ERRORS,
    200: {"content": {"application/octet-stream": {}}, "description": "the file's bytes"},
}


@router.get("/v1/jobs/{job_id}/files", response_model=JobFiles, responses=ERRORS)
async def list_files(job_id: JobId, request: Request, owner: Tenant) -> Any:
    """The files the job's run produced (empty until it has ended)."""
    job = await owned_job(request, job_id, owner)
    listed = []
    for entry in job.files:
        url = f"/v1/jobs/{job.id}/files/{entry['name']}" if entry.get("stored") else None
        shown = {k: v for k, v in entry.items() if k not in ("storage", "ref")}
        listed.append({**shown, "url": url})
    return {"job_id": job.id, "status": job.status, "files": listed}


@router.get("/v1/jobs/{job_id}/files/{name}", response_class=Response, responses=FILE_RESPONSES)
async def get_file(
    job_id: JobId,
    name: Annotated[str, Path(pattern=FILE_NAME_PATTERN)],
    request: Request,
    owner: Tenant,
) -> Response:
    """One file's bytes, as an attachment."""
    job = await owned_job(request, job_id, owner)
    entry = next((e for e in job.files if e.get("name") == name and e.get("stored")), None)
    if entry is None:
        raise HTTPException(404, f"no file {name} in job {job_id}")
    client = client_of(request)
    try:
        found = await asyncio.to_thread(
            load_one, job.id, entry, redis=client.sync.redis, settings=client.settings
        )
    except FileGoneError as err:
        raise HTTPException(404, str(err)) from None
    headers = {
        "Content-Disposition": f'attachment; filename="{found.name}"',
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "sandbox; default-src 'none'",
        "Cache-Control": "no-store",
    }
    return Response(found.content, media_type=found.content_type, headers=headers)
