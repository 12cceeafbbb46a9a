"""Every failure as an HTTP response in OpenAI's error shape.

Handlers raise :class:`~runq.sandbox.engine.errors.SandboxError`; Starlette's own
errors (an unknown route, a wrong method) and unexpected exceptions are translated too,
so that no client ever sees a body the real API would not send.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from runq.sandbox.engine.errors import SandboxError


def error_response(error: SandboxError) -> JSONResponse:
    """The response the real API sends for ``error``: its status, body and headers."""
    return JSONResponse(error.body(), status_code=error.status, headers=error.headers)


async def _sandbox_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SandboxError)
    return error_response(exc)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        message = f"Invalid URL ({request.method} {request.url.path})"
    else:
        message = str(exc.detail)
    return error_response(SandboxError(exc.status_code, message))


async def _unexpected(request: Request, exc: Exception) -> Response:
    return error_response(SandboxError(500, f"The sandbox had an internal error: {exc!r}"))


# For ``Starlette(exception_handlers=...)``: most specific first, as Starlette looks up
# the exception's class hierarchy.
EXCEPTION_HANDLERS: dict[Any, Callable[[Request, Exception], Awaitable[Response]]] = {
    SandboxError: _sandbox_error,
    HTTPException: _http_error,
    Exception: _unexpected,
}
