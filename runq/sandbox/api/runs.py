"""Assistants runs: create, create-thread-and-run, retrieve, list, cancel,
submit_tool_outputs (each optionally streamed) and run steps.

See :mod:`sandbox.run_objects` for the lazy lifecycle. A thread with an active run
refuses new runs (400); a run waiting for tool outputs expires ``run_expiry_seconds``
after creation (default 10 minutes).
"""

from __future__ import annotations

import asyncio
import copy
import functools
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from runq.sandbox.api.assistants import (
    ThreadRecord,
    lookup,
    message_json,
    new_thread,
    refuse_if_busy,
)
from runq.sandbox.api.http import metadata, ok, opt_bool, page, read_json
from runq.sandbox.api.vector_stores import search_stores
from runq.sandbox.engine import model
from runq.sandbox.engine.errors import bad_request
from runq.sandbox.engine.ids import new_id
from runq.sandbox.engine.run_objects import RunRecord, Segment, render_run, render_steps
from runq.sandbox.engine.state import SandboxState, get_state
from runq.sandbox.engine.tokens import count_tokens, split_tokens
from runq.sandbox.engine.tool_policy import ScriptError
from runq.sandbox.engine.transcript import Turn, content_text


def _turns(thread: ThreadRecord, run: RunRecord, now: float) -> list[Turn]:
    turns = [Turn(m["role"], content_text(m["content"])) for m in thread.visible(now)]
    for seg in run.segments:
        for call in seg.reply.calls:
            turns.append(
                Turn(
                    "assistant",
                    "",
                    "function_call",
                    call_id=call.call_id,
                    name=call.name,
                    arguments=call.arguments,
                )
            )
        for call in seg.reply.calls:
            if call.call_id in seg.outputs:
                turns.append(
                    Turn(
                        "tool",
                        seg.outputs[call.call_id],
                        "function_call_output",
                        call_id=call.call_id,
                    )
                )
    return turns


def _searcher(state: SandboxState, run: RunRecord, thread: ThreadRecord) -> model.Searcher | None:
    tools = run.params.get("tools") or []
    if not any(t.get("type") == "file_search" for t in tools):
        return None
    ids: list[str] = []
    for resources in (thread.tool_resources, run.params.get("tool_resources")):
        ids += ((resources or {}).get("file_search") or {}).get("vector_store_ids") or []
    return functools.partial(search_stores, state, ids)


def assistants_text(reply: model.Reply) -> tuple[str, list[dict[str, Any]]]:
    """Answer text with ``【n†file】`` markers and Assistants-style file citations."""
    text, annotations = "", []
    for i, seg in enumerate(reply.segments):
        text += (" " if i else "") + seg.text
        if seg.file_id:
            marker = f"【{i}:0†{seg.filename}】"
            annotations.append(
                {
                    "type": "file_citation",
                    "text": marker,
                    "start_index": len(text),
                    "end_index": len(text) + len(marker),
                    "file_citation": {"file_id": seg.file_id},
                }
            )
            text += marker
    return text, annotations


def plan_segment(state: SandboxState, run: RunRecord, thread: ThreadRecord, start: float) -> None:
    """Decide the next step of ``run`` (tool calls or the answer) and when it is done."""
    first = not run.segments
    p = run.params
    fault = p.get("fault")
    tools = [t["function"] for t in p.get("tools") or [] if t.get("type") == "function"]
    try:
        reply = model.reply(
            model.ModelInput(
                turns=_turns(thread, run, start),
                tools=tools,
                tool_choice=p.get("tool_choice"),
                instructions=p.get("instructions"),
                metadata=p.get("metadata_for_script") or {},
                search=_searcher(state, run, thread),
                fault=fault,
            )
        )
    except ScriptError as exc:
        raise bad_request(str(exc), "metadata") from exc
    text, annotations = assistants_text(reply)
    outcome = "requires_action" if reply.calls else "completed"
    if first and fault in ("failed", "rate_limited"):
        outcome = "failed"
    elif first and fault in ("expired", "incomplete"):
        outcome = fault
    if outcome == "incomplete":
        text, annotations = "".join(split_tokens(text)[:8]), []
    out_tokens = count_tokens(text + "".join(c.arguments for c in reply.calls))
    in_tokens = sum(count_tokens(t.text or t.arguments or "") for t in _turns(thread, run, start))
    cfg = state.config
    latency = cfg.latency_ms / 1000
    gen = out_tokens / cfg.tokens_per_second if cfg.tokens_per_second > 0 else 0.0
    seg = Segment(
        start + (latency / 4 if first else 0),
        start + latency + gen,
        reply,
        new_id("step"),
        outcome,
        in_tokens,
        out_tokens,
        search_step_id=new_id("step") if reply.searched else None,
    )
    if not reply.calls and outcome in ("completed", "incomplete"):
        msg = message_json(
            thread.id,
            "assistant",
            text,
            created=seg.done_at,
            annotations=annotations,
            run_id=run.id,
            assistant_id=run.assistant_id,
        )
        seg.message_id, seg.message = msg["id"], msg
        thread.messages.append((seg.done_at, msg))
    run.segments.append(seg)


async def _create_run(
    request: Request, state: SandboxState, thread: ThreadRecord, body: dict[str, Any]
) -> Response:
    refuse_if_busy(state, thread, "create a run on")
    assistant = lookup(state, "assistants", body.get("assistant_id") or "")
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
        "fault": state.outcome_fault(request),
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
    plan_segment(state, run, thread, now)
    state.store.runs[run.id] = run
    thread.run_ids.append(run.id)
    state.stats.count_created("runs", run.job_id)
    if opt_bool(body, "stream", False):
        return _stream(run, 0)
    return ok(render_run(run))


def _get_run(state: SandboxState, request: Request) -> tuple[ThreadRecord, RunRecord]:
    thread = lookup(state, "threads", request.path_params["thread_id"])
    run = lookup(state, "runs", request.path_params["run_id"])
    if run.thread_id != thread.id:
        raise bad_request(f"Run {run.id} does not belong to thread {thread.id}.")
    return thread, run


async def create_run(request: Request) -> Response:
    state = get_state(request)
    thread = lookup(state, "threads", request.path_params["thread_id"])
    body = await read_json(request)
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
    lookup(state, "assistants", body.get("assistant_id") or "")
    thread = new_thread(state, body.get("thread") or {})
    return await _create_run(request, state, thread, body)


async def retrieve_run(request: Request) -> Response:
    _, run = _get_run(get_state(request), request)
    return ok(render_run(run))


async def list_runs(request: Request) -> Response:
    state = get_state(request)
    thread = lookup(state, "threads", request.path_params["thread_id"])
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


# -- streaming ----------------------------------------------------------------------------
def _segment_events(run: RunRecord, index: int) -> list[tuple[float, str, dict[str, Any]]]:
    seg = run.segments[index]
    t0, t1 = seg.started_at, seg.done_at
    ev: list[tuple[float, str, dict[str, Any]]] = []
    if index == 0:
        ev.append((run.created_at, "thread.run.created", render_run(run, run.created_at, "queued")))
        ev.append((run.created_at, "thread.run.queued", render_run(run, run.created_at, "queued")))
    else:
        prev = [s for s in render_steps(run, t0) if s["id"] == run.segments[index - 1].step_id]
        ev += [(t0, "thread.run.step.completed", prev[0])] if prev else []
    ev.append((t0, "thread.run.in_progress", render_run(run, t0, "in_progress")))
    steps = {s["id"]: s for s in render_steps(run, t1)}
    step = copy.deepcopy(steps[seg.step_id])
    started = {**step, "status": "in_progress", "completed_at": None, "usage": None}
    ev.append((t0, "thread.run.step.created", started))
    ev.append((t0, "thread.run.step.in_progress", started))
    if seg.message:
        msg = seg.message or {}
        opening = {**msg, "status": "in_progress", "content": [], "completed_at": None}
        ev.append((t0, "thread.message.created", opening))
        ev.append((t0, "thread.message.in_progress", opening))
        pieces = split_tokens(msg["content"][0]["text"]["value"])
        for i, piece in enumerate(pieces):
            at = t0 + (t1 - t0) * i / max(1, len(pieces))
            ev.append(
                (
                    at,
                    "thread.message.delta",
                    {
                        "id": msg["id"],
                        "object": "thread.message.delta",
                        "delta": {
                            "content": [{"index": 0, "type": "text", "text": {"value": piece}}]
                        },
                    },
                )
            )
        ev.append((t1, "thread.message.completed", msg))
    if seg.outcome != "requires_action":
        ev.append((t1, "thread.run.step.completed", step))
    final = {
        "requires_action": "thread.run.requires_action",
        "completed": "thread.run.completed",
        "failed": "thread.run.failed",
        "expired": "thread.run.expired",
        "incomplete": "thread.run.incomplete",
    }[seg.outcome]
    ev.append((t1, final, render_run(run, t1 + 1e-6)))
    return ev


def _stream(run: RunRecord, index: int) -> StreamingResponse:
    return StreamingResponse(_events(run, index), media_type="text/event-stream")


async def _events(run: RunRecord, index: int) -> AsyncIterator[bytes]:
    for due, name, data in _segment_events(run, index):
        delay = due - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        if run.cancelled_at is not None:
            data = render_run(run)
            yield f"event: thread.run.cancelled\ndata: {json.dumps(data)}\n\n".encode()
            break
        yield f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()
    yield b"event: done\ndata: [DONE]\n\n"


routes = [
    Route("/v1/threads/runs", create_thread_and_run, methods=["POST"]),
    Route("/v1/threads/{thread_id}/runs", create_run, methods=["POST"]),
    Route("/v1/threads/{thread_id}/runs", list_runs, methods=["GET"]),
    Route("/v1/threads/{thread_id}/runs/{run_id}", retrieve_run, methods=["GET"]),
    Route("/v1/threads/{thread_id}/runs/{run_id}/cancel", cancel_run, methods=["POST"]),
    Route(
        "/v1/threads/{thread_id}/runs/{run_id}/submit_tool_outputs",
        submit_tool_outputs,
        methods=["POST"],
    ),
    Route("/v1/threads/{thread_id}/runs/{run_id}/steps", list_steps, methods=["GET"]),
]
