"""One interface for every run protocol, and the normalized run state it returns.

A step never looks at a protocol's own objects: it asks its backend to start, look at,
feed or cancel the job's run, and gets a `RunState` back. Adding a protocol means one
new adapter; the steps do not change.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from runq.runs.job import Job
from runq.runs.run_status import RunStatus

WAITING = frozenset({RunStatus.QUEUED, RunStatus.IN_PROGRESS})
ENDED = frozenset(
    {
        RunStatus.COMPLETED,
        RunStatus.FAILED,
        RunStatus.CANCELLED,
        RunStatus.INCOMPLETE,
        RunStatus.EXPIRED,
    }
)


@dataclass(frozen=True)
class ToolCallRequest:
    """The model asks runq to run a function. `arguments` is the model's raw JSON text."""

    call_id: str
    name: str
    arguments: str


@dataclass
class RunState:
    """What a run looks like right now, whatever protocol drives it."""

    status: str  # a RunStatus, or a status runq does not know (see RunStatus)
    handle: dict[str, str] = field(default_factory=dict)
    tool_calls: list[ToolCallRequest] = field(default_factory=list)
    output_text: str = ""
    refusal: str | None = None  # the model declined to answer (a refusal part)
    citations: list[dict[str, Any]] = field(default_factory=list)
    usage: dict[str, int] = field(default_factory=dict)
    error_code: str | None = None
    error_message: str | None = None
    poll_after: float | None = None  # the server's hint, in seconds
    transcript: list[dict[str, Any]] | None = None  # chat: the messages to keep
    headers: dict[str, str] = field(default_factory=dict)  # x-ratelimit-* of the call
    # Hosted tools (`runs.hosted_tools`): the backend's own tool calls seen in the run's
    # output, and the files its answer cites (Responses; Assistants in `run_outputs`).
    hosted_calls: list[dict[str, Any]] = field(default_factory=list)
    file_refs: list[dict[str, Any]] = field(default_factory=list)

    @property
    def waiting(self) -> bool:
        return self.status in WAITING


@dataclass
class RunOutputs:
    """What a finished run of a job with hosted tools leaves besides its answer.

    `hosted_calls`: the backend's tool calls with their outputs (code, logs, image
    references; web search and MCP items). `file_refs`: the files the run produced, each
    `{name, file_id, container_id?, bytes?}`, read with `Backend.read_file`.
    """

    hosted_calls: list[dict[str, Any]] = field(default_factory=list)
    file_refs: list[dict[str, Any]] = field(default_factory=list)


def run_metadata(job: Job) -> dict[str, str]:
    """What every run carries: the job's own metadata plus runq's ids.

    `runq_job_id`, `runq_attempt` and `runq_round` let a backend (and an operator) tie a
    run to its job and tell a retry from a duplicate.
    """
    return {
        **job.spec.metadata,
        "runq_job_id": job.id,
        "runq_attempt": str(job.attempt),
        "runq_round": str(job.round),
    }


DeltaSink = Callable[[int, str], None]
"""Takes each text delta of a stream with its position in it: `sink(seq, text)`."""

HandleSink = Callable[[dict[str, str]], bool]
"""Takes a run's handle the moment a stream announces the run; False: drop the stream."""


class FollowsRuns(Protocol):
    """Streams a background run from any position, so a stream cut off resumes (Responses)."""

    def stream(self, job: Job, after: int | None, on_delta: DeltaSink) -> RunState | None:
        """Follow the run's events after position `after` (None: from the start).

        Returns the state the terminal event carries, or None if the stream ended
        without one (the caller then looks at the run).
        """


class StreamsRequests(Protocol):
    """Streams a run only from the request that creates or feeds it; no resuming (Assistants)."""

    def start_stream(
        self, job: Job, on_created: HandleSink, on_delta: DeltaSink
    ) -> RunState | None:
        """Create the run as a stream; `on_created(handle)` runs before any delta."""

    def submit_stream(
        self, job: Job, outputs: list[tuple[str, str]], on_delta: DeltaSink
    ) -> RunState | None:
        """Hand a round's outputs back as a stream."""


class StreamsTurns(Protocol):
    """Streams one whole turn as one request; nothing at the server to resume (Chat)."""

    def streaming_turns(self, on_delta: DeltaSink) -> Backend:
        """This backend, with its `start` and `submit_tool_outputs` streamed to `on_delta`."""


@dataclass(frozen=True)
class StreamSupport:
    """What a job in stream mode can do with a backend: at most one way is set.

    Each protocol streams differently (see `runs.streaming`), so the steps ask which
    way, once, instead of probing the backend for methods.
    """

    follows_runs: FollowsRuns | None = None
    streams_requests: StreamsRequests | None = None
    streams_turns: StreamsTurns | None = None


NO_STREAMING = StreamSupport()
"""A backend that only polls: a stream-mode job on it is polled."""


class Backend(Protocol):
    """A run protocol. Every call is one HTTP request and raises `BackendError` on failure."""

    name: str

    def start(self, job: Job) -> RunState:
        """Create the job's run; the returned handle is persisted before anything else."""

    def retrieve(self, job: Job) -> RunState:
        """Look at the run named by `job.handle`."""

    def submit_tool_outputs(self, job: Job, outputs: list[tuple[str, str]]) -> RunState:
        """Hand the round's `(call_id, output)` pairs back to the model."""

    def cancel(self, job: Job) -> None:
        """Cancel the run at the backend (idempotent)."""

    def streaming(self) -> StreamSupport:
        """How stream mode streams this backend's runs (`NO_STREAMING`: it polls them)."""

    def run_outputs(self, job: Job, state: RunState) -> RunOutputs:
        """The hosted tool calls and produced files of a completed run (asked only for
        jobs with hosted tools: it may cost a request or two)."""

    def read_file(self, ref: dict[str, Any], limit: int) -> bytes | None:
        """A produced file's bytes; None when it has more than `limit` bytes (the read
        stops there: a large file is never held whole)."""
