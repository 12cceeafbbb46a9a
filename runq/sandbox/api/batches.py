"""Batch API routes: create, retrieve, list, cancel.

The create checks what OpenAI refuses at once (400/404 naming the parameter): the
input file exists and was uploaded with ``purpose: batch``, the endpoint is one the
sandbox runs, the window is ``24h``. The file's contents are checked later, while the
batch is ``validating`` (:mod:`runq.sandbox.engine.batches`), and the lines are answered
off the request path (:mod:`runq.sandbox.engine.batch_runner`) by the very functions
that answer a live ``/v1/responses`` or ``/v1/chat/completions`` request
(:func:`answer_line`).
"""

from __future__ import annotations

import time
from functools import partial
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from runq.sandbox.api import code_interpreter, validation
from runq.sandbox.api.chat import answer_chat, check_chat_request
from runq.sandbox.api.crud import Collection, page
from runq.sandbox.api.http import get_state, metadata, ok, read_json
from runq.sandbox.api.response_plan import check_body, plan_response
from runq.sandbox.engine import mcp_turn
from runq.sandbox.engine.batches import (
    CANCELLABLE,
    COMPLETION_WINDOWS,
    ENDPOINTS,
    BatchRecord,
)
from runq.sandbox.engine.errors import SandboxError, bad_request
from runq.sandbox.engine.ids import new_id
from runq.sandbox.engine.response_objects import render
from runq.sandbox.engine.state import SandboxState

BATCHES = Collection[BatchRecord]("batches", "batch_id", "batch", BatchRecord.to_json)


async def answer_line(
    state: SandboxState, url: str, body: dict[str, Any]
) -> tuple[int, dict[str, Any]]:
    """One batch line's HTTP answer, from the engine that answers the live endpoint.

    No outcome faults and no service tier: a batch is its own tier. A Responses line is
    stored like any response (so ``previous_response_id`` can continue it) but is not
    counted as a response created: the stats tell batch lines from live requests. A line
    offering the code interpreter or MCP servers runs its code or calls its servers, as a
    live request does.
    """
    try:
        if body.get("stream"):
            raise bad_request("Streaming is not supported in a batch.", "stream")
        if body.get("background"):
            raise bad_request("Background mode is not supported in a batch.", "background")
        if url == "/v1/chat/completions":
            return 200, answer_chat(state, check_chat_request(state, body), None).completion
        code_turn = await code_interpreter.for_response(state, body)
        mcp = None
        if code_turn is None:
            mcp = await mcp_turn.for_response(
                state, body, lambda: check_body(state, body, validation.RESPONSES_PARAMS)
            )
        rec = plan_response(state, body, None, code_turn, mcp)
        if rec.store:
            state.store.responses[rec.id] = rec
            conv = rec.params.get("conversation")
            if conv:
                state.store.conversations[conv["id"]].add_response(rec)
        return 200, render(rec, rec.timeline.done_at)
    except SandboxError as error:
        return error.status, error.body()


def _serves(state: SandboxState, name: str) -> bool:
    return validation.served_model(state.config.models, name)


def _start(state: SandboxState, rec: BatchRecord) -> None:
    state.batch_runner.start(state, rec, partial(answer_line, state), partial(_serves, state))


def _check_output_expiry(value: Any) -> None:
    """OpenAI's bounds on ``output_expires_after`` (an hour to 30 days after the file's
    creation), refused as OpenAI does; within them it is ignored: result files stay."""
    if value is None:
        return
    name = "output_expires_after"
    if not isinstance(value, dict):
        raise bad_request(f"Invalid type for '{name}': expected an object.", name, "invalid_type")
    for field in ("anchor", "seconds"):
        if value.get(field) is None:
            raise bad_request(f"Missing required parameter: '{name}.{field}'.", f"{name}.{field}")
    validation.one_of(value["anchor"], f"{name}.anchor", ("created_at",))
    seconds = f"{name}.seconds"
    validation.integer_in({seconds: value["seconds"]}, seconds, 3600, 30 * 24 * 3600)


async def create_batch(request: Request) -> Response:
    state = get_state(request)
    body = await read_json(request)
    validation.known_parameters(
        body,
        ("input_file_id", "endpoint", "completion_window", "metadata", "output_expires_after"),
    )
    file_id = body.get("input_file_id")
    if not isinstance(file_id, str) or not file_id:
        raise bad_request("Missing required parameter: 'input_file_id'.", "input_file_id")
    endpoint = body.get("endpoint")
    if endpoint is None:
        raise bad_request("Missing required parameter: 'endpoint'.", "endpoint")
    if endpoint not in ENDPOINTS:
        raise bad_request(
            f"Invalid 'endpoint': {endpoint!r}. The sandbox runs batches for "
            f"{' and '.join(ENDPOINTS)} only.",
            "endpoint",
            "invalid_value",
        )
    window = body.get("completion_window")
    if window is None:
        raise bad_request("Missing required parameter: 'completion_window'.", "completion_window")
    validation.one_of(window, "completion_window", COMPLETION_WINDOWS)
    _check_output_expiry(body.get("output_expires_after"))
    meta = metadata(body)
    source = state.store.find("files", file_id, "input_file_id")
    if source.purpose != "batch":
        raise bad_request(
            f"The input file {file_id!r} was uploaded with purpose {source.purpose!r}; "
            "a batch's input file must have purpose 'batch'.",
            "input_file_id",
        )
    now = time.time()
    rec = BatchRecord(
        id=new_id("batch"),
        endpoint=endpoint,
        input_file_id=file_id,
        completion_window=window,
        metadata=meta,
        created_at=now,
        expires_at=now + state.config.batch_window_seconds,
    )
    state.store.batches[rec.id] = rec
    state.stats.count_batch("created")
    _start(state, rec)
    return ok(rec.to_json())


async def retrieve_batch(request: Request) -> Response:
    rec = BATCHES.get(request)
    _start(get_state(request), rec)  # a batch restored from a snapshot resumes here
    return ok(rec.to_json())


async def list_batches(request: Request) -> Response:
    state = get_state(request)
    for rec in state.store.batches.values():
        _start(state, rec)
    return ok(page([rec.to_json() for rec in state.store.batches.values()], request))


async def cancel_batch(request: Request) -> Response:
    """Cancelling: ``cancelling`` now, ``cancelled`` with partial results soon after."""
    state = get_state(request)
    rec = BATCHES.get(request)
    if rec.status in ("cancelling", "cancelled"):
        return ok(rec.to_json())
    if rec.status not in CANCELLABLE:
        raise SandboxError(
            409, f"Cannot cancel a batch with status '{rec.status}'.", code="invalid_state"
        )
    rec.status, rec.cancelling_at = "cancelling", time.time()
    _start(state, rec)
    state.batch_runner.wake(rec.id)
    return ok(rec.to_json())


routes = [
    Route("/v1/batches", create_batch, methods=["POST"]),
    Route("/v1/batches", list_batches, methods=["GET"]),
    Route("/v1/batches/{batch_id}", retrieve_batch, methods=["GET"]),
    Route("/v1/batches/{batch_id}/cancel", cancel_batch, methods=["POST"]),
]
