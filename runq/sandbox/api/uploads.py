"""Reading a multipart upload without taking more than ``max_upload_bytes`` from it.

The sandbox keeps uploaded files in memory, so a file's size is the client's to choose
only up to a limit (``max_upload_bytes``, 50 MiB by default; OpenAI's own is 512 MB).
It is enforced before the body is read where possible, and while it is read otherwise:

- a ``Content-Length`` over the limit (plus :data:`FORM_OVERHEAD` for the form's other
  fields and boundaries) is refused at once, nothing read;
- without one (a chunked body) or with a false one, the bytes are counted as they
  stream into the multipart parser, which stops at the first piece past the limit;
- the file part itself must then be within the limit.

The refusal is the one the API gives for a body over its content limit: status 413,
``{"error": {"message": "Maximum content size limit (N) exceeded (M bytes read)",
"type": "server_error", "param": null, "code": null}}``.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator

from starlette.datastructures import FormData
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request

from runq.sandbox.engine.errors import SandboxError, bad_request

FORM_OVERHEAD = 64 * 1024  # the form's boundaries, headers and the 'purpose' field


def too_large(limit: int, size: int, read: bool = True) -> SandboxError:
    """The API's 413 for a body over its content limit."""
    seen = f"{size} bytes read" if read else f"Content-Length {size}"
    return SandboxError(
        413, f"Maximum content size limit ({limit}) exceeded ({seen})", type_="server_error"
    )


class _TooLarge(Exception):
    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.size = size


async def read_form(request: Request, limit: int) -> FormData:
    """The request's multipart form, refused with a 413 past ``limit`` (0 = no limit)."""
    body_limit = limit + FORM_OVERHEAD if limit else 0
    declared = request.headers.get("content-length", "")
    if body_limit and declared.isdigit() and int(declared) > body_limit:
        raise too_large(limit, int(declared), read=False)

    async def counted() -> AsyncGenerator[bytes, None]:
        total = 0
        async for piece in request.stream():
            total += len(piece)
            if body_limit and total > body_limit:
                raise _TooLarge(total)
            yield piece

    if "multipart/form-data" not in request.headers.get("content-type", ""):
        raise bad_request("Expected a multipart/form-data body with 'file' and 'purpose'.")
    parser = MultiPartParser(request.headers, counted(), max_files=1, max_fields=16)
    try:
        return await parser.parse()
    except _TooLarge as exc:
        raise too_large(limit, exc.size) from None
    except MultiPartException as exc:
        raise bad_request(f"Malformed multipart body: {exc.message}") from None
