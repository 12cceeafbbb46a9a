"""The Responses API in background mode: OpenAI's current run protocol (the default).

A run is a background response: `POST /v1/responses` with `background: true` returns at
once with `status: queued`; runq polls `GET /v1/responses/{id}` (or streams it). A tool
round is "completed with function_call items"; the outputs go back as a *new* background
response with `previous_response_id` and `function_call_output` items.
"""

from __future__ import annotations

from typing import Any

import openai

from runq.errors import ConfigurationError
from runq.runs import hosted_tools, mcp_approvals, model_settings, structured_output
from runq.runs.backends import hosted_outputs
from runq.runs.backends.base import (
    DeltaSink,
    RunOutputs,
    RunState,
    StreamSupport,
    ToolCallRequest,
    run_metadata,
)
from runq.runs.backends.client import classified
from runq.runs.conversations import replay
from runq.runs.files.inputs import InputFiles
from runq.runs.job import Job
from runq.runs.run_status import RunStatus


def _attr(obj: Any, name: str, default: Any = None) -> Any:
    if isinstance(obj, dict):
        return obj.get(name, default)
    return getattr(obj, name, default)


def normalize(response: Any, poll_after_ms: str | None = None) -> RunState:
    """A `Response` (object or dict) as a `RunState`."""
    texts: list[str] = []
    refusals: list[str] = []
    citations: list[dict[str, Any]] = []
    calls: list[ToolCallRequest] = []
    hosted_calls: list[dict[str, Any]] = []
    file_refs: list[dict[str, Any]] = []
    for item in _attr(response, "output", None) or []:
        kind = _attr(item, "type")
        if kind == "message":
            for part in _attr(item, "content", None) or []:
                if _attr(part, "type") == "refusal":
                    refusals.append(_attr(part, "refusal", "") or "")
                if _attr(part, "type") != "output_text":
                    continue
                text = _attr(part, "text", "") or ""
                offset = sum(len(t) for t in texts)
                texts.append(text)
                file_refs.extend(hosted_outputs.container_refs(part))
                for note in _attr(part, "annotations", None) or []:
                    if _attr(note, "type") == "file_citation":
                        citations.append(
                            {
                                "file_id": _attr(note, "file_id"),
                                "filename": _attr(note, "filename"),
                                "index": offset + int(_attr(note, "index", 0) or 0),
                                "quote": _attr(note, "quote", None),
                            }
                        )
        elif kind == "function_call":
            calls.append(
                ToolCallRequest(
                    call_id=_attr(item, "call_id"),
                    name=_attr(item, "name"),
                    arguments=_attr(item, "arguments", "") or "",
                )
            )
        else:  # a hosted tool's item (code interpreter, web search, mcp), or another
            hosted_calls.extend(hosted_outputs.responses_items(item))
            if mcp_approvals.is_request(item):  # a person decides it (runs.approvals)
                calls.append(mcp_approvals.call_of(item))
    status = str(_attr(response, "status", "queued"))
    if status == RunStatus.COMPLETED and calls:
        status = RunStatus.REQUIRES_TOOLS
    usage_obj = _attr(response, "usage", None)
    usage = {}
    if usage_obj is not None:
        usage = {
            "input_tokens": int(_attr(usage_obj, "input_tokens", 0) or 0),
            "output_tokens": int(_attr(usage_obj, "output_tokens", 0) or 0),
            "total_tokens": int(_attr(usage_obj, "total_tokens", 0) or 0),
        }
    error = _attr(response, "error", None)
    incomplete = _attr(response, "incomplete_details", None)
    code = _attr(error, "code") if error else (_attr(incomplete, "reason") if incomplete else None)
    message = _attr(error, "message") if error else None
    return RunState(
        status=status,
        handle={"response_id": str(_attr(response, "id"))},
        tool_calls=calls,
        output_text="".join(texts),
        refusal="".join(refusals) or None,
        hosted_calls=hosted_calls,
        file_refs=file_refs,
        citations=citations,
        usage=usage,
        error_code=str(code) if code else None,
        error_message=message,
        poll_after=int(poll_after_ms) / 1000.0
        if poll_after_ms and poll_after_ms.isdigit()
        else None,
    )


def _state(raw: Any) -> RunState:
    """The run state in a raw reply of the `openai` client, read from its JSON body.

    `raw.parse()` would build the typed `Response` first (about 165 us for a small
    one, against 5 us for `json.loads`), and `normalize` reads a dict as well. A body
    that is no JSON object is the client's own validation error (`invalid_response`).
    """
    try:
        body = raw.http_response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise openai.APIResponseValidationError(
            raw.http_response, raw.text, message="the reply is not a JSON object"
        )
    return normalize(body, raw.headers.get("openai-poll-after-ms"))


def ratelimit_headers(headers: Any) -> dict[str, str]:
    """The `x-ratelimit-*` headers of a reply (they calibrate the link's bucket)."""
    return {k.lower(): v for k, v in headers.items() if k.lower().startswith("x-ratelimit-")}


CODE_OUTPUTS = "code_interpreter_call.outputs"
TERMINAL_EVENTS = frozenset(
    {"response.completed", "response.failed", "response.incomplete", "response.cancelled"}
)


class ResponsesBackend:
    """Drives a job as background responses."""

    name = "responses"

    def __init__(
        self,
        client: openai.OpenAI,
        tools: list[dict[str, Any]] | None = None,
        *,
        settings: dict[str, Any] | None = None,
        inputs: InputFiles | None = None,
    ) -> None:
        self.client = client
        self.tools = tools or []
        self.settings = settings or {}  # the link's overrides of the job's model settings
        self.inputs = inputs  # the staged input files (`runs.files.inputs`)

    def _common(self, job: Job) -> dict[str, Any]:
        spec = job.spec
        params: dict[str, Any] = {
            "model": spec.model,
            "background": True,
            "store": True,  # a background response must be stored
            "metadata": run_metadata(job),
        }
        if spec.instructions:
            params["instructions"] = spec.instructions
        tools = list(self.tools)
        if spec.vector_store_ids:
            tools.append({"type": "file_search", "vector_store_ids": spec.vector_store_ids})
        file_ids = [i for i in job.handle.get("input_file_ids", "").split(",") if i]
        tools.extend(hosted_tools.responses_tools(spec.hosted_tools, file_ids))
        if tools:
            params["tools"] = tools
            params["parallel_tool_calls"] = True
        values = model_settings.effective(spec, self.settings)
        params.update(model_settings.responses_fields(values))
        if hosted_tools.has_code_interpreter(spec.hosted_tools):
            # The code, logs and images of each call, which a result lists.
            included = list(params.get("include") or [])
            if CODE_OUTPUTS not in included:
                params["include"] = [*included, CODE_OUTPUTS]
        if spec.output_schema is not None:
            params["text"] = {"format": structured_output.responses_format(spec)}
        return params

    @classified
    def start(self, job: Job) -> RunState:
        spec = job.spec
        if spec.files:  # a fresh run gets freshly uploaded input files (their ids)
            job.handle["input_file_ids"] = ",".join(self._upload(job))
        params = self._common(job)
        params["input"] = spec.input
        earlier = replay.replayed(job)  # runq's conversation record, when no handle holds it
        if earlier:
            own = spec.input
            if isinstance(own, str):
                own = [{"role": "user", "content": own}]
            params["input"] = [*replay.responses_items(earlier), *own]
        previous = spec.previous_response_id or replay.native(job, "response_id")
        if previous:
            params["previous_response_id"] = previous
        elif spec.conversation_id:
            params["conversation"] = spec.conversation_id
        return self._create(params)

    def _create(self, params: dict[str, Any]) -> RunState:
        # The parameters go as `extra_body`, and the reply is read as plain JSON: they
        # are JSON already, and the client's typed walk over them and its typed
        # `Response` were nearly half of the call's worker CPU (see `_state`).
        raw = self.client.responses.with_raw_response.create(extra_body=params)
        # A background create may say when to poll, as a retrieve does: the first poll
        # then lands when the run ends instead of at the shortest interval.
        state = _state(raw)
        state.headers = ratelimit_headers(raw.headers)
        return state

    @classified
    def retrieve(self, job: Job) -> RunState:
        return _state(self.client.responses.with_raw_response.retrieve(job.handle["response_id"]))

    @classified
    def submit_tool_outputs(self, job: Job, outputs: list[tuple[str, str]]) -> RunState:
        params = self._common(job)
        params["previous_response_id"] = job.handle["response_id"]
        # A decided MCP approval request goes back as `mcp_approval_response`.
        params["input"] = mcp_approvals.responses_input(job.pending_calls, outputs)
        return self._create(params)

    @classified
    def stream(self, job: Job, after: int | None, on_delta: DeltaSink) -> RunState | None:
        """Follow the run's event stream from `after`; deltas go to `on_delta(seq, text)`.

        Returns the final state from the terminal event, or None if the stream ended
        without one (the caller then looks at the run).
        """
        options: dict[str, Any] = {"stream": True}
        if after is not None:
            options["starting_after"] = after
        events = self.client.responses.retrieve(job.handle["response_id"], **options)
        try:
            for event in events:
                kind = getattr(event, "type", "")
                if kind == "response.output_text.delta":
                    on_delta(int(event.sequence_number), event.delta)
                elif kind in TERMINAL_EVENTS:
                    return normalize(event.response)
        finally:
            events.close()
        return None

    @classified
    def cancel(self, job: Job) -> None:
        response_id = job.handle.get("response_id")
        if response_id:
            self.client.responses.cancel(response_id)

    def streaming(self) -> StreamSupport:
        """A background response streams from any position: a cut stream resumes."""
        return StreamSupport(follows_runs=self)

    def _upload(self, job: Job) -> list[str]:
        if self.inputs is None:
            raise ConfigurationError("this worker cannot read staged input files")
        return self.inputs.upload(self.client, job.spec, "user_data")

    @classified
    def run_outputs(self, job: Job, state: RunState) -> RunOutputs:
        return hosted_outputs.responses_outputs(self.client, state)

    @classified
    def read_file(self, ref: dict[str, Any], limit: int) -> bytes | None:
        return hosted_outputs.read_file(self.client, ref, limit)
