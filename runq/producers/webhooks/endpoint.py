"""`POST /v1/webhooks/openai`: one handler for the gateway and for `runq webhooks`.

The poster is authenticated by the delivery's signature, not by a tenant's token: only
who holds the endpoint's secret (OpenAI, or the sandbox) can make a delivery count. The
body is read up to a limit (413 past it) before anything else, then handed to the
receiver in a thread (it verifies with the openai client and talks to Redis and the
broker, all blocking). Answers: 200 for every delivery taken in, including replays,
unknown responses and other event types, so the sender stops retrying them; 400 for a
malformed one, 401 for a forged or stale one (nothing touched); 503 when Redis or the
broker cannot be reached, so the sender retries later.
"""

from __future__ import annotations

from collections.abc import Callable

import structlog
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse

from runq.errors import ConfigurationError
from runq.producers.webhooks import PATH as PATH
from runq.runs.webhooks import WebhookReceiver, WebhookRejected

RETRY_AFTER_SECONDS = 5
log = structlog.get_logger("runq.webhooks")


class _TooLarge(Exception):
    pass


async def read_body(request: Request, limit: int) -> bytes:
    """The body, or `_TooLarge` as soon as it passes `limit` bytes (nothing more is read)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _TooLarge
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


async def receive_openai_webhook(
    request: Request, receiver: Callable[[], WebhookReceiver], max_body_bytes: int
) -> JSONResponse:
    """Handle one delivery; `receiver()` gives the deployment's receiver (built once)."""
    try:
        body = await read_body(request, max_body_bytes)
    except _TooLarge:
        return JSONResponse(
            {"detail": f"the webhook body is larger than {max_body_bytes} bytes"}, status_code=413
        )
    except ClientDisconnect:
        return JSONResponse({"detail": "the client went away"}, status_code=400)
    headers = {k: v for k, v in request.headers.items()}
    try:
        # One thread hop: the receiver is built on the first delivery (it imports the
        # openai client), and taking a delivery in talks to Redis.
        receipt = await run_in_threadpool(lambda: receiver().receive(body, headers))
    except ConfigurationError as exc:  # no secret on this server: the sender retries later
        log.warning("webhook.not_configured", error=str(exc))
        return JSONResponse({"detail": str(exc)}, status_code=503)
    except WebhookRejected as refused:
        log.warning("webhook.refused", status=refused.status, reason=refused.reason)
        return JSONResponse({"detail": refused.reason}, status_code=refused.status)
    except (ConnectionError, OSError) as exc:
        return _unavailable(exc)
    except Exception as exc:
        if not _unreachable(exc):
            raise
        return _unavailable(exc)
    return JSONResponse(receipt.body())


def _unavailable(exc: Exception) -> JSONResponse:
    log.warning("webhook.store_unreachable", error=str(exc))
    return JSONResponse(
        {"detail": "the job store or the broker cannot be reached; retry later"},
        status_code=503,
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


def _unreachable(exc: Exception) -> bool:
    """redis-py's and kombu's connection failures (not subclasses of ConnectionError)."""
    import redis.exceptions

    if isinstance(exc, redis.exceptions.ConnectionError | redis.exceptions.TimeoutError):
        return True
    from kombu.exceptions import OperationalError

    return isinstance(exc, OperationalError)
