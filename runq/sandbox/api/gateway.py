"""The ASGI middleware in front of every route: auth, faults, rate limits, accounting.

Order for a ``/v1`` request: authentication (401), transport fault injection (429, 500,
503, connection reset, hang), rate limiting (429 with ``retry-after``), then the
handler. Every response gets an ``x-request-id`` and the ``x-ratelimit-*`` headers and
is counted in the stats as ``"METHOD /route/{template} STATUS"``. ``/sandbox`` admin
routes skip everything but the counting and the request id.

A pure ASGI middleware (not ``BaseHTTPMiddleware``) so that streams pass through
untouched and client disconnects reach the handlers.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Sequence
from typing import Any

from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from runq.sandbox.api.errors import error_response
from runq.sandbox.engine.errors import SandboxError
from runq.sandbox.engine.faults import FAULT_HEADER
from runq.sandbox.engine.ids import new_id
from runq.sandbox.engine.state import SandboxState


def route_template(routes: Sequence[BaseRoute], scope: Scope) -> str:
    """The route path template matching ``scope`` (e.g. ``/v1/responses/{response_id}``)."""
    partial = None
    for route in routes:
        match, _ = route.matches(scope)
        if match == Match.FULL:
            return str(getattr(route, "path", scope["path"]))
        if match == Match.PARTIAL and partial is None:
            partial = str(getattr(route, "path", scope["path"]))
    return partial or "<unknown>"


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}


def bearer_key(headers: dict[str, str]) -> str:
    auth = headers.get("authorization", "")
    return auth[7:].strip() if auth.lower().startswith("bearer ") else ""


async def _send_error(send: Send, error: SandboxError, extra: dict[str, str]) -> None:
    response = error_response(error)
    for key, value in extra.items():
        response.headers.setdefault(key, value)
    await response({"type": "http"}, _no_receive, send)


async def _no_receive() -> Message:  # pragma: no cover - responses never read
    return {"type": "http.disconnect"}


async def _wait_disconnect(receive: Receive, seconds: float) -> None:
    """Hold the request for ``seconds`` or until the client goes away."""

    async def until_disconnect() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(until_disconnect(), timeout=seconds)


class Gateway:
    def __init__(self, app: ASGIApp, state: SandboxState, routes: Sequence[BaseRoute]) -> None:
        self.app = app
        self.state = state
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = [0]
        # Every reply names its request, as OpenAI's do: clients log it and put it on
        # their exceptions (``APIStatusError.request_id``, ``response._request_id``).
        extra: dict[str, str] = {"x-request-id": new_id("req")}

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                for key, value in extra.items():
                    if key.encode() not in present:
                        headers.append((key.encode(), value.encode()))
                message = {**message, "headers": headers}
            await send(message)

        delay = self.state.config.request_latency_ms
        if delay > 0 and scope["path"].startswith("/v1/"):
            await asyncio.sleep(delay / 1000)
        try:
            if scope["path"].startswith("/v1/") and not await self._gate(
                scope, receive, send_wrapper, extra
            ):
                return
            await self.app(scope, receive, send_wrapper)
        finally:
            template = route_template(self.routes, scope)
            self.state.stats.count_request(scope["method"], template, status[0])

    async def _gate(
        self, scope: Scope, receive: Receive, send: Send, extra: dict[str, str]
    ) -> bool:
        """Checks before the handler; False when the request was answered (or dropped)."""
        headers = _headers(scope)
        cfg = self.state.config
        key = bearer_key(headers)
        if cfg.api_keys and key not in cfg.api_keys:
            error = SandboxError(
                401,
                "Incorrect API key provided. You can find your API key in your sandbox "
                "configuration (RUNQ_SANDBOX_API_KEYS).",
                code="invalid_api_key",
            )
            await _send_error(send, error, extra)
            return False
        fault = self.state.faults.transport(headers.get(FAULT_HEADER))
        if fault:
            self.state.stats.count_fault(fault)
            await self._inject(fault, receive, send, extra)
            return False
        size = int(headers.get("content-length", "0") or 0)
        decision = self.state.limiter.check(key, math.ceil(size / 4))
        extra.update(decision.headers)
        if not decision.allowed:
            error = SandboxError(
                429,
                f"Rate limit reached for requests on key ...{key[-4:]}: "
                f"limit {cfg.rpm} RPM / {cfg.tpm} TPM. Please try again in "
                f"{decision.retry_after:.3f}s.",
                code="rate_limit_exceeded",
                type_="requests",
            )
            await _send_error(send, error, extra)
            return False
        return True

    async def _inject(
        self, fault: str, receive: Receive, send: Send, extra: dict[str, Any]
    ) -> None:
        if fault == "429":
            extra.update({"retry-after": "1", "retry-after-ms": "1000"})
            error = SandboxError(
                429,
                "Rate limit reached (injected fault).",
                code="rate_limit_exceeded",
                type_="requests",
            )
        elif fault == "500":
            error = SandboxError(500, "The server had an error while processing your request.")
        elif fault == "503":
            error = SandboxError(503, "The engine is currently overloaded, please try again later.")
        elif fault == "hang":
            await _wait_disconnect(receive, self.state.config.hang_seconds)
            error = SandboxError(504, "Gateway timeout (injected hang).")
        else:  # reset: promise a body, send part of it, then drop the connection
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", b"4096"),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": b'{"id": ', "more_body": True})
            raise ConnectionResetError("injected connection reset")
        await _send_error(send, error, extra)
