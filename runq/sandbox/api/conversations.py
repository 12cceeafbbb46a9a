"""Conversations API: a durable list of items that responses read and append to.

Besides create/retrieve/update/delete, the items themselves are an API: clients that
keep their own session in a conversation (the Agents SDK's ``OpenAIConversationsSession``)
add items, list them in either order, read one and delete the last (``pop_item``).
The conversation's transcript is rebuilt from its items after each change, so the
next response sees exactly what the item list shows.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from runq.sandbox.api import validation
from runq.sandbox.api.crud import Collection, find_in, page
from runq.sandbox.api.http import get_state, metadata, ok, read_json
from runq.sandbox.engine.conversation_objects import ConversationRecord
from runq.sandbox.engine.errors import bad_request
from runq.sandbox.engine.ids import new_id
from runq.sandbox.engine.response_objects import input_item
from runq.sandbox.engine.transcript import turns_from_response_input

CONVERSATIONS = Collection[ConversationRecord](
    "conversations", "conversation_id", "conversation.deleted", ConversationRecord.to_json
)
MAX_ITEMS_PER_CALL = 20  # OpenAI adds at most 20 items per request


def _new_items(raw: Any) -> list[dict[str, Any]]:
    if not isinstance(raw, list):
        raise bad_request("Invalid type for 'items': expected an array.", "items")
    if len(raw) > MAX_ITEMS_PER_CALL:
        raise bad_request(
            f"Invalid 'items': array too long. Expected an array with maximum length "
            f"{MAX_ITEMS_PER_CALL}, but got an array with length {len(raw)} instead.",
            "items",
            "array_above_max_length",
        )
    return [input_item(t) for t in turns_from_response_input(raw)]


async def create_conversation(request: Request) -> Response:
    state = get_state(request)
    body = await read_json(request)
    validation.known_parameters(body, ("items", "metadata"))
    rec = ConversationRecord(new_id("conv"), int(time.time()), metadata(body))
    rec.add_items(_new_items(body.get("items") or []))
    state.store.conversations[rec.id] = rec
    return ok(rec.to_json())


async def update_conversation(request: Request) -> Response:
    rec = CONVERSATIONS.get(request)
    body = await read_json(request)
    validation.known_parameters(body, ("metadata",))
    if "metadata" not in body:
        raise bad_request("Missing required parameter: 'metadata'.", "metadata")
    rec.metadata = metadata(body)
    return ok(rec.to_json())


async def list_items(request: Request) -> Response:
    return ok(page(CONVERSATIONS.get(request).items, request, default_order="desc"))


async def create_items(request: Request) -> Response:
    rec = CONVERSATIONS.get(request)
    body = await read_json(request)
    validation.known_parameters(body, ("items",))
    added = _new_items(body.get("items"))
    rec.add_items(added)
    return ok(
        {
            "object": "list",
            "data": added,
            "first_id": added[0]["id"] if added else None,
            "last_id": added[-1]["id"] if added else None,
            "has_more": False,
        }
    )


async def retrieve_item(request: Request) -> Response:
    rec = CONVERSATIONS.get(request)
    items = {item["id"]: item for item in rec.items}
    return ok(find_in(items, request.path_params["item_id"], "item"))


async def delete_item(request: Request) -> Response:
    """Remove one item; the answer is the conversation, as OpenAI's is."""
    rec = CONVERSATIONS.get(request)
    item_id = request.path_params["item_id"]
    find_in({item["id"]: item for item in rec.items}, item_id, "item")
    rec.remove_item(item_id)
    return ok(rec.to_json())


routes = [
    Route("/v1/conversations", create_conversation, methods=["POST"]),
    Route("/v1/conversations/{conversation_id}", CONVERSATIONS.retrieve, methods=["GET"]),
    Route("/v1/conversations/{conversation_id}", update_conversation, methods=["POST"]),
    Route("/v1/conversations/{conversation_id}", CONVERSATIONS.delete, methods=["DELETE"]),
    Route("/v1/conversations/{conversation_id}/items", list_items, methods=["GET"]),
    Route("/v1/conversations/{conversation_id}/items", create_items, methods=["POST"]),
    Route("/v1/conversations/{conversation_id}/items/{item_id}", retrieve_item, methods=["GET"]),
    Route("/v1/conversations/{conversation_id}/items/{item_id}", delete_item, methods=["DELETE"]),
]
