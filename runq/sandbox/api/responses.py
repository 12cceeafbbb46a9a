"""Responses API routes: create, retrieve, cancel, delete, input items.

Create plans the whole response up front (:mod:`runq.sandbox.api.response_plan`) and
stores it; status is then derived lazily from the clock (see
:mod:`runq.sandbox.engine.lifecycle`), and streams replay the planned events.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from runq.sandbox.api import code_interpreter, response_extras, validation
from runq.sandbox.api.crud import Collection, page
from runq.sandbox.api.http import get_state, ok, opt_bool, outcome_fault, read_json
from runq.sandbox.api.response_plan import check_body, plan_response
from runq.sandbox.api.sse import sse, wait_until
from runq.sandbox.engine import mcp_turn, service_tiers
from runq.sandbox.engine.errors import bad_request
from runq.sandbox.engine.faults import FAULT_HEADER
from runq.sandbox.engine.response_events import plan_events
from runq.sandbox.engine.response_objects import ResponseRecord, render

POLL_AFTER_HEADER = "openai-poll-after-ms"

# Deleting a response answers ``"object": "response"``, as the spec's example does.
RESPONSES = Collection[ResponseRecord]("responses", "response_id", "response")


def _poll_headers(rec: ResponseRecord) -> dict[str, str]:
    now = time.time()
    if rec.is_terminal(now):
        return {}
    return {POLL_AFTER_HEADER: str(rec.timeline.remaining_ms(now))}


async def create_response(request: Request) -> Response:
    state = get_state(request)
    body = await read_json(request)
    fault = outcome_fault(request)
    code_turn = await code_interpreter.for_response(state, body)  # runs the code, if any
    mcp = None
    if code_turn is None:  # lists and calls the MCP servers' tools, if any
        mcp = await mcp_turn.for_response(
            state, body, lambda: check_body(state, body, validation.RESPONSES_PARAMS)
        )
    rec = plan_response(state, body, fault, code_turn, mcp)
    tier = body.get("service_tier")
    factor = service_tiers.admit(state, tier, request.headers.get(FAULT_HEADER))
    rec.timeline = service_tiers.stretched(rec.timeline, factor)
    if rec.store:
        state.store.responses[rec.id] = rec
        conv = rec.params.get("conversation")
        if conv:
            state.store.conversations[conv["id"]].add_response(rec)
    state.stats.count_created("responses", rec.job_id)
    if rec.background:
        state.stats.response_started(rec.id, rec.timeline.done_at)
        state.webhooks.response_created(rec)  # its end is POSTed to the webhook URL, if any
    if opt_bool(body, "stream", False):
        return _stream(rec, -1)
    if rec.background:
        return ok(render(rec), headers=_poll_headers(rec))
    await wait_until(rec.timeline.done_at)
    return ok(render(rec))


async def _events(rec: ResponseRecord, starting_after: int) -> AsyncIterator[bytes]:
    """Send the events after ``starting_after`` as they fall due; stop if cancelled."""
    for due, event in plan_events(rec):
        if event["sequence_number"] <= starting_after:
            continue
        await wait_until(due)
        if rec.cancelled_at is not None and rec.cancelled_at <= due:
            return
        yield sse(event, event["type"])


def _stream(rec: ResponseRecord, starting_after: int) -> StreamingResponse:
    return StreamingResponse(
        _events(rec, starting_after),
        media_type="text/event-stream",
        headers={"cache-control": "no-cache"},
    )


async def retrieve_response(request: Request) -> Response:
    rec = RESPONSES.get(request)
    if request.query_params.get("stream", "").lower() == "true":
        if not rec.background:
            raise bad_request("Only background responses can be streamed again.", "stream")
        try:
            after = int(request.query_params.get("starting_after", "-1"))
        except ValueError as exc:
            raise bad_request(
                "Invalid 'starting_after': expected an integer.", "starting_after"
            ) from exc
        return _stream(rec, after)
    return ok(render(rec), headers=_poll_headers(rec))


async def cancel_response(request: Request) -> Response:
    state = get_state(request)
    rec = RESPONSES.get(request)
    if not rec.background:
        raise bad_request("Only responses created with background=true can be cancelled.")
    state.stats.count_cancel_request("responses", rec.job_id)
    now = time.time()
    if not rec.is_terminal(now):
        rec.cancelled_at = now
        state.stats.count_cancelled("responses", rec.job_id)
        state.stats.response_ended_early(rec.id, rec.timeline.done_at)
        state.webhooks.response_cancelled(rec)
    return ok(render(rec, now))


async def list_input_items(request: Request) -> Response:
    return ok(page(RESPONSES.get(request).input_items, request, default_order="desc"))


routes = [
    *response_extras.routes,  # before /v1/responses/{response_id}, which would shadow them
    Route("/v1/responses", create_response, methods=["POST"]),
    Route("/v1/responses/{response_id}", retrieve_response, methods=["GET"]),
    Route("/v1/responses/{response_id}", RESPONSES.delete, methods=["DELETE"]),
    Route("/v1/responses/{response_id}/cancel", cancel_response, methods=["POST"]),
    Route("/v1/responses/{response_id}/input_items", list_input_items, methods=["GET"]),
]
