"""Conversations API: a durable list of items that responses read and append to."""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from runq.sandbox.api.crud import Collection, page
from runq.sandbox.api.http import get_state, metadata, ok, read_json
from runq.sandbox.engine.conversation_objects import ConversationRecord
from runq.sandbox.engine.ids import new_id
from runq.sandbox.engine.response_objects import input_item
from runq.sandbox.engine.transcript import turns_from_response_input

CONVERSATIONS = Collection[ConversationRecord](
    "conversations", "conversation_id", "conversation.deleted", ConversationRecord.to_json
)


async def create_conversation(request: Request) -> Response:
    state = get_state(request)
    body = await read_json(request)
    turns = turns_from_response_input(body.get("items") or [])
    rec = ConversationRecord(new_id("conv"), int(time.time()), metadata(body))
    rec.items = [input_item(t) for t in turns]
    rec.history = turns
    state.store.conversations[rec.id] = rec
    return ok(rec.to_json())


async def list_items(request: Request) -> Response:
    return ok(page(CONVERSATIONS.get(request).items, request, default_order="desc"))


routes = [
    Route("/v1/conversations", create_conversation, methods=["POST"]),
    Route("/v1/conversations/{conversation_id}", CONVERSATIONS.retrieve, methods=["GET"]),
    Route("/v1/conversations/{conversation_id}", CONVERSATIONS.delete, methods=["DELETE"]),
    Route("/v1/conversations/{conversation_id}/items", list_items, methods=["GET"]),
]
