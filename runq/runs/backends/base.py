"""One interface for every run protocol, and the normalized run state it returns.

A step never looks at a protocol's own objects: it asks its backend to start, look at,
feed or cancel the job's run, and gets a `RunState` back. Adding a protocol means one
new adapter; the steps do not change.
"""

from __future__ import annotations

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
    citations: list[dict[str, Any]] = field(default_factory=list)
    usage: dict[str, int] = field(default_factory=dict)
    error_code: str | None = None
    error_message: str | None = None
    poll_after: float | None = None  # the server's hint, in seconds
    transcript: list[dict[str, Any]] | None = None  # chat: the messages to keep
    headers: dict[str, str] = field(default_factory=dict)  # x-ratelimit-* of the call

    @property
    def waiting(self) -> bool:
        return self.status in WAITING


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
