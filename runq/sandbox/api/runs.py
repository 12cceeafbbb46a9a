"""Assistants runs: create, create-thread-and-run, retrieve, list, cancel,
submit_tool_outputs (each optionally streamed) and run steps.

See :mod:`runq.sandbox.engine.run_objects` for the lazy lifecycle and
:mod:`runq.sandbox.engine.run_planner` for how each step is decided. A thread with an active run
refuses new runs (400); a run waiting for tool outputs expires ``run_expiry_seconds``
after creation (default 10 minutes).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from runq.sandbox.api import code_interpreter, validation
from runq.sandbox.api.assistants import (
    THREADS,
    check_sampling,
    new_thread,
    refuse_if_busy,
    update_thread,
)
from runq.sandbox.api.crud import find_in, page
from runq.sandbox.api.http import (
    get_state,
    metadata,
    ok,
    opt_bool,
    outcome_fault,
    read_json,
)
from runq.sandbox.api.sse import sse, wait_until
from runq.sandbox.engine.errors import bad_request
from runq.sandbox.engine.ids import new_id
from runq.sandbox.engine.run_events import segment_events
from runq.sandbox.engine.run_objects import RunRecord, render_run, render_steps
from runq.sandbox.engine.run_planner import plan_segment
from runq.sandbox.engine.state import SandboxState
from runq.sandbox.engine.thread_objects import ThreadRecord, message_json
from runq.sandbox.engine.transcript import content_text


async def _create_run(
    request: Request, state: SandboxState, thread: ThreadRecord, body: dict[str, Any]
) -> Response:
    refuse_if_busy(state, thread, "create a run on")
    assistant = state.store.find("assistants", body.get("assistant_id") or "")
    check_sampling(state, body)
    meta = metadata(body)
    instructions = body.get("instructions") or assistant.get("instructions") or ""
    if body.get("additional_instructions"):
        instructions += "\n" + body["additional_instructions"]
    now = time.time()
    params = {
        "model": body.get("model") or assistant["model"],
        "instructions": instructions,
        "tools": body.get("tools") if body.get("tools") is not None else assistant["tools"],
        "tool_resources": assistant.get("tool_resources"),
        "metadata": meta,
        "tool_choice": body.get("tool_choice") or "auto",
        "parallel_tool_calls": opt_bool(body, "parallel_tool_calls", True),
        "max_completion_tokens": body.get("max_completion_tokens"),
        "max_prompt_tokens": body.get("max_prompt_tokens"),
        "response_format": body.get("response_format") or assistant.get("response_format"),
        "temperature": body.get("temperature", assistant.get("temperature", 1.0)),
        "top_p": body.get("top_p", assistant.get("top_p", 1.0)),
        "fault": outcome_fault(request),
    }
    params["metadata_for_script"] = {**assistant.get("metadata", {}), **meta}
    run = RunRecord(
        new_id("run"),
        thread.id,
        assistant["id"],
        now,
        now + state.config.run_expiry_seconds,
        params,
        job_id=meta.get("runq_job_id"),
    )
    run.params["metadata"] = meta
    code_turn = await code_interpreter.for_run(state, thread, params)  # runs the code, if any
    plan_segment(state, run, thread, now, code_turn)
    state.store.runs[run.id] = run
    thread.run_ids.append(run.id)
    state.stats.count_created("runs", run.job_id)
    if opt_bool(body, "stream", False):
        return _stream(run, 0)
    return ok(render_run(run))


def _get_run(state: SandboxState, request: Request) -> tuple[ThreadRecord, RunRecord]:
    thread = THREADS.get(request)
    run = state.store.find("runs", request.path_params["run_id"])
    if run.thread_id != thread.id:
        raise bad_request(f"Run {run.id} does not belong to thread {thread.id}.")
    return thread, run


async def create_run(request: Request) -> Response:
    state = get_state(request)
    thread = THREADS.get(request)
    body = await read_json(request)
    validation.known_parameters(body, validation.RUN_PARAMS)
    for msg in body.get("additional_messages") or []:
        thread.messages.append(
            (
                0.0,
                message_json(
                    thread.id,
                    msg.get("role", "user"),
                    content_text(msg.get("content")),
                    created=time.time(),
                ),
            )
        )
    return await _create_run(request, state, thread, body)


async def create_thread_and_run(request: Request) -> Response:
    state = get_state(request)
    body = await read_json(request)
    validation.known_parameters(body, validation.THREAD_AND_RUN_PARAMS)
    state.store.find("assistants", body.get("assistant_id") or "")
    thread = new_thread(state, body.get("thread") or {})
    return await _create_run(request, state, thread, body)


async def retrieve_run(request: Request) -> Response:
    _, run = _get_run(get_state(request), request)
    return ok(render_run(run))


async def list_runs(request: Request) -> Response:
    state = get_state(request)
    thread = THREADS.get(request)
    now = time.time()
    runs = [render_run(state.store.runs[r], now) for r in thread.run_ids if r in state.store.runs]
    return ok(page(runs, request))


async def cancel_run(request: Request) -> Response:
    state = get_state(request)
    _, run = _get_run(state, request)
    state.stats.count_cancel_request("runs", run.job_id)
    now = time.time()
    status = run.status(now)
    if status not in ("queued", "in_progress", "requires_action", "cancelling"):
        raise bad_request(f"Cannot cancel run with status '{status}'.")
    if run.cancelled_at is None:
        run.cancelled_at = now
        state.stats.count_cancelled("runs", run.job_id)
    return ok(render_run(run, now, force="cancelling" if status != "cancelled" else None))


async def submit_tool_outputs(request: Request) -> Response:
    state = get_state(request)
    thread, run = _get_run(state, request)
    body = await read_json(request)
    now = time.time()
    if run.status(now) != "requires_action":
        raise bad_request(
            f'Runs in status "{run.status(now)}" do not accept tool outputs.', "tool_outputs"
        )
    seg = run.segments[-1]
    outputs = body.get("tool_outputs")
    expected = {c.call_id for c in seg.reply.calls}
    if not isinstance(outputs, list):
        raise bad_request("Missing required parameter: 'tool_outputs'.", "tool_outputs")
    given = {o.get("tool_call_id"): str(o.get("output", "")) for o in outputs}
    if set(given) != expected:
        missing = sorted(expected - set(given))
        raise bad_request(
            f"Expected tool outputs for call ids {sorted(expected)}; missing {missing}.",
            "tool_outputs",
        )
    seg.outputs, seg.submitted_at = given, now
    plan_segment(state, run, thread, now)
    if opt_bool(body, "stream", False):
        return _stream(run, len(run.segments) - 1)
    return ok(render_run(run, now))


async def list_steps(request: Request) -> Response:
    _, run = _get_run(get_state(request), request)
    return ok(page(render_steps(run), request))


async def retrieve_step(request: Request) -> Response:
    _, run = _get_run(get_state(request), request)
    steps = {step["id"]: step for step in render_steps(run)}
    return ok(find_in(steps, request.path_params["step_id"], "run step"))


async def update_run(request: Request) -> Response:
    """Only a run's metadata can change."""
    _, run = _get_run(get_state(request), request)
    body = await read_json(request)
    validation.known_parameters(body, ("metadata",))
    run.params["metadata"] = metadata(body)
    return ok(render_run(run))


# -- streaming ----------------------------------------------------------------------------
def _stream(run: RunRecord, index: int) -> StreamingResponse:
    return StreamingResponse(_events(run, index), media_type="text/event-stream")


async def _events(run: RunRecord, index: int) -> AsyncIterator[bytes]:
    """Send the segment's events as they fall due; a cancel ends the stream at once."""
    for due, name, data in segment_events(run, index):
        await wait_until(due)
        if run.cancelled_at is not None:
            yield sse(render_run(run), "thread.run.cancelled")
            break
        yield sse(data, name)
    yield b"event: done\ndata: [DONE]\n\n"


routes = [
    Route("/v1/threads/runs", create_thread_and_run, methods=["POST"]),
    # after ``/v1/threads/runs``, which it would otherwise swallow (thread id "runs")
    Route("/v1/threads/{thread_id}", update_thread, methods=["POST"]),
    Route("/v1/threads/{thread_id}/runs", create_run, methods=["POST"]),
    Route("/v1/threads/{thread_id}/runs", list_runs, methods=["GET"]),
    Route("/v1/threads/{thread_id}/runs/{run_id}", retrieve_run, methods=["GET"]),
    Route("/v1/threads/{thread_id}/runs/{run_id}", update_run, methods=["POST"]),
    Route("/v1/threads/{thread_id}/runs/{run_id}/cancel", cancel_run, methods=["POST"]),
    Route(
        "/v1/threads/{thread_id}/runs/{run_id}/submit_tool_outputs",
        submit_tool_outputs,
        methods=["POST"],
    ),
    Route("/v1/threads/{thread_id}/runs/{run_id}/steps", list_steps, methods=["GET"]),
    Route("/v1/threads/{thread_id}/runs/{run_id}/steps/{step_id}", retrieve_step, methods=["GET"]),
]
