"""Assistants v2: assistants (CRUD), threads (create/retrieve/delete) and messages.

Threads and their messages are engine objects (:mod:`runq.sandbox.engine.thread_objects`);
assistants are stored as the plain JSON the API returns.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from runq.sandbox.api import validation
from runq.sandbox.api.crud import Collection, deleted, find_in, page
from runq.sandbox.api.http import get_state, metadata, ok, opt_str, read_json
from runq.sandbox.engine import output_format
from runq.sandbox.engine.errors import bad_request
from runq.sandbox.engine.ids import new_id
from runq.sandbox.engine.state import SandboxState
from runq.sandbox.engine.thread_objects import ThreadRecord, active_run, message_json
from runq.sandbox.engine.tool_resources import attach_files, create_stores
from runq.sandbox.engine.transcript import content_text

# Assistants are stored as the JSON the API returns; threads are engine records.
ASSISTANTS = Collection[dict[str, Any]]("assistants", "assistant_id", "assistant.deleted")
THREADS = Collection[ThreadRecord]("threads", "thread_id", "thread.deleted", ThreadRecord.to_json)

ASSISTANT_FIELDS = (
    "model",
    "name",
    "description",
    "instructions",
    "tools",
    "tool_resources",
    "metadata",
    "temperature",
    "top_p",
    "response_format",
)


def refuse_if_busy(state: SandboxState, thread: ThreadRecord, what: str) -> None:
    """A 400 when ``thread`` has a run still going: the real API refuses to change it."""
    run_id = active_run(state.store, thread)
    if run_id:
        raise bad_request(f"Can't {what} {thread.id} while a run {run_id} is active.")


def new_thread(state: SandboxState, body: dict[str, Any]) -> ThreadRecord:
    thread = ThreadRecord(
        new_id("thread"),
        int(time.time()),
        metadata(body),
        create_stores(state, body.get("tool_resources")),
    )
    for i, msg in enumerate(body.get("messages") or []):
        message = _user_message(thread.id, msg, f"messages[{i}]")
        message["attachments"] = attach_files(state, thread, msg.get("attachments"))
        thread.messages.append((0.0, message))
    state.store.threads[thread.id] = thread
    return thread


def _user_message(thread_id: str, body: dict[str, Any], param: str = "") -> dict[str, Any]:
    role = body.get("role", "user")
    if role not in ("user", "assistant"):
        raise bad_request(f"Invalid '{param}role': expected 'user' or 'assistant'.", "role")
    if "content" not in body:
        raise bad_request("Missing required parameter: 'content'.", "content")
    return message_json(
        thread_id, role, content_text(body["content"]), created=time.time(), meta=metadata(body)
    )


# -- assistants ---------------------------------------------------------------------------
def check_sampling(state: SandboxState, body: dict[str, Any]) -> None:
    """The model (404 when unknown), sampling ranges and the answer format, as OpenAI
    checks them on assistants and runs."""
    if body.get("model") is not None:
        validation.chat_model(state.config.models, body["model"])
    validation.number_in(body, "temperature", 0, 2)
    validation.number_in(body, "top_p", 0, 1)
    validation.one_of(
        body.get("reasoning_effort"), "reasoning_effort", validation.REASONING_EFFORTS
    )
    output_format.from_response_format(body.get("response_format"))


def _assistant(body: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for name in ASSISTANT_FIELDS:
        if name in body:
            out[name] = metadata(body) if name == "metadata" else body[name]
    if not isinstance(out.get("model"), str) or not out["model"]:
        raise bad_request("Missing required parameter: 'model'.", "model")
    if not isinstance(out.get("tools") or [], list):
        raise bad_request("Invalid 'tools': expected an array.", "tools")
    return out


async def create_assistant(request: Request) -> Response:
    body = await read_json(request)
    validation.known_parameters(body, validation.ASSISTANT_PARAMS)
    check_sampling(get_state(request), body)
    base = {
        "id": new_id("asst"),
        "object": "assistant",
        "created_at": int(time.time()),
        "name": None,
        "description": None,
        "instructions": None,
        "tools": [],
        "tool_resources": {},
        "metadata": {},
        "temperature": 1.0,
        "top_p": 1.0,
        "response_format": "auto",
        "model": None,
    }
    rec = _assistant(body, base)
    rec["tool_resources"] = create_stores(get_state(request), rec["tool_resources"])
    get_state(request).store.assistants[rec["id"]] = rec
    return ok(rec)


async def update_assistant(request: Request) -> Response:
    state = get_state(request)
    rec = ASSISTANTS.get(request)
    body = await read_json(request)
    validation.known_parameters(body, validation.ASSISTANT_PARAMS)
    check_sampling(state, body)
    updated = _assistant(body, rec)
    updated["tool_resources"] = create_stores(state, updated["tool_resources"])
    state.store.assistants[rec["id"]] = updated
    return ok(updated)


# -- threads and messages -----------------------------------------------------------------
async def create_thread(request: Request) -> Response:
    body = await read_json(request)
    validation.known_parameters(body, ("messages", "metadata", "tool_resources"))
    return ok(new_thread(get_state(request), body).to_json())


async def update_thread(request: Request) -> Response:
    thread = THREADS.get(request)
    body = await read_json(request)
    validation.known_parameters(body, ("metadata", "tool_resources"))
    if "metadata" in body:
        thread.metadata = metadata(body)
    if "tool_resources" in body:
        thread.tool_resources = body["tool_resources"]
    return ok(thread.to_json())


async def create_message(request: Request) -> Response:
    state = get_state(request)
    thread = THREADS.get(request)
    refuse_if_busy(state, thread, "add messages to")
    body = await read_json(request)
    validation.known_parameters(body, ("attachments", "content", "metadata", "role"))
    msg = _user_message(thread.id, body)
    msg["attachments"] = attach_files(state, thread, body.get("attachments"))
    thread.messages.append((0.0, msg))
    return ok(msg)


async def list_messages(request: Request) -> Response:
    items = THREADS.get(request).visible()
    run_id = opt_str(dict(request.query_params), "run_id")
    if run_id:
        items = [m for m in items if m["run_id"] == run_id]
    return ok(page(items, request, default_order="desc"))


async def retrieve_message(request: Request) -> Response:
    visible = {msg["id"]: msg for msg in THREADS.get(request).visible()}
    return ok(find_in(visible, request.path_params["message_id"], "message"))


async def update_message(request: Request) -> Response:
    """Only a message's metadata can change."""
    visible = {msg["id"]: msg for msg in THREADS.get(request).visible()}
    msg = find_in(visible, request.path_params["message_id"], "message")
    body = await read_json(request)
    validation.known_parameters(body, ("metadata",))
    msg["metadata"] = metadata(body)
    return ok(msg)


async def delete_message(request: Request) -> Response:
    thread = THREADS.get(request)
    message_id = request.path_params["message_id"]
    find_in({msg["id"]: msg for msg in thread.visible()}, message_id, "message")
    thread.messages = [(at, msg) for at, msg in thread.messages if msg["id"] != message_id]
    return ok(deleted(message_id, "thread.message.deleted"))


routes = [
    Route("/v1/assistants", create_assistant, methods=["POST"]),
    Route("/v1/assistants", ASSISTANTS.list, methods=["GET"]),
    Route("/v1/assistants/{assistant_id}", ASSISTANTS.retrieve, methods=["GET"]),
    Route("/v1/assistants/{assistant_id}", update_assistant, methods=["POST"]),
    Route("/v1/assistants/{assistant_id}", ASSISTANTS.delete, methods=["DELETE"]),
    Route("/v1/threads", create_thread, methods=["POST"]),
    Route("/v1/threads/{thread_id}", THREADS.retrieve, methods=["GET"]),
    Route("/v1/threads/{thread_id}", THREADS.delete, methods=["DELETE"]),
    Route("/v1/threads/{thread_id}/messages", create_message, methods=["POST"]),
    Route("/v1/threads/{thread_id}/messages", list_messages, methods=["GET"]),
    Route("/v1/threads/{thread_id}/messages/{message_id}", retrieve_message, methods=["GET"]),
    Route("/v1/threads/{thread_id}/messages/{message_id}", update_message, methods=["POST"]),
    Route("/v1/threads/{thread_id}/messages/{message_id}", delete_message, methods=["DELETE"]),
]
