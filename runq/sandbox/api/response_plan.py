"""Planning a response from its create body: validation, the model's reply, usage, timeline.

``POST /v1/responses`` decides the response's whole life before answering: the body is
checked the way the real API checks it (400s naming the parameter), the earlier turns
come from ``previous_response_id`` or ``conversation``, the model answers, and the
result is a :class:`~runq.sandbox.engine.response_objects.ResponseRecord` whose status
is then only derived from the clock. Nothing here touches the request object, but the
messages and parameters are the API's, so it sits beside the route.
"""

from __future__ import annotations

import re
from typing import Any

from runq.sandbox.api import validation
from runq.sandbox.api.http import metadata, opt_bool, opt_int, opt_str
from runq.sandbox.engine import file_search, input_items, model, output_format, reasoning
from runq.sandbox.engine.code_calls import CodeTurn
from runq.sandbox.engine.errors import bad_request, not_found
from runq.sandbox.engine.ids import new_id
from runq.sandbox.engine.lifecycle import Timeline
from runq.sandbox.engine.mcp_turn import McpTurn
from runq.sandbox.engine.response_objects import (
    FAULT_ENDINGS,
    ResponseRecord,
    output_items,
    usage_block,
)
from runq.sandbox.engine.state import SandboxState
from runq.sandbox.engine.tokens import count_tokens, split_tokens
from runq.sandbox.engine.tool_policy import ScriptError
from runq.sandbox.engine.transcript import Turn, turns_from_response_input
from runq.sandbox.engine.web_search import TOOL_TYPES as WEB_SEARCH_TYPES
from runq.sandbox.engine.web_search import WebSearch


def _history(state: SandboxState, body: dict[str, Any]) -> tuple[list[Turn], dict | None]:
    """Earlier turns from ``previous_response_id`` or ``conversation``."""
    prev_id = opt_str(body, "previous_response_id")
    conv = body.get("conversation")
    if prev_id and conv:
        raise bad_request(
            "Parameters 'previous_response_id' and 'conversation' cannot be used together.",
            "conversation",
        )
    if prev_id:
        prev = state.store.responses.get(prev_id)
        if prev is None:
            raise bad_request(
                f"Previous response with id '{prev_id}' not found.",
                "previous_response_id",
                "previous_response_not_found",
            )
        return list(prev.history), None
    if conv:
        conv_id = conv.get("id") if isinstance(conv, dict) else conv
        record = state.store.conversations.get(conv_id) if isinstance(conv_id, str) else None
        if record is None:
            raise not_found("conversation", str(conv_id), "conversation")
        return list(record.history), {"id": conv_id}
    return [], None


def _tools(
    state: SandboxState, tools: list[Any]
) -> tuple[list[dict[str, Any]], model.Searcher | None]:
    """Function tools for the policy, and a searcher when file_search is enabled."""
    functions: list[dict[str, Any]] = []
    searcher = None
    for i, tool in enumerate(tools):
        kind = tool.get("type") if isinstance(tool, dict) else None
        if kind == "function":
            if not isinstance(tool.get("name"), str):
                raise bad_request(
                    f"Missing required parameter: 'tools[{i}].name'.", f"tools[{i}].name"
                )
            tool.setdefault("strict", True)  # the Responses API's default
            tool.setdefault("parameters", {})
            tool.setdefault("description", None)
            functions.append(tool)
        elif kind == "file_search":
            searcher = file_search.tool_searcher(state, tool, f"tools[{i}]")
        elif kind == "code_interpreter":
            continue  # checked and run before planning (runq.sandbox.api.code_interpreter)
        elif kind in WEB_SEARCH_TYPES or kind == "mcp":
            continue  # see _web_search; mcp is checked and run before planning (.mcp_turn)
        else:
            raise bad_request(f"Unsupported tool type: {kind!r}.", f"tools[{i}].type")
    return functions, searcher


def _web_search(tools: list[Any], tool_choice: Any) -> WebSearch | None:
    """The offered ``web_search`` tool, validated (``None``: not offered, or no tools)."""
    for i, tool in enumerate(tools):
        if isinstance(tool, dict) and tool.get("type") in WEB_SEARCH_TYPES:
            web = WebSearch.parse(tool, f"tools[{i}]")
            return None if tool_choice == "none" else web
    return None


def _truncate(text: str, max_tokens: int) -> str:
    return "".join(split_tokens(text)[:max_tokens])


LATENCY_KEY = "sandbox_latency_ms"
_LATENCY_LINE = re.compile(r"^\s*sandbox_latency_ms\s*:\s*(\d+)\s*$", re.MULTILINE | re.IGNORECASE)


def _latency_ms(meta: dict[str, str], instructions: str | None, default: float) -> float:
    """This response's latency: the `sandbox_latency_ms` metadata entry or instructions
    line (tests plan a slow run with it), else the server's setting."""
    raw = meta.get(LATENCY_KEY)
    if raw is None and instructions:
        found = _LATENCY_LINE.search(instructions)
        raw = found.group(1) if found else None
    if raw is None:
        return default
    if not raw.isdigit():
        raise bad_request(f"Invalid metadata '{LATENCY_KEY}': expected milliseconds.", "metadata")
    return float(raw)


def check_body(state: SandboxState, body: dict[str, Any], allowed: frozenset[str]) -> str:
    """The checks OpenAI makes on a create body before any work; the model's name."""
    validation.known_parameters(body, allowed)
    model_name = validation.responses_model(state.config.models, body.get("model"))
    validation.includes(body)
    input_items.check_required(body.get("input"))
    validation.number_in(body, "temperature", 0, 2)
    validation.number_in(body, "top_p", 0, 1)
    validation.integer_in(body, "top_logprobs", 0, 20)
    validation.integer_in(body, "max_output_tokens", 16)
    validation.integer_in(body, "max_tool_calls", 1)
    validation.one_of(body.get("truncation"), "truncation", ("auto", "disabled"))
    validation.one_of(
        body.get("service_tier"), "service_tier", ("auto", "default", "flex", "scale", "priority")
    )
    reasoning = body.get("reasoning")
    if reasoning is not None and not isinstance(reasoning, dict):
        raise bad_request("Invalid type for 'reasoning': expected an object.", "reasoning")
    if reasoning:
        validation.one_of(reasoning.get("effort"), "reasoning.effort", validation.REASONING_EFFORTS)
        validation.one_of(
            reasoning.get("summary"), "reasoning.summary", ("auto", "concise", "detailed")
        )
    validation.sampling_for_model(body, model_name, "reasoning")
    return model_name


def plan_response(
    state: SandboxState,
    body: dict[str, Any],
    fault: str | None,
    code_turn: CodeTurn | None = None,
    mcp_turn: McpTurn | None = None,
) -> ResponseRecord:
    """Validate a create body and plan the response's whole life (``code_turn``: what the
    code interpreter already ran for it, which is then the model's answer)."""
    model_name = check_body(state, body, validation.RESPONSES_PARAMS)
    instructions = opt_str(body, "instructions")
    meta = metadata(body)
    background = opt_bool(body, "background", False)
    store = opt_bool(body, "store", True)
    if background and not store:
        raise bad_request("Background mode requires 'store' to be true.", "store")
    max_out = opt_int(body, "max_output_tokens", minimum=16)
    tools = body.get("tools") or []
    if not isinstance(tools, list):
        raise bad_request("Invalid 'tools': expected an array.", "tools")
    earlier, conversation = _history(state, body)
    new_turns = turns_from_response_input(body.get("input"))
    turns = earlier + new_turns
    validation.tool_pairs_responses(turns)
    fmt = output_format.from_text_param(body.get("text"))
    output_format.require_json_word(
        fmt,
        [instructions or ""] + [t.text for t in turns if t.kind == "message"],
        "Response input messages must contain the word 'json' in some form to use "
        "'text.format' of type 'json_object'.",
        "input",
    )

    functions, searcher = _tools(state, tools)
    web = _web_search(tools, body.get("tool_choice"))
    try:
        reply = model.reply(
            model.ModelInput(
                turns=turns,
                tools=functions,
                tool_choice=body.get("tool_choice") or "auto",
                instructions=instructions,
                metadata=meta,
                search=searcher,
                fault=fault,
                output_format=fmt,
                web_search=web.answer if web is not None else None,
            )
        )
    except ScriptError as exc:
        raise bad_request(str(exc), "metadata") from exc
    if code_turn is not None:
        reply = code_turn.reply()
    elif mcp_turn is not None:
        reply = mcp_turn.merge(reply)
    user_text = model.last_user_text(turns)
    effort = reasoning.effort_of(model_name, body.get("reasoning"))
    thinking = reasoning.reasoning_tokens(model_name, effort, reply, user_text)
    text_out = reply.text + (reply.refusal or "") + "".join(c.arguments for c in reply.calls)
    out_tokens = count_tokens(text_out)
    final_status, error, incomplete = "completed", None, None
    if max_out is not None and out_tokens > max_out and not reply.calls and not reply.refusal:
        reply.segments = [model.Segment(_truncate(reply.text, max_out))]
        out_tokens = max_out
        final_status, incomplete = "incomplete", {"reason": "max_output_tokens"}
    if fault in FAULT_ENDINGS:
        final_status, error, incomplete = FAULT_ENDINGS[fault]
    items = output_items(reply, "incomplete" if final_status == "incomplete" else "completed")
    file_search.attach_results(items, reply.search_results, body.get("include"))
    if code_turn is not None:
        code_turn.attach(items, body.get("include"))
    elif reply.hosted is not None:  # a web search or MCP calls: their items and citations
        reply.hosted.attach(items, body.get("include"))
    encrypted = "reasoning.encrypted_content" in (body.get("include") or [])
    thought = reasoning.reasoning_item(
        model_name, body.get("reasoning"), reply, user_text, encrypted
    )
    if thought is not None:
        items.insert(0, thought)
    if final_status == "failed":
        items = []
    in_tokens = count_tokens(instructions or "") + sum(count_tokens(t.text) for t in turns)
    history = turns + _output_turns(items)
    cfg = state.config
    params = {
        "model": model_name,
        "instructions": instructions,
        "metadata": meta,
        "tools": tools,
        "tool_choice": body.get("tool_choice") or "auto",
        "parallel_tool_calls": opt_bool(body, "parallel_tool_calls", True),
        "max_output_tokens": max_out,
        "previous_response_id": body.get("previous_response_id"),
        "conversation": conversation,
        "temperature": body.get("temperature", 1.0),
        "top_p": body.get("top_p", 1.0),
        "text": _text_echo(body.get("text")),
        "reasoning": {
            "effort": effort,
            "summary": (body.get("reasoning") or {}).get("summary") if effort else None,
        },
        "top_logprobs": body.get("top_logprobs"),
        "service_tier": "default"
        if body.get("service_tier") in (None, "auto")
        else body["service_tier"],
        "prompt_cache_key": body.get("prompt_cache_key"),
        "prompt_cache_retention": body.get("prompt_cache_retention"),
        "safety_identifier": body.get("safety_identifier"),
        "truncation": body.get("truncation"),
        "user": body.get("user"),
    }
    return ResponseRecord(
        id=new_id("resp"),
        params=params,
        timeline=Timeline.plan(
            _latency_ms(meta, instructions, cfg.latency_ms),
            out_tokens + thinking,
            cfg.tokens_per_second,
        ),
        background=background,
        store=store,
        final_status=final_status,
        output=items,
        usage=usage_block(in_tokens, out_tokens + thinking, thinking),
        input_items=input_items.listed(body.get("input"), _stored_item(state)),
        history=history,
        error=error,
        incomplete_details=incomplete,
        job_id=meta.get("runq_job_id"),
    )


def _stored_item(state: SandboxState) -> input_items.Resolver:
    """Finds an item an ``item_reference`` names: a stored response's input or output
    item, or a conversation's item (searched only when a reference is listed)."""

    def find(item_id: str) -> dict[str, Any] | None:
        for rec in state.store.responses.values():
            for item in (*rec.input_items, *rec.output):
                if item.get("id") == item_id:
                    return item
        for conv in state.store.conversations.values():
            for item in conv.items:
                if item.get("id") == item_id:
                    return item
        return None

    return find


def _text_echo(text: Any) -> dict[str, Any]:
    """The request's ``text`` as the response echoes it (format and verbosity)."""
    text = text if isinstance(text, dict) else {}
    fmt = dict(text.get("format") or {"type": "text"})
    if fmt.get("type") == "json_schema":
        fmt["strict"] = fmt.get("strict") is True
    return {"format": fmt, "verbosity": text.get("verbosity") or "medium"}


def _output_turns(items: list[dict[str, Any]]) -> list[Turn]:
    turns = []
    for item in items:
        if item["type"] == "function_call":
            turns.append(
                Turn(
                    "assistant",
                    "",
                    "function_call",
                    call_id=item["call_id"],
                    name=item["name"],
                    arguments=item["arguments"],
                )
            )
        elif item["type"] == "message":
            part = item["content"][0]
            turns.append(Turn("assistant", part.get("text") or part.get("refusal") or ""))
    return turns
