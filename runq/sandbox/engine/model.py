"""The sandbox's deterministic "model": what it answers to a transcript.

Policy (documented in ``docs/sandbox.md``), first match wins:

1. a tool script (see :mod:`.tool_policy`) with a round left -> that round's calls;
2. the transcript ends with tool outputs -> for calculations (:mod:`.arithmetic`) a
   sentence per result, ``(3.5 + 2) * 4 = 22.``; otherwise
   ``Tool results: name: output; ...``;
3. the last user text holds arithmetic and a calculator-like tool is offered -> a
   call to it with the expression;
4. a function tool matches the last user text -> a call to it, arguments filled from
   the text (:func:`.tool_policy.fill_arguments`);
5. file_search is available -> an extractive answer: the best supporting sentence(s)
   from the retrieved chunks, each cited; or ``I could not find ...`` when nothing
   matches well enough;
6. web_search is offered (:mod:`.web_search`) -> a search of the sandbox's offline web
   with the last user text, and an answer quoting the best passages, each cited
   (``url_citation``);
7. otherwise the echo answer ``Echo: <last user text>``, followed, when the
   conversation has earlier user turns, by `` (earlier: "<t1>" | "<t2>")`` so tests can
   prove that ``previous_response_id``, conversations and threads carry history.

With ``tool_choice: "required"`` the model must call a tool even after outputs came
back (rule 2): it calls the best-matching function not yet called since the last user
message, arguments grounded in the outputs (how output tools such as pydantic-ai's
``final_result`` get their values). A JSON output format (:mod:`.output_format`) turns
the text answer into JSON grounded in the same material (:mod:`.structured`); a
scripted ``{"refusal": "..."}`` round makes the model refuse.

The ``bad_args`` fault makes the calls' arguments malformed JSON (cut in half).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from runq.sandbox.engine import arithmetic, structured, tool_policy
from runq.sandbox.engine.ids import new_id
from runq.sandbox.engine.output_format import TEXT, OutputFormat, schema_in_text
from runq.sandbox.engine.transcript import Turn

NOT_FOUND_ANSWER = "I could not find an answer to that in the provided files."


@dataclass
class ToolCall:
    call_id: str
    name: str
    arguments: str


@dataclass
class Segment:
    """A piece of the answer and, for file_search answers, the file supporting it."""

    text: str
    file_id: str | None = None
    filename: str | None = None


@dataclass
class Reply:
    """What the model produces for one step: text (as segments), or tool calls."""

    segments: list[Segment] = field(default_factory=list)
    calls: list[ToolCall] = field(default_factory=list)
    search_queries: list[str] = field(default_factory=list)
    search_results: list[dict[str, Any]] = field(default_factory=list)
    searched: bool = False
    refusal: str | None = None
    # What a hosted tool did for this step (a web search), attached to the output later.
    hosted: Any = None

    @property
    def text(self) -> str:
        return " ".join(s.text for s in self.segments)

    def responses_annotations(self) -> list[dict[str, Any]]:
        """Responses-style ``file_citation`` annotations (index = end of the sentence)."""
        out, pos = [], 0
        for i, seg in enumerate(self.segments):
            pos += len(seg.text) + (1 if i else 0)
            if seg.file_id:
                out.append(
                    {
                        "type": "file_citation",
                        "file_id": seg.file_id,
                        "filename": seg.filename or "",
                        "index": pos,
                    }
                )
        return out


Searcher = Callable[[str], list[dict[str, Any]]]


@dataclass
class ModelInput:
    turns: list[Turn]
    tools: list[dict[str, Any]] = field(default_factory=list)  # {name, description, parameters}
    tool_choice: Any = "auto"
    instructions: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    search: Searcher | None = None
    fault: str | None = None
    output_format: OutputFormat = TEXT
    web_search: Callable[[str], Reply] | None = None  # the offered web_search tool's step


def last_user_text(turns: list[Turn]) -> str:
    for turn in reversed(turns):
        if turn.role == "user" and turn.kind == "message":
            return turn.text
    return ""


def echo_answer(turns: list[Turn]) -> str:
    users = [t.text for t in turns if t.role == "user" and t.kind == "message"]
    if not users:
        return "Echo: "
    answer = f"Echo: {users[-1]}"
    if len(users) > 1:
        answer += " (earlier: " + " | ".join(f'"{u}"' for u in users[:-1]) + ")"
    return answer


def tool_outputs_answer(turns: list[Turn]) -> str | None:
    """If the transcript ends with tool outputs, an answer built from them."""
    outputs: list[Turn] = []
    for turn in reversed(turns):
        if turn.kind == "function_call_output":
            outputs.append(turn)
        elif turn.kind != "function_call":
            break
    if not outputs:
        return None
    outputs.reverse()
    calls = {t.call_id: t for t in turns if t.kind == "function_call"}
    sentences = [_calculation_sentence(calls.get(t.call_id), t.text) for t in outputs]
    if all(sentences):
        return " ".join(s for s in sentences if s)
    names = {call_id: call.name for call_id, call in calls.items()}
    parts = [f"{names.get(t.call_id) or t.call_id}: {t.text}" for t in outputs]
    return "Tool results: " + "; ".join(parts)


def _calculation_sentence(call: Turn | None, output: str) -> str | None:
    """``expression = result.`` when ``call`` computed arithmetic and ``output`` says how."""
    expression = arithmetic.expression_argument(call.arguments) if call is not None else None
    return arithmetic.result_sentence(expression, output) if expression is not None else None


def _calls(specs: list[dict[str, Any]], fault: str | None) -> list[ToolCall]:
    calls = []
    for spec in specs:
        args = spec.get("arguments", {})
        raw = args if isinstance(args, str) else json.dumps(args)
        if fault == "bad_args":
            raw = raw[: max(1, len(raw) // 2)]
        calls.append(ToolCall(new_id("call"), spec["name"], raw))
    return calls


def _search_answer(search: Searcher, query: str) -> Reply:
    from runq.sandbox.engine.retrieval import best_sentences  # retrieval is optional for the model

    hits = search(query)
    reply = Reply(search_queries=[query], searched=True)
    reply.search_results = hits
    sentences = best_sentences(query, hits)
    if not sentences:
        reply.segments = [Segment(NOT_FOUND_ANSWER)]
        return reply
    reply.segments = [Segment(text, hit["file_id"], hit["filename"]) for text, hit in sentences]
    return reply


def reply(inp: ModelInput) -> Reply:
    """The model's answer to ``inp``: tool calls, a refusal, or text in its format."""
    answer = _decide(inp)
    if answer.calls or answer.refusal is not None or not inp.output_format.is_json:
        return answer
    return _as_json(inp, answer)


def _decide(inp: ModelInput) -> Reply:
    turns = inp.turns
    script = tool_policy.find_script(inp.metadata, inp.instructions, turns)
    if script is not None:
        n = tool_policy.tool_round(turns)
        if n < len(script) and script[n]:
            refusal = next((c["refusal"] for c in script[n] if "refusal" in c), None)
            if refusal is not None:
                return Reply(refusal=refusal)
            return Reply(calls=_calls(script[n], inp.fault))
    from_tools = tool_outputs_answer(turns)
    if from_tools is not None:
        if script is None and inp.tool_choice == "required" and inp.tools:
            return _required_call(inp)
        return Reply(segments=[Segment(from_tools)])
    user_text = last_user_text(turns)
    if script is None:
        planned = tool_policy.plan_call(inp.tools, user_text, inp.tool_choice)
        if planned is not None:
            tool, args = planned
            return Reply(calls=_calls([{"name": tool["name"], "arguments": args}], inp.fault))
    if inp.search is not None:
        return _search_answer(inp.search, user_text)
    if inp.web_search is not None and user_text.strip():
        return inp.web_search(user_text)
    return Reply(segments=[Segment(echo_answer(turns))])


def material(turns: list[Turn], hits: list[dict[str, Any]] | None = None) -> structured.Material:
    """The grounded text: tool outputs since the last user message, the last user text,
    file_search results, then earlier user turns (newest first).

    When file_search found results, they stand in for the user's text: the question
    says what to look for and the files hold the answer. Kept, an extraction prompt
    naming every field ("give the model, weight and battery") would be the best match
    for each of them and answer itself.
    """
    outputs: list[str] = []
    users: list[str] = []
    for turn in reversed(turns):
        if turn.kind == "function_call_output" and not users:
            outputs.insert(0, turn.text)
        elif turn.role == "user" and turn.kind == "message":
            users.append(turn.text)
    found = [str(h.get("text") or "") for h in hits or []]
    if found:
        return structured.Material([*outputs, *found])
    return structured.Material([*outputs, *users])


def _required_call(inp: ModelInput) -> Reply:
    """A tool call after outputs, because ``tool_choice`` says one is required."""
    called = set()
    for turn in reversed(inp.turns):
        if turn.role == "user" and turn.kind == "message":
            break
        if turn.kind == "function_call":
            called.add(turn.name)
    grounded = material(inp.turns)
    fresh = [t for t in inp.tools if t["name"] not in called] or inp.tools
    tool = tool_policy.choose_tool(fresh, grounded.blob, "required") or fresh[0]
    args = tool_policy.fill_arguments(tool.get("parameters"), grounded.blob, grounded)
    return Reply(calls=_calls([{"name": tool["name"], "arguments": args}], inp.fault))


def _as_json(inp: ModelInput, answer: Reply) -> Reply:
    """The text answer as JSON in the requested format (a schema filled from the material;
    ``json_object``: the schema an instruction spells out, else ``{"answer": text}``).

    An answer grounded in file_search keeps a citation: the JSON cites the file of the
    best search result, the most authoritative material its values come from, as a
    model answering in JSON from the files still annotates its source.
    """
    fmt = inp.output_format
    schema = fmt.schema
    if fmt.kind == "json_object":
        system = [t.text for t in inp.turns if t.role in ("system", "developer")]
        schema = schema_in_text([inp.instructions or "", *system])
    if schema is None:
        value: Any = {"answer": answer.text}
    else:
        value = structured.fill(schema, material(inp.turns, answer.search_results))
    best = answer.search_results[0] if answer.search_results else {}
    text = json.dumps(value, ensure_ascii=False)
    answer.segments = [Segment(text, best.get("file_id"), best.get("filename"))]
    return answer
