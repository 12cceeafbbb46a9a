"""Chat Completions: what every OpenAI-compatible server speaks (vLLM, Ollama, LiteLLM).

There is no run at the server: one request is one model turn, and runq drives the tool
loop itself. The messages so far are kept in the job record (`Job.transcript`), so a
tool round survives a worker crash like any other step. The request holds a worker slot
for its duration — the price of a protocol without background mode.
"""

from __future__ import annotations

from typing import Any

import openai

from runq.errors import BackendError, ConfigurationError
from runq.runs import model_settings, structured_output
from runq.runs.backends.base import (
    DeltaSink,
    RunOutputs,
    RunState,
    StreamSupport,
    ToolCallRequest,
    run_metadata,
)
from runq.runs.backends.client import classified
from runq.runs.backends.responses import ratelimit_headers
from runq.runs.conversations import replay
from runq.runs.error_codes import ErrorCode
from runq.runs.job import Job
from runq.runs.run_status import RunStatus


def _messages(job: Job) -> list[dict[str, Any]]:
    spec = job.spec
    messages: list[dict[str, Any]] = []
    if spec.instructions:
        messages.append({"role": "system", "content": spec.instructions})
    messages.extend(replay.chat_messages(replay.replayed(job)))  # runq's conversation record
    if isinstance(spec.input, str):
        messages.append({"role": "user", "content": spec.input})
    else:
        messages.extend(spec.input)
    return messages


class ChatBackend:
    name = "chat"

    def __init__(
        self,
        client: openai.OpenAI,
        tools: list[dict[str, Any]] | None = None,
        *,
        settings: dict[str, Any] | None = None,
        on_delta: DeltaSink | None = None,
    ) -> None:
        self.client = client
        self.tools = tools or []
        self.settings = settings or {}  # the link's overrides of the job's model settings
        # A stream-mode turn streams, forwarding its text deltas here (`streaming_turns`).
        self.on_delta = on_delta

    def _params(self, job: Job, messages: list[dict[str, Any]]) -> dict[str, Any]:
        params: dict[str, Any] = {
            "model": job.spec.model,
            "messages": messages,
            "store": True,
            "metadata": run_metadata(job),
        }
        if self.tools:
            params["tools"] = self.tools
            params["parallel_tool_calls"] = True
        params.update(model_settings.chat_fields(model_settings.effective(job.spec, self.settings)))
        if not self.tools:
            # The API refuses tool options without tools (a chain link may have none).
            params.pop("parallel_tool_calls", None)
            params.pop("tool_choice", None)
        if job.spec.output_schema is not None:
            params["response_format"] = structured_output.response_format(job.spec)
        return params

    def _complete(self, job: Job, messages: list[dict[str, Any]]) -> RunState:
        params = self._params(job, messages)
        if self.on_delta is not None:
            return self._stream(params, messages)
        raw = self.client.chat.completions.with_raw_response.create(**params)
        completion = raw.parse()
        choice = completion.choices[0]
        calls = [
            ToolCallRequest(c.id, c.function.name, c.function.arguments or "")
            for c in (choice.message.tool_calls or [])
            if getattr(c, "function", None) is not None
        ]
        state = _turn(
            messages, completion.id, choice.message.content, calls, choice.finish_reason,
            completion.usage, ratelimit_headers(raw.headers),
        )  # fmt: skip
        state.refusal = getattr(choice.message, "refusal", None)
        return state

    def _stream(self, params: dict[str, Any], messages: list[dict[str, Any]]) -> RunState:
        """The same turn as a stream: text deltas go to `on_delta` as they arrive."""
        assert self.on_delta is not None
        params = {**params, "stream": True, "stream_options": {"include_usage": True}}
        raw = self.client.chat.completions.with_raw_response.create(**params)
        text: list[str] = []
        refusal: list[str] = []
        calls: dict[int, dict[str, str]] = {}
        completion_id, finish, usage = "", None, None
        chunks = raw.parse()
        try:
            for seq, chunk in enumerate(chunks):
                completion_id = chunk.id or completion_id
                usage = chunk.usage or usage
                for choice in chunk.choices:
                    finish = choice.finish_reason or finish
                    delta = choice.delta
                    if delta.content:
                        text.append(delta.content)
                        self.on_delta(seq, delta.content)
                    if getattr(delta, "refusal", None):
                        refusal.append(delta.refusal)
                    for part in delta.tool_calls or []:
                        call = calls.setdefault(part.index, {"id": "", "name": "", "arguments": ""})
                        call["id"] = part.id or call["id"]
                        if part.function is not None:
                            call["name"] += part.function.name or ""
                            call["arguments"] += part.function.arguments or ""
        finally:
            # A turn given up half-way (the job was cancelled) closes its HTTP stream: there
            # is no run to cancel, and a server stops generating for a closed connection.
            chunks.close()
        requests = [
            ToolCallRequest(c["id"], c["name"], c["arguments"]) for _, c in sorted(calls.items())
        ]
        state = _turn(
            messages, completion_id, "".join(text) or None, requests, finish, usage,
            ratelimit_headers(raw.headers),
        )  # fmt: skip
        state.refusal = "".join(refusal) or None
        return state

    @classified
    def start(self, job: Job) -> RunState:
        return self._complete(job, _messages(job))

    def retrieve(self, job: Job) -> RunState:
        raise BackendError(
            "Chat Completions has no run to look at; the job restarts its turn",
            code=ErrorCode.NOT_RESUMABLE,
            retryable=True,
        )

    @classified
    def submit_tool_outputs(self, job: Job, outputs: list[tuple[str, str]]) -> RunState:
        tool_messages = [
            {"role": "tool", "tool_call_id": call_id, "content": output}
            for call_id, output in outputs
        ]
        return self._complete(job, [*job.transcript, *tool_messages])

    def cancel(self, job: Job) -> None:
        """Nothing runs at the server between requests: there is nothing to cancel (a
        turn in progress is stopped by closing its stream, see `_stream`)."""

    def streaming(self) -> StreamSupport:
        """A turn is one request: it streams whole, and cannot be resumed."""
        return StreamSupport(streams_turns=self)

    def run_outputs(self, job: Job, state: RunState) -> RunOutputs:
        """Chat Completions runs no hosted tools (a job asking for one is refused)."""
        return RunOutputs()

    def read_file(self, ref: dict[str, Any], limit: int) -> bytes | None:
        raise ConfigurationError("Chat Completions produces no files")

    def streaming_turns(self, on_delta: DeltaSink) -> ChatBackend:
        """The same backend, streaming each turn's text deltas to `on_delta`."""
        return ChatBackend(self.client, self.tools, settings=self.settings, on_delta=on_delta)


def _turn(
    messages: list[dict[str, Any]],
    completion_id: str,
    content: str | None,
    calls: list[ToolCallRequest],
    finish_reason: str | None,
    usage: Any,
    headers: dict[str, str],
) -> RunState:
    """One model turn as a run state; the transcript gains the assistant's message."""
    assistant: dict[str, Any] = {"role": "assistant", "content": content}
    if calls:
        assistant["tool_calls"] = [
            {"id": c.call_id, "type": "function",
             "function": {"name": c.name, "arguments": c.arguments}}
            for c in calls
        ]  # fmt: skip
    if calls:
        status = RunStatus.REQUIRES_TOOLS
    elif finish_reason == "length":
        status = RunStatus.INCOMPLETE
    else:
        status = RunStatus.COMPLETED
    return RunState(
        status=status,
        handle={"chat_completion_id": completion_id},
        tool_calls=calls,
        output_text=content or "",
        usage={
            "input_tokens": usage.prompt_tokens if usage else 0,
            "output_tokens": usage.completion_tokens if usage else 0,
            "total_tokens": usage.total_tokens if usage else 0,
        },
        error_code="max_output_tokens" if status == RunStatus.INCOMPLETE else None,
        transcript=[*messages, assistant],
        headers=headers,
    )
