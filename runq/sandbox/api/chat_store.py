"""Stored chat completions: ``store: true``, then retrieve, list, messages, update, delete.

OpenAI keeps a completion created with ``store: true`` (for evals and distillation)
and serves it back under ``/v1/chat/completions/{id}``; clients and dashboards list
them by model and metadata. A stored record is plain JSON (the completion, its
request's messages), so snapshots keep it like any other.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from runq.sandbox.api import validation
from runq.sandbox.api.crud import Collection, page
from runq.sandbox.api.http import get_state, metadata, ok, read_json
from runq.sandbox.engine.chat_objects import stored_messages

STORED = Collection[dict[str, Any]](
    "chat_completions", "completion_id", "chat.completion.deleted", lambda r: r["completion"]
)


def stored_record(completion: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    """What a stored completion keeps: the object (with its metadata) and the messages."""
    completion = {**completion, "metadata": metadata(body)}
    return {
        "completion": completion,
        "messages": stored_messages(completion["id"], body.get("messages") or []),
    }


async def list_completions(request: Request) -> Response:
    """Oldest first by default (as OpenAI lists them), filtered by model and metadata."""
    q = request.query_params
    wanted = {k[9:-1]: v for k, v in q.items() if k.startswith("metadata[") and k.endswith("]")}
    items = []
    for rec in get_state(request).store.chat_completions.values():
        completion = rec["completion"]
        if q.get("model") and completion["model"] != q["model"]:
            continue
        if any(completion.get("metadata", {}).get(k) != v for k, v in wanted.items()):
            continue
        items.append(completion)
    return ok(page(items, request, default_order="asc"))


async def list_messages(request: Request) -> Response:
    return ok(page(STORED.get(request)["messages"], request, default_order="asc"))


async def update_completion(request: Request) -> Response:
    """Only ``metadata`` can change."""
    rec = STORED.get(request)
    body = await read_json(request)
    validation.known_parameters(body, ("metadata",))
    rec["completion"]["metadata"] = metadata(body)
    return ok(rec["completion"])


routes = [
    Route("/v1/chat/completions", list_completions, methods=["GET"]),
    Route("/v1/chat/completions/{completion_id}", STORED.retrieve, methods=["GET"]),
    Route("/v1/chat/completions/{completion_id}", update_completion, methods=["POST"]),
    Route("/v1/chat/completions/{completion_id}", STORED.delete, methods=["DELETE"]),
    Route("/v1/chat/completions/{completion_id}/messages", list_messages, methods=["GET"]),
]
