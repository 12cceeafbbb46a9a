"""Models API: the configured model names, all answered by the same sandbox model."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from runq.sandbox.api.http import get_state, ok
from runq.sandbox.engine.errors import not_found

_CREATED = 1_700_000_000  # fixed so that listings are reproducible


def _model(name: str) -> dict[str, object]:
    return {"id": name, "object": "model", "created": _CREATED, "owned_by": "runq-sandbox"}


async def list_models(request: Request) -> Response:
    names = get_state(request).config.models
    return ok({"object": "list", "data": [_model(n) for n in names]})


async def retrieve_model(request: Request) -> Response:
    name = request.path_params["model"]
    if name not in get_state(request).config.models:
        raise not_found("model", name, "model")
    return ok(_model(name))


routes = [
    Route("/v1/models", list_models, methods=["GET"]),
    Route("/v1/models/{model:path}", retrieve_model, methods=["GET"]),
]
