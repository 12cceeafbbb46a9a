"""Chat Completions: the protocol every OpenAI-compatible server speaks.

Same model policy as the other protocols; the tool loop is driven by the caller. With
``stream: true`` the answer comes as ``chat.completion.chunk`` events ending with
``data: [DONE]`` (plus a usage chunk when ``stream_options.include_usage``). Outcome
faults: ``failed``/``expired`` answer 500, ``rate_limited`` 429, ``incomplete`` cuts
the answer (``finish_reason: length``), ``bad_args`` malforms tool-call arguments.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from runq.sandbox.api.http import (
    get_state,
    metadata,
    ok,
    opt_bool,
    opt_int,
    opt_str,
    outcome_fault,
    read_json,
)
from runq.sandbox.api.sse import sse, wait_until
from runq.sandbox.engine import model
from runq.sandbox.engine.errors import SandboxError, bad_request
from runq.sandbox.engine.ids import new_id
from runq.sandbox.engine.lifecycle import Timeline
from runq.sandbox.engine.tokens import count_tokens, split_tokens
from runq.sandbox.engine.tool_policy import ScriptError
from runq.sandbox.engine.transcript import Turn, content_text


def turns_from_messages(messages: Any) -> list[Turn]:
    if not isinstance(messages, list) or not messages:
        raise bad_request("Missing required parameter: 'messages'.", "messages")
    turns: list[Turn] = []
    for i, msg in enumerate(messages):
        role = msg.get("role") if isinstance(msg, dict) else None
        if role in ("system", "developer", "user"):
            turns.append(Turn(role, content_text(msg.get("content"))))
        elif role == "assistant":
            if msg.get("content"):
                turns.append(Turn("assistant", content_text(msg["content"])))
            for call in msg.get("tool_calls") or []:
                fn = call.get("function") or {}
                turns.append(
                    Turn(
                        "assistant",
                        "",
                        "function_call",
                        call_id=call.get("id"),
                        name=fn.get("name"),
                        arguments=fn.get("arguments"),
                    )
                )
        elif role == "tool":
            if not msg.get("tool_call_id"):
                raise bad_request(f"Missing 'messages[{i}].tool_call_id'.", f"messages[{i}]")
            turns.append(
                Turn(
                    "tool",
                    content_text(msg.get("content")),
                    "function_call_output",
                    call_id=msg["tool_call_id"],
                )
            )
        else:
            raise bad_request(f"Invalid 'messages[{i}].role': {role!r}.", f"messages[{i}].role")
    return turns


def _functions(tools: Any) -> list[dict[str, Any]]:
    out = []
    for i, tool in enumerate(tools or []):
        fn = tool.get("function") if isinstance(tool, dict) else None
        if tool.get("type") != "function" or not isinstance(fn, dict) or "name" not in fn:
            raise bad_request(f"Invalid 'tools[{i}]': expected a function tool.", f"tools[{i}]")
        out.append(fn)
    return out


def _message(reply: model.Reply) -> dict[str, Any]:
    message: dict[str, Any] = {
        "role": "assistant",
        "content": reply.text if not reply.calls else None,
        "refusal": None,
        "annotations": [],
    }
    if reply.calls:
        message["tool_calls"] = [
            {
                "id": c.call_id,
                "type": "function",
                "function": {"name": c.name, "arguments": c.arguments},
            }
            for c in reply.calls
        ]
    return message


def _chunks(body: dict[str, Any], reply: model.Reply, finish: str) -> list[dict[str, Any]]:
    """The stream's chunks (without usage): role, content or tool-call deltas, finish."""
    deltas: list[dict[str, Any]] = [{"role": "assistant", "content": "", "refusal": None}]
    if reply.calls:
        for i, c in enumerate(reply.calls):
            deltas.append(
                {
                    "tool_calls": [
                        {
                            "index": i,
                            "id": c.call_id,
                            "type": "function",
                            "function": {"name": c.name, "arguments": ""},
                        }
                    ]
                }
            )
            deltas.append({"tool_calls": [{"index": i, "function": {"arguments": c.arguments}}]})
    else:
        deltas.extend({"content": piece} for piece in split_tokens(reply.text))
    chunks = [
        {**body, "choices": [{"index": 0, "delta": d, "finish_reason": None, "logprobs": None}]}
        for d in deltas
    ]
    chunks.append(
        {**body, "choices": [{"index": 0, "delta": {}, "finish_reason": finish, "logprobs": None}]}
    )
    return chunks


async def _stream(
    chunks: list[dict[str, Any]], timeline: Timeline, usage_chunk: dict[str, Any] | None
) -> AsyncIterator[bytes]:
    for i, chunk in enumerate(chunks):
        await wait_until(timeline.token_time(i, len(chunks)))
        yield sse(chunk)
    if usage_chunk is not None:
        yield sse(usage_chunk)
    yield b"data: [DONE]\n\n"


async def create_chat_completion(request: Request) -> Response:
    state = get_state(request)
    body = await read_json(request)
    model_name = opt_str(body, "model")
    if not model_name:
        raise bad_request("Missing required parameter: 'model'.", "model")
    turns = turns_from_messages(body.get("messages"))
    meta = metadata(body)
    max_tokens = opt_int(body, "max_completion_tokens", 1) or opt_int(body, "max_tokens", 1)
    fault = outcome_fault(request)
    state.stats.count_created("chat_completions", meta.get("runq_job_id"))
    if fault in ("failed", "expired"):
        raise SandboxError(500, "The model failed to generate a completion (injected).")
    if fault == "rate_limited":
        raise SandboxError(
            429,
            "Rate limit reached (injected).",
            code="rate_limit_exceeded",
            headers={"retry-after": "1", "retry-after-ms": "1000"},
        )
    try:
        reply = model.reply(
            model.ModelInput(
                turns=turns,
                tools=_functions(body.get("tools")),
                tool_choice=body.get("tool_choice") or "auto",
                metadata=meta,
                fault=fault,
            )
        )
    except ScriptError as exc:
        raise bad_request(str(exc), "metadata") from exc
    finish = "tool_calls" if reply.calls else "stop"
    out_tokens = count_tokens(reply.text + "".join(c.arguments for c in reply.calls))
    limit = max_tokens if max_tokens is not None else (8 if fault == "incomplete" else None)
    if not reply.calls and limit is not None and out_tokens > limit:
        reply.segments = [model.Segment("".join(split_tokens(reply.text)[:limit]))]
        out_tokens, finish = limit, "length"
    in_tokens = sum(count_tokens(t.text or t.arguments or "") for t in turns)
    usage = {
        "prompt_tokens": in_tokens,
        "completion_tokens": out_tokens,
        "total_tokens": in_tokens + out_tokens,
    }
    cfg = state.config
    timeline = Timeline.plan(cfg.latency_ms, out_tokens, cfg.tokens_per_second)
    base = {
        "id": new_id("chatcmpl"),
        "created": int(timeline.created_at),
        "model": model_name,
        "service_tier": "default",
    }
    if opt_bool(body, "stream", False):
        chunk_base = {**base, "object": "chat.completion.chunk"}
        options = body.get("stream_options") or {}
        usage_chunk = (
            {**chunk_base, "choices": [], "usage": usage} if options.get("include_usage") else None
        )
        return StreamingResponse(
            _stream(_chunks(chunk_base, reply, finish), timeline, usage_chunk),
            media_type="text/event-stream",
        )
    delay = timeline.done_at - time.time()
    if delay > 0:
        await asyncio.sleep(delay)
    return ok(
        {
            **base,
            "object": "chat.completion",
            "usage": usage,
            "choices": [
                {"index": 0, "message": _message(reply), "finish_reason": finish, "logprobs": None}
            ],
        }
    )


routes = [Route("/v1/chat/completions", create_chat_completion, methods=["POST"])]
