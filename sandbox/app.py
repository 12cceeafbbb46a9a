"""The sandbox ASGI application.

``create_app(config)`` wires the route modules (one per API family), the gateway
middleware (auth, faults, rate limits, accounting) and error handlers that turn every
failure into OpenAI's error shape.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from sandbox import (
    admin,
    assistants,
    chat,
    conversations,
    files,
    models_api,
    responses,
    runs,
    vector_stores,
)
from sandbox.config import SandboxConfig
from sandbox.errors import SandboxError
from sandbox.gateway import Gateway
from sandbox.state import SandboxState


def all_routes() -> list[BaseRoute]:
    return [
        *responses.routes,
        *conversations.routes,
        *chat.routes,
        *assistants.routes,
        *runs.routes,
        *files.routes,
        *vector_stores.routes,
        *models_api.routes,
        *admin.routes,
    ]


async def _sandbox_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SandboxError)
    return exc.response()


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        message = f"Invalid URL ({request.method} {request.url.path})"
    else:
        message = str(exc.detail)
    return SandboxError(exc.status_code, message).response()


async def _unexpected(request: Request, exc: Exception) -> Response:
    return SandboxError(500, f"The sandbox had an internal error: {exc!r}").response()


def create_app(config: SandboxConfig | None = None) -> Starlette:
    """A fresh sandbox application with its own in-memory state."""
    config = config or SandboxConfig.from_env()
    state = SandboxState(config)
    routes = all_routes()
    app = Starlette(
        routes=routes,
        middleware=[Middleware(Gateway, state=state, routes=routes)],
        exception_handlers={
            SandboxError: _sandbox_error,
            HTTPException: _http_error,
            Exception: _unexpected,
        },
    )
    app.state.sandbox = state
    return app
