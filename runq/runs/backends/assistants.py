"""Assistants API v2: assistants, threads, messages and runs.

OpenAI shut it down on 2026-08-26, but OpenAI-compatible servers still speak it and
applications are built on it. A run waits in `requires_action` for tool outputs
(`submit_tool_outputs`) and expires about ten minutes after creation; a thread with an
active run refuses new messages and runs, so jobs on one thread are serialised by the
steps (see `runs.gates`), never sent concurrently.
"""

from __future__ import annotations

import hashlib
import json
import threading
from typing import Any

import openai

from runq.errors import ConfigurationError
from runq.runs import hosted_tools, model_settings, structured_output
from runq.runs.backends import hosted_outputs
from runq.runs.backends.base import (
    DeltaSink,
    HandleSink,
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

STATUS: dict[str, RunStatus] = {
    "queued": RunStatus.QUEUED,
    "in_progress": RunStatus.IN_PROGRESS,
    "cancelling": RunStatus.IN_PROGRESS,
    "requires_action": RunStatus.REQUIRES_TOOLS,
    "completed": RunStatus.COMPLETED,
    "failed": RunStatus.FAILED,
    "cancelled": RunStatus.CANCELLED,
    "expired": RunStatus.EXPIRED,
    "incomplete": RunStatus.INCOMPLETE,
}

RUN_END_EVENTS = frozenset(
    {
        "thread.run.requires_action",
        "thread.run.completed",
        "thread.run.failed",
        "thread.run.cancelled",
        "thread.run.expired",
        "thread.run.incomplete",
    }
)

# Assistants are configuration, not per-job state: one per (endpoint, model,
# instructions, tools) and process is enough.
_assistants: dict[str, str] = {}
_lock = threading.Lock()


class AssistantsBackend:
    name = "assistants"

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

    def _values(self, job: Job) -> dict[str, Any]:
        return model_settings.effective(job.spec, self.settings)

    def _assistant_id(self, job: Job) -> str:
        tools = list(self.tools)
        if job.spec.vector_store_ids:
            tools.append({"type": "file_search"})
        tools.extend(hosted_tools.assistants_tools(job.spec.hosted_tools))
        own = model_settings.assistants_assistant_fields(self._values(job))
        identity_parts: list[Any] = [
            str(self.client.base_url), job.spec.model, job.spec.instructions, tools,
        ]  # fmt: skip
        if job.spec.vector_store_ids:
            # The stores are the assistant's own (tool_resources): two jobs searching other
            # documents must not share one, or the second searches the first's.
            identity_parts.append(sorted(job.spec.vector_store_ids))
        if own:  # absent for jobs without settings: their assistants keep their identity
            identity_parts.append(own)
        identity = json.dumps(identity_parts, sort_keys=True)
        key = hashlib.sha256(identity.encode()).hexdigest()
        with _lock:
            found = _assistants.get(key)
        if found:
            return found
        params: dict[str, Any] = {
            "model": job.spec.model,
            "name": "runq",
            "tools": tools,
            "metadata": {"runq_assistant": key[:32]},
            **own,
        }
        if job.spec.instructions:
            params["instructions"] = job.spec.instructions
        if job.spec.vector_store_ids:
            params["tool_resources"] = {
                "file_search": {"vector_store_ids": job.spec.vector_store_ids}
            }
        created = self.client.beta.assistants.create(**params)
        with _lock:
            _assistants[key] = created.id
        return created.id

    @classified
    def start(self, job: Job) -> RunState:
        assistant_id = self._assistant_id(job)
        run = self._create_run(job, assistant_id, stream=False)
        return self._state(run, assistant_id)

    def _create_run(self, job: Job, assistant_id: str, *, stream: bool) -> Any:
        content = job.spec.input if isinstance(job.spec.input, str) else json.dumps(job.spec.input)
        threads = self.client.beta.threads
        options: dict[str, Any] = {"metadata": run_metadata(job)}
        options.update(model_settings.assistants_run_fields(self._values(job)))
        if not self.tools and not job.spec.vector_store_ids and not job.spec.hosted_tools:
            options.pop("parallel_tool_calls", None)
            options.pop("tool_choice", None)
        if job.spec.output_schema is not None:
            options["response_format"] = structured_output.response_format(job.spec)
        if stream:
            options["stream"] = True
        # The job's input files, freshly uploaded for this run, go to the code interpreter
        # as attachments of the job's message (what a thread's own message carries).
        file_ids = self._upload(job) if job.spec.files else []
        attached = [{"file_id": i, "tools": [{"type": "code_interpreter"}]} for i in file_ids]
        extra: dict[str, Any] = {"attachments": attached} if attached else {}
        thread_id = job.spec.thread_id or replay.native(job, "thread_id")
        if thread_id:
            threads.messages.create(thread_id, role="user", content=content, **extra)
            return threads.runs.create(thread_id, assistant_id=assistant_id, **options)
        # A new thread, seeded with the conversation's earlier turns when runq replays them.
        seeded = replay.thread_messages(replay.replayed(job))
        thread: Any = {"messages": [*seeded, {"role": "user", "content": content, **extra}]}
        return threads.create_and_run(assistant_id=assistant_id, thread=thread, **options)

    # -- stream mode: runs cannot be resumed, so the handle is handed out mid-stream -----
    @classified
    def start_stream(
        self,
        job: Job,
        on_created: HandleSink,
        on_delta: DeltaSink,
    ) -> RunState | None:
        """Create the run as a stream; `on_created(handle)` persists the handle first.

        Returns the state at the stream's end (None if it ended early: then poll). If
        `on_created` returns False the job moved on meanwhile and the stream is dropped.
        """
        assistant_id = self._assistant_id(job)
        events = self._create_run(job, assistant_id, stream=True)
        return self._follow(events, on_created, on_delta, assistant_id)

    @classified
    def submit_stream(
        self, job: Job, outputs: list[tuple[str, str]], on_delta: DeltaSink
    ) -> RunState | None:
        events = self.client.beta.threads.runs.submit_tool_outputs(
            job.handle["run_id"],
            thread_id=job.handle["thread_id"],
            tool_outputs=[{"tool_call_id": cid, "output": out} for cid, out in outputs],
            stream=True,
        )
        return self._follow(events, None, on_delta, None)

    def _follow(
        self,
        events: Any,
        on_created: HandleSink | None,
        on_delta: DeltaSink,
        assistant_id: str | None,
    ) -> RunState | None:
        try:
            for seq, event in enumerate(events):
                kind = event.event
                if kind == "thread.run.created" and on_created is not None:
                    state = self._state(event.data, assistant_id)
                    if not on_created(state.handle):
                        return None
                elif kind == "thread.message.delta":
                    for part in event.data.delta.content or []:
                        text = getattr(getattr(part, "text", None), "value", None)
                        if text:
                            on_delta(seq, text)
                elif kind in RUN_END_EVENTS:
                    state = self._state(event.data, assistant_id)
                    if state.status == RunStatus.COMPLETED:
                        run = event.data
                        state.output_text, state.citations = self._answer(run.thread_id, run.id)
                    return state
        finally:
            events.close()
        return None

    def _state(self, run: Any, assistant_id: str | None = None) -> RunState:
        status = STATUS.get(run.status, run.status)
        calls: list[ToolCallRequest] = []
        if status == RunStatus.REQUIRES_TOOLS and run.required_action is not None:
            calls = [
                ToolCallRequest(c.id, c.function.name, c.function.arguments or "")
                for c in run.required_action.submit_tool_outputs.tool_calls
            ]
        usage = {}
        if run.usage is not None:
            usage = {
                "input_tokens": run.usage.prompt_tokens,
                "output_tokens": run.usage.completion_tokens,
                "total_tokens": run.usage.total_tokens,
            }
        error = run.last_error
        incomplete = run.incomplete_details
        handle = {"thread_id": run.thread_id, "run_id": run.id}
        if assistant_id:
            handle["assistant_id"] = assistant_id
        return RunState(
            status=status,
            handle=handle,
            tool_calls=calls,
            usage=usage,
            error_code=(error.code if error else (incomplete.reason if incomplete else None)),
            error_message=error.message if error else None,
        )

    @classified
    def retrieve(self, job: Job) -> RunState:
        run = self.client.beta.threads.runs.retrieve(
            job.handle["run_id"], thread_id=job.handle["thread_id"]
        )
        state = self._state(run)
        if state.status == RunStatus.COMPLETED:
            state.output_text, state.citations = self._answer(run.thread_id, run.id)
        return state

    def _answer(self, thread_id: str, run_id: str) -> tuple[str, list[dict[str, Any]]]:
        messages = self.client.beta.threads.messages.list(thread_id, run_id=run_id, order="asc")
        texts: list[str] = []
        citations: list[dict[str, Any]] = []
        for message in messages:
            if message.role != "assistant":
                continue
            for part in message.content:
                if part.type != "text":
                    continue
                offset = sum(len(t) for t in texts)
                texts.append(part.text.value)
                for note in part.text.annotations:
                    if note.type == "file_citation":
                        citations.append(
                            {
                                "file_id": note.file_citation.file_id,
                                "filename": None,
                                "index": offset + note.start_index,
                                "quote": note.text,
                            }
                        )
        return "".join(texts), citations

    @classified
    def submit_tool_outputs(self, job: Job, outputs: list[tuple[str, str]]) -> RunState:
        run = self.client.beta.threads.runs.submit_tool_outputs(
            job.handle["run_id"],
            thread_id=job.handle["thread_id"],
            tool_outputs=[{"tool_call_id": cid, "output": out} for cid, out in outputs],
        )
        return self._state(run)

    @classified
    def cancel(self, job: Job) -> None:
        if job.handle.get("run_id"):
            self.client.beta.threads.runs.cancel(
                job.handle["run_id"], thread_id=job.handle["thread_id"]
            )

    def streaming(self) -> StreamSupport:
        """A run streams from the request that creates it or submits its outputs only."""
        return StreamSupport(streams_requests=self)

    def _upload(self, job: Job) -> list[str]:
        if self.inputs is None:
            raise ConfigurationError("this worker cannot read staged input files")
        return self.inputs.upload(self.client, job.spec, "assistants")

    @classified
    def run_outputs(self, job: Job, state: RunState) -> RunOutputs:
        return hosted_outputs.assistants_outputs(self.client, {**job.handle, **state.handle})

    @classified
    def read_file(self, ref: dict[str, Any], limit: int) -> bytes | None:
        return hosted_outputs.read_file(self.client, ref, limit)
