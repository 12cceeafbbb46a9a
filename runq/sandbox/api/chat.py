"""Chat Completions: the protocol every OpenAI-compatible server speaks.

Same model policy as the other protocols; the tool loop is driven by the caller. With
``stream: true`` the answer comes as ``chat.completion.chunk`` events ending with
``data: [DONE]`` (plus a usage chunk when ``stream_options.include_usage``). Outcome
faults: ``failed``/``expired`` answer 500, ``rate_limited`` 429, ``incomplete`` cuts
the answer (``finish_reason: length``), ``bad_args`` malforms tool-call arguments.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from runq.sandbox.api import validation
from runq.sandbox.api.chat_store import routes as store_routes
from runq.sandbox.api.chat_store import stored_record
from runq.sandbox.api.http import (
    get_state,
    metadata,
    ok,
    opt_bool,
    opt_int,
    outcome_fault,
    read_json,
)
from runq.sandbox.api.sse import sse, wait_until
from runq.sandbox.engine import model, output_format, reasoning, service_tiers
from runq.sandbox.engine.chat_objects import ChatShape, choices, chunks
from runq.sandbox.engine.errors import SandboxError, bad_request
from runq.sandbox.engine.faults import FAULT_HEADER
from runq.sandbox.engine.ids import new_id
from runq.sandbox.engine.lifecycle import Timeline
from runq.sandbox.engine.reasoning import is_reasoning_model
from runq.sandbox.engine.state import SandboxState
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


async def _stream(
    chunks: list[dict[str, Any]], timeline: Timeline, usage_chunk: dict[str, Any] | None
) -> AsyncIterator[bytes]:
    for i, chunk in enumerate(chunks):
        await wait_until(timeline.token_time(i, len(chunks)))
        yield sse(chunk)
    if usage_chunk is not None:
        yield sse(usage_chunk)
    yield b"data: [DONE]\n\n"


def _check(state: SandboxState, body: dict[str, Any]) -> tuple[str, ChatShape]:
    """OpenAI's checks of a Chat Completions body; the model and the answer's shape."""
    validation.known_parameters(body, validation.CHAT_PARAMS)
    model_name = validation.chat_model(state.config.models, body.get("model"))
    validation.number_in(body, "temperature", 0, 2)
    validation.number_in(body, "top_p", 0, 1)
    validation.number_in(body, "frequency_penalty", -2, 2)
    validation.number_in(body, "presence_penalty", -2, 2)
    validation.integer_in(body, "n", 1, 128)
    validation.integer_in(body, "top_logprobs", 0, 20)
    validation.integer_in(body, "max_completion_tokens", 1)
    validation.integer_in(body, "max_tokens", 1)
    validation.one_of(
        body.get("reasoning_effort"), "reasoning_effort", validation.REASONING_EFFORTS
    )
    validation.one_of(body.get("service_tier"), "service_tier", service_tiers.ACCEPTED)
    validation.sampling_for_model(body, model_name, "reasoning_effort")
    if is_reasoning_model(model_name) and body.get("max_tokens") is not None:
        raise validation.unsupported(
            "max_tokens", model_name, " Use 'max_completion_tokens' instead."
        )
    if body.get("top_logprobs") is not None and not body.get("logprobs"):
        raise bad_request(
            "Invalid value for 'top_logprobs': 'logprobs' must be set to true when "
            "'top_logprobs' is used.",
            "top_logprobs",
        )
    shape = ChatShape(
        n=body.get("n") or 1,
        logprobs=bool(body.get("logprobs")),
        top_logprobs=body.get("top_logprobs") or 0,
    )
    return model_name, shape


@dataclass
class ChatRequest:
    """A Chat Completions body that passed OpenAI's checks, parsed for the model."""

    body: dict[str, Any]
    model_name: str
    shape: ChatShape
    turns: list[Turn]
    fmt: Any
    meta: dict[str, str]
    max_tokens: int | None


@dataclass
class ChatAnswer:
    """The completion planned for a request, and what a stream of it needs."""

    completion: dict[str, Any]
    base: dict[str, Any]
    reply: model.Reply
    finish: str
    timeline: Timeline


def check_chat_request(state: SandboxState, body: dict[str, Any]) -> ChatRequest:
    """Validate a create body the way OpenAI does (400/404 naming the parameter)."""
    model_name, shape = _check(state, body)
    messages = body.get("messages")
    turns = turns_from_messages(messages)
    validation.tool_pairs_chat(list(messages or []))
    fmt = output_format.from_response_format(body.get("response_format"))
    output_format.require_json_word(
        fmt,
        [t.text for t in turns if t.kind == "message"],
        "'messages' must contain the word 'json' in some form, to use 'response_format' of "
        "type 'json_object'.",
        "messages",
    )
    meta = metadata(body)
    max_tokens = opt_int(body, "max_completion_tokens", 1) or opt_int(body, "max_tokens", 1)
    return ChatRequest(body, model_name, shape, turns, fmt, meta, max_tokens)


def answer_chat(state: SandboxState, req: ChatRequest, fault: str | None) -> ChatAnswer:
    """The model's completion for a checked request (live, or a line of a batch)."""
    body, model_name, shape, turns = req.body, req.model_name, req.shape, req.turns
    try:
        reply = model.reply(
            model.ModelInput(
                turns=turns,
                tools=_functions(body.get("tools")),
                tool_choice=body.get("tool_choice") or "auto",
                metadata=req.meta,
                fault=fault,
                output_format=req.fmt,
            )
        )
    except ScriptError as exc:
        raise bad_request(str(exc), "metadata") from exc
    finish = "tool_calls" if reply.calls else "stop"
    answer = reply.text + (reply.refusal or "")
    out_tokens = count_tokens(answer + "".join(c.arguments for c in reply.calls))
    max_tokens = req.max_tokens
    limit = max_tokens if max_tokens is not None else (8 if fault == "incomplete" else None)
    if not reply.calls and reply.refusal is None and limit is not None and out_tokens > limit:
        reply.segments = [model.Segment("".join(split_tokens(reply.text)[:limit]))]
        out_tokens, finish = limit, "length"
    effort = body.get("reasoning_effort")
    thinking = reasoning.reasoning_tokens(
        model_name, reasoning.effort_of(model_name, {"effort": effort}), reply,
        model.last_user_text(turns),
    )  # fmt: skip
    in_tokens = sum(count_tokens(t.text or t.arguments or "") for t in turns)
    completion_tokens = (out_tokens + thinking) * shape.n
    usage = {
        "prompt_tokens": in_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": in_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": thinking * shape.n,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }
    cfg = state.config
    timeline = Timeline.plan(cfg.latency_ms, out_tokens + thinking, cfg.tokens_per_second)
    completion_id = "chatcmpl-" + new_id("x")[2:]  # OpenAI's ids say chatcmpl-, with a dash
    base: dict[str, Any] = {
        "id": completion_id,
        "created": int(timeline.created_at),
        "model": model_name,
        "service_tier": service_tiers.echoed(body.get("service_tier")),
        "system_fingerprint": "fp_sandbox",
    }
    completion = {
        **base,
        "object": "chat.completion",
        "usage": usage,
        "choices": choices(reply, finish, shape),
    }
    if body.get("store"):
        state.store.chat_completions[completion_id] = stored_record(completion, body)
    return ChatAnswer(completion, base, reply, finish, timeline)


async def create_chat_completion(request: Request) -> Response:
    state = get_state(request)
    body = await read_json(request)
    req = check_chat_request(state, body)
    fault = outcome_fault(request)
    state.stats.count_created("chat_completions", req.meta.get("runq_job_id"))
    if fault in ("failed", "expired"):
        raise SandboxError(500, "The model failed to generate a completion (injected).")
    if fault == "rate_limited":
        raise SandboxError(
            429,
            "Rate limit reached (injected).",
            code="rate_limit_exceeded",
            headers={"retry-after": "1", "retry-after-ms": "1000"},
        )
    factor = service_tiers.admit(state, body.get("service_tier"), request.headers.get(FAULT_HEADER))
    planned = answer_chat(state, req, fault)
    timeline = service_tiers.stretched(planned.timeline, factor)
    completion, shape = planned.completion, req.shape
    if opt_bool(body, "stream", False):
        chunk_base = {**planned.base, "object": "chat.completion.chunk"}
        with_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        usage_chunk: dict[str, Any] | None = None
        if with_usage:
            usage_chunk = {**chunk_base, "choices": [], "usage": completion["usage"]}
        stream = chunks(chunk_base, planned.reply, planned.finish, shape, with_usage)
        return StreamingResponse(
            _stream(stream, timeline, usage_chunk), media_type="text/event-stream"
        )
    await wait_until(timeline.done_at)
    return ok(completion)


routes = [Route("/v1/chat/completions", create_chat_completion, methods=["POST"]), *store_routes]
