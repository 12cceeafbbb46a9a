"""The sandbox's deterministic "model": what it answers to a transcript.

Policy (documented in ``docs/sandbox.md``), first match wins:

1. tool outputs just came back -> an answer that quotes them;
2. otherwise the echo answer: ``Echo: <last user text>``, followed, when the
   conversation has earlier user turns, by `` (earlier: "<t1>" | "<t2>")`` so tests can
   prove that ``previous_response_id``, conversations and threads carry history.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sandbox.transcript import Turn


@dataclass
class ToolCall:
    call_id: str
    name: str
    arguments: str


@dataclass
class Reply:
    """What the model produces for one step: text, or tool calls to make."""

    text: str = ""
    calls: list[ToolCall] = field(default_factory=list)
    annotations: list[dict[str, Any]] = field(default_factory=list)


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
        elif turn.kind == "function_call":
            continue
        else:
            break
    if not outputs:
        return None
    outputs.reverse()
    names = {t.call_id: t.name for t in turns if t.kind == "function_call"}
    parts = [f"{names.get(t.call_id) or t.call_id}: {t.text}" for t in outputs]
    return "Tool results: " + "; ".join(parts)


def reply(turns: list[Turn]) -> Reply:
    """The model's answer to ``turns``."""
    from_tools = tool_outputs_answer(turns)
    if from_tools is not None:
        return Reply(text=from_tools)
    return Reply(text=echo_answer(turns))
