"""Chat Completions objects: choices, messages, stream chunks, logprobs and stored copies.

A completion has ``n`` choices; the sandbox model is deterministic, so every choice
says the same thing (tool calls get their own ids). ``logprobs: true`` reports each
token of the answer with log-probability 0 (the model is certain) and, for
``top_logprobs: k``, the token itself first and ``k - 1`` fixed alternatives far below.
A stored completion (``store: true``) keeps the request's messages too, for
``GET /chat/completions/{id}/messages``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from runq.sandbox.engine.ids import new_id
from runq.sandbox.engine.model import Reply
from runq.sandbox.engine.tokens import split_tokens

_ALTERNATIVES = (" the", " a", ".", ",", " and", " of", " to", " is", " in", " it")


def token_logprobs(text: str, top: int) -> list[dict[str, Any]]:
    """``logprobs.content`` for ``text``: each token certain, ``top`` entries each."""
    out = []
    for token in split_tokens(text):
        others = [a for a in _ALTERNATIVES if a != token][: max(0, top - 1)]
        tops = [{"token": token, "logprob": 0.0, "bytes": list(token.encode())}] if top else []
        tops += [
            {"token": a, "logprob": -20.0 - i, "bytes": list(a.encode())}
            for i, a in enumerate(others)
        ]
        out.append(
            {"token": token, "logprob": 0.0, "bytes": list(token.encode()), "top_logprobs": tops}
        )
    return out


@dataclass
class ChatShape:
    """What the request asked of the answer's shape."""

    n: int = 1
    logprobs: bool = False
    top_logprobs: int = 0

    def logprobs_of(self, reply: Reply) -> dict[str, Any] | None:
        if not self.logprobs:
            return None
        if reply.refusal is not None:
            return {"content": None, "refusal": token_logprobs(reply.refusal, self.top_logprobs)}
        return {"content": token_logprobs(reply.text, self.top_logprobs), "refusal": None}


def _tool_calls(reply: Reply, fresh_ids: bool) -> list[dict[str, Any]]:
    return [
        {
            "id": new_id("call") if fresh_ids else c.call_id,
            "type": "function",
            "function": {"name": c.name, "arguments": c.arguments},
        }
        for c in reply.calls
    ]


def message(reply: Reply, index: int = 0) -> dict[str, Any]:
    """The assistant message of choice ``index`` (choices past the first get new call ids)."""
    msg: dict[str, Any] = {
        "role": "assistant",
        "content": reply.text if not reply.calls and reply.refusal is None else None,
        "refusal": reply.refusal,
        "annotations": [],
    }
    if reply.calls:
        msg["tool_calls"] = _tool_calls(reply, fresh_ids=index > 0)
    return msg


def choices(reply: Reply, finish: str, shape: ChatShape) -> list[dict[str, Any]]:
    return [
        {
            "index": i,
            "message": message(reply, i),
            "finish_reason": finish,
            "logprobs": shape.logprobs_of(reply),
        }
        for i in range(shape.n)
    ]


def _deltas(reply: Reply, index: int) -> list[dict[str, Any]]:
    deltas: list[dict[str, Any]] = [{"role": "assistant", "content": "", "refusal": None}]
    if reply.calls:
        for i, call in enumerate(_tool_calls(reply, fresh_ids=index > 0)):
            opening = {**call, "index": i, "function": {**call["function"], "arguments": ""}}
            deltas.append({"tool_calls": [opening]})
            args = call["function"]["arguments"]
            deltas.append({"tool_calls": [{"index": i, "function": {"arguments": args}}]})
    elif reply.refusal is not None:
        deltas[0]["content"] = None
        deltas.extend({"refusal": piece} for piece in split_tokens(reply.refusal))
    else:
        deltas.extend({"content": piece} for piece in split_tokens(reply.text))
    return deltas


def chunks(
    base: dict[str, Any], reply: Reply, finish: str, shape: ChatShape, with_usage: bool
) -> list[dict[str, Any]]:
    """The stream's chunks (without the usage chunk), every choice in turn.

    With ``include_usage`` each chunk carries ``"usage": null``, as OpenAI sends them.
    """
    out: list[dict[str, Any]] = []
    extra = {"usage": None} if with_usage else {}
    for index in range(shape.n):
        deltas = _deltas(reply, index)
        pieces = split_tokens(reply.text) if not reply.calls and reply.refusal is None else []
        for j, delta in enumerate(deltas):
            logprobs = None
            if shape.logprobs and "content" in delta and j > 0:
                logprobs = {
                    "content": token_logprobs(pieces[j - 1], shape.top_logprobs),
                    "refusal": None,
                }
            choice = {"index": index, "delta": delta, "finish_reason": None, "logprobs": logprobs}
            out.append({**base, "choices": [choice], **extra})
        end = {"index": index, "delta": {}, "finish_reason": finish, "logprobs": None}
        out.append({**base, "choices": [end], **extra})
    return out


def stored_messages(completion_id: str, messages: list[Any]) -> list[dict[str, Any]]:
    """The request's messages as ``GET /chat/completions/{id}/messages`` lists them."""
    out = []
    for i, msg in enumerate(messages):
        content = msg.get("content")
        text = content if isinstance(content, str) or content is None else None
        parts = content if isinstance(content, list) else None
        out.append(
            {
                "id": f"{completion_id}-{i}",
                "role": msg.get("role"),
                "content": text,
                "name": msg.get("name"),
                "content_parts": parts,
                "refusal": msg.get("refusal"),
                **({"tool_calls": msg["tool_calls"]} if msg.get("tool_calls") else {}),
            }
        )
    return out
