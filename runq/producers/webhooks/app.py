"""The standalone webhook server's application (`runq webhooks`): two routes, no tenants.

    POST /v1/webhooks/openai   a signed delivery (see `endpoint`)     200 / 400 / 401 / 413 / 503
    GET  /healthz              the process serves                      200

Deployments that run the gateway point OpenAI at the gateway's own endpoint instead.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from runq.producers.webhooks import PATH
from runq.producers.webhooks.endpoint import receive_openai_webhook
from runq.runs.webhooks import WebhookReceiver


def create_webhooks_app(receiver: WebhookReceiver, *, max_body_bytes: int) -> Starlette:
    async def openai_webhook(request: Request) -> JSONResponse:
        return await receive_openai_webhook(request, lambda: receiver, max_body_bytes)

    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    return Starlette(
        routes=[
            Route(PATH, openai_webhook, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
        ]
    )
