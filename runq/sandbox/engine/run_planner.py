"""Planning one step of an Assistants run: what the model does next, and when.

A run advances in *segments* (see :mod:`runq.sandbox.engine.run_objects`): one at
creation and one after each ``submit_tool_outputs``. :func:`plan_segment` asks the model
for the next step from the thread's visible messages plus the run's calls and outputs so
far, times it with the server's latency model, and writes the assistant's message into
the thread, visible only once the step is done.
"""

from __future__ import annotations

from typing import Any

from runq.sandbox.engine import file_search, model, output_format
from runq.sandbox.engine.code_calls import CodeTurn, publish_files
from runq.sandbox.engine.errors import bad_request
from runq.sandbox.engine.ids import new_id
from runq.sandbox.engine.run_objects import RunRecord, Segment
from runq.sandbox.engine.state import SandboxState
from runq.sandbox.engine.thread_objects import ThreadRecord, message_json
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
    tool = next((t for t in tools if t.get("type") == "file_search"), None)
    if tool is None:
        return None
    ids: list[str] = []
    for resources in (thread.tool_resources, run.params.get("tool_resources")):
        ids += ((resources or {}).get("file_search") or {}).get("vector_store_ids") or []
    return file_search.tool_searcher(state, tool, "tools", vector_store_ids=ids)


def assistants_text(
    reply: model.Reply, *, markers: bool = True
) -> tuple[str, list[dict[str, Any]]]:
    """Answer text with ``【n†file】`` markers and Assistants-style file citations.

    ``markers=False`` for a JSON answer (``response_format``): a marker inside would
    break the JSON, so its citations span no text (``text`` empty, start = end).
    """
    text, annotations = "", []
    for i, seg in enumerate(reply.segments):
        text += (" " if i else "") + seg.text
        if seg.file_id:
            marker = f"【{i}:0†{seg.filename}】" if markers else ""
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


def plan_segment(
    state: SandboxState,
    run: RunRecord,
    thread: ThreadRecord,
    start: float,
    code_turn: CodeTurn | None = None,
) -> None:
    """Decide the next step of ``run`` (tool calls or the answer) and when it is done
    (``code_turn``: the code interpreter's calls, already run, and its answer)."""
    first = not run.segments
    p = run.params
    fault = p.get("fault")
    tools = [t["function"] for t in p.get("tools") or [] if t.get("type") == "function"]
    fmt = output_format.from_response_format(p.get("response_format"))
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
                output_format=fmt,
            )
        )
    except ScriptError as exc:
        raise bad_request(str(exc), "metadata") from exc
    if code_turn is not None:
        reply = code_turn.reply()
    text, annotations = assistants_text(reply, markers=not fmt.is_json)
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
    file_ids: dict[str, str] = {}
    if code_turn is not None:
        file_ids = publish_files(state, code_turn)
        seg.code_step_id = new_id("step")
        seg.code_calls = code_turn.assistants_tool_calls(file_ids)
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
        if code_turn is not None:
            msg["content"] = code_turn.assistants_content(file_ids)
        seg.message_id, seg.message = msg["id"], msg
        thread.messages.append((seg.done_at, msg))
    run.segments.append(seg)
