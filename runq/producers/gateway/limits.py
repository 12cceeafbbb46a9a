"""What one client may cost the gateway: event streams, request bodies, unauthenticated work.

Why each limit:

- **Event streams.** An SSE stream lives as long as its job and costs the process a
  subscription of the `EventHub` (no Redis connection: see event_hub.py). Without a
  bound one tenant could open streams until the process runs out of file descriptors or
  memory, and every other tenant would share the harm. `StreamSlots` counts open streams
  in all (`RUNQ_GATEWAY_MAX_STREAMS`) and per tenant
  (`RUNQ_GATEWAY_MAX_STREAMS_PER_TENANT`); one more answers 429 with `Retry-After` and a
  JSON body naming the limit. 0 switches a limit off.
- **Request bodies.** FastAPI reads and parses the whole body before any dependency
  runs, so a 50 MB body was read, and parsed, even before a bad token was refused.
  `RequestGuard` is an ASGI middleware in front of the application: for `/v1` it
  checks the bearer token first (401 without reading the body), then refuses a
  `Content-Length` above `RUNQ_GATEWAY_MAX_BODY_BYTES` (413 before reading), and counts
  the bytes of a body sent without a length (chunked) as they arrive, stopping at the
  limit with 413: nothing above the limit is ever buffered or parsed.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from runq.producers.gateway import auth
from runq.producers.webhooks import PATH as WEBHOOK_PATH

RETRY_AFTER_SECONDS = 5
BODY_LIMIT_VAR = "RUNQ_GATEWAY_MAX_BODY_BYTES"
STREAMS_VAR = "RUNQ_GATEWAY_MAX_STREAMS"
STREAMS_PER_TENANT_VAR = "RUNQ_GATEWAY_MAX_STREAMS_PER_TENANT"
UNAUTHORIZED = "missing or unknown bearer token"


class TooManyStreams(Exception):
    """One more event stream would pass `limit` (the variable that sets it)."""

    def __init__(self, limit: str, value: int, scope: str) -> None:
        self.limit = limit
        self.value = value
        super().__init__(
            f"too many open event streams {scope} (at most {value}, {limit}); "
            f"close one or retry after {RETRY_AFTER_SECONDS} s"
        )


class BodyTooLarge(HTTPException):
    """A request body passed `RUNQ_GATEWAY_MAX_BODY_BYTES` (raised while it is read)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(413, body_too_large(limit))


def body_too_large(limit: int) -> str:
    return f"the request body is larger than {limit} bytes ({BODY_LIMIT_VAR})"


class StreamSlot:
    """One open event stream's place; releasing it twice is harmless."""

    def __init__(self, slots: StreamSlots, tenant: str) -> None:
        self._slots = slots
        self._tenant = tenant
        self._held = True

    def release(self) -> None:
        if self._held:
            self._held = False
            self._slots._release(self._tenant)


class StreamSlots:
    """Counts open event streams in all and per tenant (one event loop: no lock needed)."""

    def __init__(self, max_total: int, max_per_tenant: int) -> None:
        self.max_total = max_total
        self.max_per_tenant = max_per_tenant
        self.total = 0
        self.by_tenant: dict[str, int] = {}

    def acquire(self, tenant: str) -> StreamSlot:
        """A slot for one more stream of `tenant`, or `TooManyStreams` naming the limit."""
        held = self.by_tenant.get(tenant, 0)
        if self.max_per_tenant and held >= self.max_per_tenant:
            raise TooManyStreams(STREAMS_PER_TENANT_VAR, self.max_per_tenant, "for this tenant")
        if self.max_total and self.total >= self.max_total:
            raise TooManyStreams(STREAMS_VAR, self.max_total, "on this gateway")
        self.by_tenant[tenant] = held + 1
        self.total += 1
        return StreamSlot(self, tenant)

    def _release(self, tenant: str) -> None:
        self.total -= 1
        left = self.by_tenant.get(tenant, 1) - 1
        if left > 0:
            self.by_tenant[tenant] = left
        else:
            self.by_tenant.pop(tenant, None)


async def too_many_streams(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, TooManyStreams)
    return JSONResponse(
        {"detail": str(exc), "limit": exc.limit, "max": exc.value},
        status_code=429,
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


async def body_limit_exceeded(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, BodyTooLarge)
    return _too_large_response(exc.limit)


def _too_large_response(limit: int) -> JSONResponse:
    return JSONResponse(
        {"detail": body_too_large(limit), "limit": BODY_LIMIT_VAR, "max": limit},
        status_code=413,
    )


def _unauthorized() -> JSONResponse:
    return JSONResponse(
        {"detail": UNAUTHORIZED}, status_code=401, headers={"WWW-Authenticate": "Bearer"}
    )


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


def _bearer(scope: Scope) -> str | None:
    value = _header(scope, b"authorization")
    if value is None:
        return None
    scheme, _, credentials = value.strip().partition(" ")
    return credentials.strip() if scheme.lower() == "bearer" else None


class RequestGuard:
    """ASGI middleware: authenticate `/v1` before the body is read; bound every body."""

    def __init__(self, app: ASGIApp, *, tokens: dict[str, str], max_body_bytes: int) -> None:
        self.app = app
        self.tokens = tokens
        self.max_body_bytes = max_body_bytes

    def _refusal(self, scope: Scope) -> JSONResponse | None:
        """The answer to a request refused on its headers alone: a `/v1` call without a
        valid token (401), a declared length above the limit (413), or a bad one (400)."""
        path = scope.get("path", "")
        # A webhook's poster is authenticated by its signature, not by a tenant's token.
        versioned = (path == "/v1" or path.startswith("/v1/")) and path != WEBHOOK_PATH
        if versioned and auth.tenant_for(self.tokens, _bearer(scope)) is None:
            return _unauthorized()
        length = _header(scope, b"content-length")
        if length is None:
            return None
        try:
            declared = int(length)
        except ValueError:
            declared = -1
        if declared < 0:
            return JSONResponse({"detail": "invalid Content-Length"}, status_code=400)
        if declared > self.max_body_bytes:
            return _too_large_response(self.max_body_bytes)
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = self._refusal(scope)
        if refusal is not None:
            await refusal(scope, receive, send)  # the body is never read
            return
        limit = self.max_body_bytes
        received = 0
        started = False

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def watched(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except BodyTooLarge:
            # Raised where no handler turned it into a response (a route reading the
            # body itself): answer here if nothing has been sent yet.
            if started:
                raise
            await _too_large_response(limit)(scope, receive, send)
