"""The gateway's FastAPI application: jobs over HTTP, events over SSE, a small web page.

    POST /v1/jobs                  submit (honours `Idempotency-Key`)       201 / 200 / 409
    GET  /v1/jobs?status=&limit=   the tenant's recent jobs, newest first   200
    GET  /v1/jobs/{id}             status and result                        200
    GET  /v1/jobs/{id}/events      SSE, resumable with `Last-Event-ID`      200
    POST /v1/jobs/{id}/cancel      ask the job to stop                      202
    GET  /healthz                  Redis reachable?                         200 / 503
    GET  /                         the web page; OpenAPI at /docs; /metrics when available

Every `/v1` call needs `Authorization: Bearer <token>`; a job is visible only to the
tenant whose token created it (another tenant gets 404). A refused job answers 422 with
FastAPI's validation shape, `loc` naming the body field (runq's `InvalidJobError.option`);
an `Idempotency-Key` reused with a different body answers 409 naming the key. While
Redis cannot be reached, calls answer 503 with `Retry-After`, not a traceback. Every
open event stream of the process is read by one `EventHub` on one Redis connection.
`limits` bounds what one client may cost: open streams (429), body size (413), and a
`/v1` request's token is checked before its body is read (401).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import redis.exceptions
import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from starlette.routing import Route

from runq.config.settings import Settings, get_settings
from runq.errors import (
    IdempotencyConflictError,
    InvalidJobError,
    RedisFullError,
    RedisUnavailableError,
)
from runq.producers.client.aio import AsyncClient
from runq.producers.gateway import limits
from runq.producers.gateway.event_hub import EventHub
from runq.producers.gateway.file_routes import router as file_router
from runq.producers.gateway.routes import invalid, router

HEARTBEAT_SECONDS = 15.0
RETRY_AFTER_SECONDS = 5
log = structlog.get_logger("runq.gateway")


async def _store_unreachable(request: Request, exc: Exception) -> JSONResponse:
    """Redis is down or not answering: 503, so a client retries instead of giving up."""
    log.warning("gateway.redis_unreachable", path=request.url.path, error=str(exc))
    return JSONResponse(
        {"detail": "the job store (Redis) cannot be reached; retry later"},
        status_code=503,
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


async def _store_full(request: Request, exc: Exception) -> JSONResponse:
    """Redis refused a write (out of memory): 503 saying so, not a 500 with a traceback."""
    log.warning("gateway.redis_full", path=request.url.path)
    return JSONResponse(
        {"detail": "the job store (Redis) is out of memory and refused the job; retry later"},
        status_code=503,
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


async def _invalid_job(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, InvalidJobError)
    return invalid(exc.option, exc.problem)


async def _idempotency_conflict(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, IdempotencyConflictError)
    return JSONResponse({"detail": str(exc)}, status_code=409)


async def _validation(request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's 422 without echoing the input back (it may be large or secret)."""
    assert isinstance(exc, RequestValidationError)
    errors = [{k: e[k] for k in ("loc", "msg", "type") if k in e} for e in exc.errors()]
    return JSONResponse({"detail": errors}, status_code=422)


def create_app(
    tokens: dict[str, str],
    *,
    redis_url: str | None = None,
    settings: Settings | None = None,
    heartbeat: float = HEARTBEAT_SECONDS,
    demo: bool = False,
) -> FastAPI:
    """The gateway for `tokens` ({token: tenant}); Redis from `redis_url` or the settings."""
    settings = settings or get_settings()

    from runq.runs.tools import load_tool_modules, registry

    load_tool_modules(settings.tool_modules)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.client = AsyncClient(redis_url, settings)
        app.state.hub = EventHub(app.state.client.redis_url, app.state.client.redis)
        _mount_metrics(app, app.state.client)
        try:
            yield
        finally:
            await app.state.hub.aclose()
            await app.state.client.aclose()

    app = FastAPI(
        title="runq gateway",
        version="1",
        description="Run LLM conversation jobs in the background: submit, follow, cancel. "
        "Authenticate with `Authorization: Bearer <token>`.",
        lifespan=lifespan,
    )
    app.state.tokens = dict(tokens)
    app.state.heartbeat = heartbeat
    app.state.demo = demo
    app.state.stream_slots = limits.StreamSlots(
        settings.gateway_max_streams, settings.gateway_max_streams_per_tenant
    )
    app.add_middleware(
        limits.RequestGuard, tokens=app.state.tokens, max_body_bytes=settings.gateway_max_body_bytes
    )
    app.include_router(router)
    app.include_router(file_router)
    app.add_exception_handler(InvalidJobError, _invalid_job)
    app.add_exception_handler(IdempotencyConflictError, _idempotency_conflict)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(limits.TooManyStreams, limits.too_many_streams)
    app.add_exception_handler(limits.BodyTooLarge, limits.body_limit_exceeded)
    app.add_exception_handler(redis.exceptions.ConnectionError, _store_unreachable)
    app.add_exception_handler(redis.exceptions.TimeoutError, _store_unreachable)
    app.add_exception_handler(RedisUnavailableError, _store_unreachable)
    app.add_exception_handler(RedisFullError, _store_full)
    app.openapi = lambda: _openapi(app, sorted(registry.names()))  # type: ignore[method-assign]
    return app


def _openapi(app: FastAPI, tools: list[str]) -> dict[str, Any]:
    """FastAPI's description, with the registered tool names as the enum of `tools`."""
    if app.openapi_schema is None:
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        props = schema["components"]["schemas"]["JobRequest"]["properties"]
        hosted = {
            "type": "object",
            "required": ["type"],
            "description": 'a hosted tool, e.g. {"type": "mcp", "server_label", "server_url"}',
        }
        names = {"type": "string", "enum": [*tools, "code_interpreter", "web_search"]}
        props["tools"] = {
            "anyOf": [
                {"type": "array", "items": {"anyOf": [names, hosted]}, "maxItems": 64},
                {"type": "null"},
            ],
            "title": "Tools",
            "description": "functions the model may call (the registered tools), and hosted "
            "tools the backend runs (code_interpreter, web_search, mcp servers)",
        }
        app.openapi_schema = schema
    return app.openapi_schema


def _mount_metrics(app: FastAPI, client: AsyncClient) -> None:
    """Mount Prometheus metrics at /metrics when `ops.metrics_server` offers an ASGI app.

    They add up every tenant's jobs, so no tenant token opens them: outside the demo a
    scrape sends `Authorization: Bearer $RUNQ_METRICS_TOKEN`, and with that unset the
    endpoint answers 401 saying so."""
    try:
        from runq.producers.ops import metrics_server
    except ImportError:
        return
    if not any(getattr(r, "path", None) == "/metrics" for r in app.routes):
        token = None if app.state.demo else (metrics_server.metrics_token() or "")
        # A Route (not a Mount) so /metrics answers without a redirect to /metrics/.
        app.router.routes.append(
            Route(
                "/metrics",
                _AsgiEndpoint(metrics_server.metrics_asgi_app(client.sync.redis), token),
                include_in_schema=False,
            )
        )


class _AsgiEndpoint:
    """Makes Starlette treat a plain ASGI function as an app, not a request handler;
    with a `token` (None: open; "": none configured) it answers 401 without it."""

    def __init__(self, app: Callable[..., Awaitable[None]], token: str | None = None) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if self.token is not None:
            from runq.producers.ops.metrics_server import TOKEN_VAR, token_matches

            sent = dict(scope.get("headers", ())).get(b"authorization", b"").decode("latin-1")
            if not self.token or not token_matches(self.token, sent):
                detail = (
                    f"/metrics needs Authorization: Bearer ${TOKEN_VAR}"
                    if self.token
                    else f"/metrics is closed: set {TOKEN_VAR} on the gateway to open it"
                )
                refusal = JSONResponse(
                    {"detail": detail}, status_code=401, headers={"WWW-Authenticate": "Bearer"}
                )
                await refusal(scope, receive, send)
                return
        await self.app(scope, receive, send)
