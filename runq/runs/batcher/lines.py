"""A job's request as a batch line, and a line's result as the job's run state.

The line's body is exactly what the job's backend would have sent live: the backend
builds it (its own `start`), and the request is taken instead of sent. So a batch line
carries the same model settings, tools, schema, conversation replay and metadata as a
live run, and nothing is written twice. Only what a batch refuses is taken out
(`background`, `stream`) and the service tier (a batch is its own tier).

A result line answered 200 becomes a `RunState` through the same normalization a live
answer goes through (`responses.normalize`, Chat's turn), so the job continues with the
normal steps: a completed answer succeeds, a tool round runs live.
"""

from __future__ import annotations

import copy
from typing import Any

import openai
from openai.types.chat import ChatCompletionMessageFunctionToolCall

from runq.errors import BackendError
from runq.runs.backends.base import RunState, ToolCallRequest
from runq.runs.backends.chat import _messages, _turn
from runq.runs.backends.responses import normalize
from runq.runs.job import Job

_NOT_IN_A_BATCH = ("background", "stream", "stream_options", "service_tier")


class _Taken(Exception):
    """Carries the request a backend was about to send (never leaves this module)."""

    def __init__(self, params: dict[str, Any]) -> None:
        super().__init__("request taken for a batch line")
        self.params = params


def request_body(backend: Any, job: Job) -> dict[str, Any]:
    """The body the job's backend would send to start its run, for a batch line."""
    taker = copy.copy(backend)  # the step's backend itself is left as it was

    def take(params: dict[str, Any]) -> RunState:
        raise _Taken(dict(params))

    if backend.name == "chat":
        taker.__dict__["_complete"] = lambda job_, msgs: take(backend._params(job_, msgs))
    else:
        taker.__dict__["_create"] = take
    try:
        taker.start(job)
    except _Taken as taken:
        body = taken.params
    else:  # pragma: no cover - every backend that batches creates through the hook
        raise BackendError(f"the {backend.name} backend sent no request to take")
    for name in _NOT_IN_A_BATCH:
        body.pop(name, None)
    return body


def line(custom_id: str, endpoint: str, body: dict[str, Any]) -> dict[str, Any]:
    return {"custom_id": custom_id, "method": "POST", "url": endpoint, "body": body}


def run_state(backend_name: str, job: Job, body: dict[str, Any]) -> RunState:
    """A 200 answer of the line as the run state a live call would have returned."""
    if backend_name != "chat":
        return normalize(body)
    completion = openai.types.chat.ChatCompletion.model_validate(body)
    choice = completion.choices[0]
    calls = [
        ToolCallRequest(c.id, c.function.name, c.function.arguments or "")
        for c in (choice.message.tool_calls or [])
        if isinstance(c, ChatCompletionMessageFunctionToolCall)
    ]
    state = _turn(_messages(job), completion.id, choice.message.content, calls,
                  choice.finish_reason, completion.usage, {})  # fmt: skip
    state.refusal = getattr(choice.message, "refusal", None)
    return state


def failure(outcome: dict[str, Any]) -> BackendError:
    """Why a line gave no answer: its own error, or its batch's end."""
    code = str(outcome.get("code") or "batch_line_failed")
    message = str(outcome.get("message") or "the batch line failed")
    return BackendError(f"batch line failed: {message}", code=code, retryable=False)
