"""The job: what a producer asked for (`JobSpec`) and everything runq knows about it (`Job`).

The job record is the truth. Tasks carry only the job id and a step token; whatever a
task may do is decided by reading this record, and every outcome is written here before
the next step is scheduled. The record is plain JSON so any producer, in any language,
can read it from Redis.
"""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from runq.config.settings import BACKENDS, MODES, MULTITASK_STRATEGIES
from runq.errors import InvalidJobError
from runq.runs import hosted_tools, input_limits, model_settings, structured_output, tiers
from runq.runs.files import inputs as input_files


class JobStatus(StrEnum):
    """Where a job is in its life; the record stores the plain string.

    `queued → running ⇄ waiting_tools → succeeded | failed | cancelled`, with `retrying`
    and `falling_back` while they happen (`TRANSITIONS` lists every allowed move).
    """

    QUEUED = "queued"
    RUNNING = "running"
    WAITING_TOOLS = "waiting_tools"
    # A tool call waits for a person's decision (`runs.approvals`); no worker holds it.
    WAITING_APPROVAL = "waiting_approval"
    RETRYING = "retrying"
    FALLING_BACK = "falling_back"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class Step(StrEnum):
    """The steps of a job; each runs as the Celery task `runq.jobs.<step>`.

    The record's `step` names the one that is due. `cancel` is never due: it is the task a
    cancel request sends, and comes back like any step while another task holds the job.
    """

    START = "start"
    POLL = "poll"
    STREAM = "stream"
    SUBMIT_TOOL_OUTPUTS = "submit_tool_outputs"
    FINISH = "finish"
    CANCEL = "cancel"
    # Waiting for the job's line of a Batch API batch (`runs.batcher`): sent when the
    # batch's results are in, or at the job's deadline.
    BATCH = "batch"
    # A safety look at a run that waits for its webhook (`runs.looks`): never due in the
    # record (which says `poll`), it is what the safety poll sends, and it becomes the
    # `poll` step when the run has ended.
    LOOK = "look"


# Plain names that code outside the core imports (`producers.ask`, `bench.ask_wait`).
RUNNING = JobStatus.RUNNING
FAILED = JobStatus.FAILED
CANCELLED = JobStatus.CANCELLED

TERMINAL = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED})

_MOVING = frozenset({JobStatus.RUNNING, JobStatus.RETRYING, JobStatus.FALLING_BACK})

# Allowed transitions; anything else is a bug in a step, refused loudly.
TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.QUEUED: _MOVING | {JobStatus.FAILED, JobStatus.CANCELLED},
    JobStatus.RUNNING: _MOVING | {JobStatus.WAITING_TOOLS, JobStatus.WAITING_APPROVAL} | TERMINAL,
    JobStatus.WAITING_TOOLS: _MOVING | TERMINAL,
    JobStatus.WAITING_APPROVAL: _MOVING | {JobStatus.WAITING_TOOLS} | TERMINAL,
    JobStatus.RETRYING: _MOVING | TERMINAL,
    JobStatus.FALLING_BACK: _MOVING | TERMINAL,
    JobStatus.SUCCEEDED: frozenset(),
    JobStatus.FAILED: frozenset(),
    JobStatus.CANCELLED: frozenset(),
}

MAX_INPUT_CHARS = 1_000_000
ROLES = ("user", "assistant", "system", "developer", "tool")  # "tool": Chat Completions
# Every run carries these metadata pairs (runs.backends.base.run_metadata); the API
# allows 16 pairs in all.
RUN_METADATA_KEYS = ("runq_job_id", "runq_attempt", "runq_round")
MAX_METADATA_PAIRS = 16 - len(RUN_METADATA_KEYS)
TENANT = re.compile(r"[A-Za-z0-9._-]{1,64}")
TENANT_RULE = "1-64 characters of A-Z, a-z, 0-9, '.', '_' and '-'"
CONVERSATION_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def new_job_id() -> str:
    return "job_" + uuid.uuid4().hex


def _fields_of(obj: Any) -> dict[str, Any]:
    """A dataclass's fields as a dict, without `asdict`'s deep copy.

    Every commit serialises the record to JSON and drops the dict at once; `asdict`
    copied every nested list and dict first, five times slower for the same JSON
    (`python -m bench.record_dump`).
    """
    return {f.name: getattr(obj, f.name) for f in fields(obj)}


@dataclass
class JobSpec:
    """What to run. Validated before anything is enqueued: a bad spec never reaches Redis."""

    input: str | list[dict[str, Any]]
    backend: str = "responses"
    model: str = "gpt-5-mini"
    mode: str = "poll"
    instructions: str | None = None
    tools: list[str] = field(default_factory=list)
    deadline: float = 600.0
    max_tool_rounds: int = 8
    max_output_tokens: int | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    vector_store_ids: list[str] = field(default_factory=list)
    continue_job: str | None = None
    previous_response_id: str | None = None
    conversation_id: str | None = None
    thread_id: str | None = None
    # runq's own conversation (`runs.conversations`): given by the producer, taken over
    # from `continue_job`, or created by the job's first step. Not `conversation_id`,
    # which is a Responses API Conversation object.
    conversation: str | None = None
    tenant: str | None = None
    chain: str | None = None
    # Structured output: a JSON schema the answer must satisfy (`runs.structured_output`).
    output_schema: dict[str, Any] | None = None
    output_name: str | None = None
    output_strict: bool | None = None  # None: strict when the schema allows it
    # Model settings (`runs.model_settings`; `max_output_tokens` above is one too). None:
    # the backend's default. Records written before they existed load with None.
    temperature: float | None = None
    top_p: float | None = None
    reasoning: dict[str, str] | None = None
    service_tier: str | None = None
    prompt_cache_key: str | None = None
    safety_identifier: str | None = None
    truncation: str | None = None
    tool_choice: str | dict[str, str] | None = None
    parallel_tool_calls: bool | None = None
    store: bool | None = None
    include: list[str] | None = None
    # Hosted tools the backend runs (`runs.hosted_tools`), and the input files staged
    # for the code interpreter (`runs.files.inputs`: names, sizes, hashes; no bytes).
    hosted_tools: list[dict[str, Any]] = field(default_factory=list)
    files: list[dict[str, Any]] = field(default_factory=list)
    # The cost tier (`runs.tiers`): auto, standard, flex, priority or batch. None: standard.
    tier: str | None = None
    # What this job does while another job has its conversation (`runs.multitask`);
    # None: the deployment's RUNQ_MULTITASK. And the tools whose calls a person must
    # approve in this job, besides those registered `requires_approval` (`runs.approvals`).
    multitask: str | None = None
    approval_required: list[str] = field(default_factory=list)

    def validate(self) -> JobSpec:
        """Raise `InvalidJobError` naming the first bad option."""
        self._validate_input()
        input_limits.check_input(self.input)
        self._validate_choices()
        self._validate_limits()
        self._validate_lists()
        self._validate_metadata()
        self._validate_tenant()
        self._validate_model_settings()
        structured_output.check_spec(self.output_schema, self.output_name, self.output_strict)
        input_files.check_meta(self.files)
        hosted_tools.check(self.hosted_tools, self.backend, self.files)
        tiers.check(self.tier, backend=self.backend, mode=self.mode,
                    service_tier=self.service_tier, has_files=bool(self.files))  # fmt: skip
        if self.previous_response_id and self.conversation_id:
            raise InvalidJobError("conversation_id", "cannot be combined with previous_response_id")
        conversation = self.conversation
        if conversation is not None and (
            not isinstance(conversation, str) or not CONVERSATION_ID.fullmatch(conversation)
        ):
            raise InvalidJobError(
                "conversation", "must be 1-128 characters of A-Z, a-z, 0-9, '.', '_' and '-'"
            )
        if self.thread_id and self.backend != "assistants":
            raise InvalidJobError("thread_id", "only the assistants backend has threads")
        return self

    def _validate_input(self) -> None:
        if isinstance(self.input, str):
            if not self.input.strip():
                raise InvalidJobError("input", "must not be empty")
            if len(self.input) > MAX_INPUT_CHARS:
                raise InvalidJobError("input", f"is longer than {MAX_INPUT_CHARS} characters")
        elif isinstance(self.input, list):
            if not self.input or not all(isinstance(item, dict) for item in self.input):
                raise InvalidJobError("input", "must be a non-empty list of message objects")
            for n, item in enumerate(self.input):
                if isinstance(item.get("type"), str):
                    continue  # an input item of another kind (function_call_output, ...)
                if "role" not in item:
                    raise InvalidJobError(
                        f"input[{n}]", "a message needs a role and content; another item a type"
                    )
                if item["role"] not in ROLES:
                    raise InvalidJobError(f"input[{n}].role", f"must be one of {', '.join(ROLES)}")
                calls_tools = item["role"] == "assistant" and bool(item.get("tool_calls"))
                if not isinstance(item.get("content"), str | list) and not calls_tools:
                    raise InvalidJobError(f"input[{n}].content", "a message needs content")
        else:
            raise InvalidJobError("input", "must be text or a list of message objects")

    def _validate_choices(self) -> None:
        if self.backend not in BACKENDS:
            raise InvalidJobError(
                "backend", f"unknown backend {self.backend!r}; choose one of {', '.join(BACKENDS)}"
            )
        if self.mode not in MODES:
            raise InvalidJobError(
                "mode", f"unknown mode {self.mode!r}; choose one of {', '.join(MODES)}"
            )
        if not isinstance(self.model, str) or not self.model.strip():
            raise InvalidJobError("model", "must be a non-empty model name")
        if self.instructions is not None and not isinstance(self.instructions, str):
            raise InvalidJobError("instructions", "must be text")

    def _validate_limits(self) -> None:
        number = not isinstance(self.deadline, bool) and isinstance(self.deadline, int | float)
        if not number or self.deadline <= 0:
            raise InvalidJobError(
                "deadline", f"must be a positive number of seconds, got {self.deadline!r}"
            )
        if not _whole(self.max_tool_rounds) or self.max_tool_rounds < 1:
            raise InvalidJobError("max_tool_rounds", "must be a whole number, at least 1")
        if self.max_output_tokens is not None and (
            not _whole(self.max_output_tokens) or self.max_output_tokens < 1
        ):
            raise InvalidJobError("max_output_tokens", "must be a whole number, at least 1")

    def _validate_lists(self) -> None:
        if self.multitask is not None and self.multitask not in MULTITASK_STRATEGIES:
            raise InvalidJobError(
                "multitask",
                f"unknown strategy {self.multitask!r}; choose one of "
                f"{', '.join(MULTITASK_STRATEGIES)}",
            )
        for name in ("tools", "vector_store_ids", "approval_required"):
            value = getattr(self, name)
            if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
                raise InvalidJobError(name, "must be a list of names (not one string)")
        unknown = [n for n in self.approval_required if n not in self.tools]
        if unknown:  # a misspelt name would let its calls run without anyone's approval
            raise InvalidJobError(
                "approval_required", f"names {unknown[0]!r}, not one of the job's tools"
            )

    def _validate_metadata(self) -> None:
        """The API's limits (16 pairs, keys up to 64 and values up to 512 characters), less
        the three pairs runq adds to every run (`runs.backends.base.run_metadata`; runq's
        values win over the job's own for those keys)."""
        if not isinstance(self.metadata, dict):
            raise InvalidJobError("metadata", "must be an object of string keys and values")
        if len(self.metadata) > MAX_METADATA_PAIRS:
            raise InvalidJobError(
                "metadata",
                f"at most {MAX_METADATA_PAIRS} pairs (the API allows 16; runq adds "
                f"{', '.join(RUN_METADATA_KEYS)})",
            )
        for key, value in self.metadata.items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise InvalidJobError("metadata", "keys and values must be strings")
            if not key or len(key) > 64 or len(value) > 512:
                raise InvalidJobError(
                    f"metadata.{key}", "keys take 1-64 characters and values up to 512"
                )

    def _validate_tenant(self) -> None:
        """A tenant is part of Redis key names and of the answer cache's identity: a
        plain name keeps `acme:x` from reading as tenant `acme` and something more."""
        if self.tenant is None:
            return
        if not isinstance(self.tenant, str) or not TENANT.fullmatch(self.tenant):
            raise InvalidJobError("tenant", f"must be {TENANT_RULE}, got {self.tenant!r}")

    def _validate_model_settings(self) -> None:
        """Each setting's value, then whether the job's backend has a field for it."""
        values = model_settings.values_of(self)
        model_settings.check(values)
        model_settings.refuse_unsupported(self.backend, values)
        named = model_settings.function_named(self.tool_choice)
        if named is not None and named not in self.tools:
            raise InvalidJobError("tool_choice", f"names {named!r}, not one of the job's tools")

    def to_dict(self) -> dict[str, Any]:
        return _fields_of(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobSpec:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class Job:
    """A job's whole state. `step` + `token` say which step is due; stale tasks see a mismatch."""

    id: str
    spec: JobSpec
    status: JobStatus = JobStatus.QUEUED
    step: Step = Step.START
    token: int = 0
    attempt: int = 0
    round: int = 0  # never reused within a job: tool outputs are keyed by it
    round_base: int = 0  # `round` when the current run started (rounds per run = difference)
    handle: dict[str, str] = field(default_factory=dict)
    stream_seq: int | None = None
    pending_calls: list[dict[str, Any]] = field(default_factory=list)
    # Chat Completions keeps no state at the server: the messages so far live here.
    transcript: list[dict[str, Any]] = field(default_factory=list)
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    output_text: str | None = None
    output_parsed: Any = None  # the answer as JSON, valid against the job's output schema
    hosted_calls: list[dict[str, Any]] = field(default_factory=list)  # the backend's tool calls
    files: list[dict[str, Any]] = field(default_factory=list)  # files the run produced, kept
    citations: list[dict[str, Any]] = field(default_factory=list)
    usage: dict[str, int] = field(default_factory=dict)
    error: dict[str, Any] | None = None
    timings: dict[str, float] = field(default_factory=dict)
    polls: int = 0
    source: str | None = None
    fallback_used: bool = False
    attempts: list[dict[str, Any]] = field(default_factory=list)
    # The chain the job follows (its name; "" for the job's own backend and model) once
    # its first step chose it, and the index of the link in use. Only names: the links
    # themselves (hosts, key variables) come from the worker's configuration each step.
    chain: str | None = None
    link_index: int = 0
    # Per error class on this link: failures in a row for call classes, failed runs for
    # `run_failed` (see `runs.retry.PER_CALL_CLASSES`).
    retries: dict[str, int] = field(default_factory=dict)
    rate_tokens: int = 0  # tokens taken from the link's bucket for the current call
    # An ended job is published by `runq.jobs.finish` (result backend, metrics); until
    # then it keeps a lease, so the sweeper re-drives a finish that was lost.
    published: bool = False
    # How this job's run got the conversation's history (`runs.conversations.history`),
    # and the conversation lock it holds while it is the conversation's turn.
    history: dict[str, Any] | None = None
    turn_lock: str | None = None
    # The cost tier in use and why (`runs.tiers`), the tokens spent on each tier, and
    # what they cost (priced by the worker when usage comes in).
    tier: dict[str, Any] | None = None
    tier_usage: dict[str, dict[str, int]] = field(default_factory=dict)
    cost: dict[str, Any] | None = None
    version: int = 0

    @classmethod
    def new(cls, spec: JobSpec, job_id: str | None = None) -> Job:
        return cls(id=job_id or new_job_id(), spec=spec, timings={"queued_at": time.time()})

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    def move(self, status: JobStatus) -> None:
        """Change status, refusing transitions the state machine does not allow."""
        if status != self.status and status not in TRANSITIONS[self.status]:
            raise ValueError(f"job {self.id}: illegal transition {self.status} -> {status}")
        self.status = status

    def due(self, step: Step) -> int:
        """Make `step` the next due step and return its fresh token."""
        self.step = step
        self.token += 1
        return self.token

    def mark(self, name: str) -> None:
        """Record a timestamp once (the first time it happens)."""
        self.timings.setdefault(name, time.time())

    def to_dict(self) -> dict[str, Any]:
        """The record as plain data, for `json.dumps` (nested values are shared, not copied)."""
        data = _fields_of(self)
        data["spec"] = self.spec.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Job:
        data = dict(data)
        data["spec"] = JobSpec.from_dict(data["spec"])
        if "status" in data:
            data["status"] = JobStatus(data["status"])
        if "step" in data:
            data["step"] = Step(data["step"])
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})

    def result(self) -> dict[str, Any]:
        """What a producer gets: stable keys, whatever the backend was."""
        return {
            "job_id": self.id,
            "status": self.status,
            "output_text": self.output_text,
            "output_parsed": self.output_parsed,
            "citations": self.citations,
            "tool_calls": self.tool_calls,
            "hosted_tool_calls": self.hosted_calls,
            "files": self.files,
            "usage": self.usage,
            "timings": result_timings(self.timings),
            "source": self.source,
            "fallback_used": self.fallback_used,
            "attempts": self.attempts,
            "error": self.error,
            "backend": self.spec.backend,
            "model": self.spec.model,
            "mode": self.spec.mode,
            "backend_ids": dict(self.handle),
            "conversation": self.spec.conversation,
            "history": _history_report(self.history),
            "tier": _tier_report(self.tier),
            "cost": self.cost,
        }


def _tier_report(tier: dict[str, Any] | None) -> dict[str, Any] | None:
    """`{requested, chosen, reason, moves}`: the cost tier the job ran on and why."""
    if tier is None:
        return None
    return {k: tier[k] for k in ("requested", "chosen", "reason", "moves") if k in tier}


def _history_report(history: dict[str, Any] | None) -> dict[str, Any] | None:
    """`{carried: native | replayed | none, items, truncated}`: how the run got the
    conversation's earlier turns (None: a job from before runq kept conversations)."""
    if history is None:
        return None
    return {k: history[k] for k in ("carried", "items", "truncated") if k in history}


# The durations a result reports, each between two of the record's moments.
DURATIONS = {
    "queue_s": ("queued_at", "started_at"),  # waiting for a worker (and the gates)
    "run_s": ("run_created_at", "run_completed_at"),  # the backend's run, tool rounds too
    "total_s": ("queued_at", "finished_at"),  # submitted to ended
}


def iso_utc(epoch: float) -> str:
    """An epoch time as ISO 8601 in UTC, to the millisecond: `2026-11-29T21:03:04.123Z`."""
    stamp = datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")


def result_timings(timings: dict[str, float]) -> dict[str, str | float]:
    """A result's `timings`: each moment the record holds as an ISO 8601 UTC string, then
    the durations between them in seconds.

    The record keeps epoch floats (the steps compute deadlines and leases from them); a
    producer gets what every language and log reads without guessing the epoch and the
    zone, and the durations it would otherwise compute from them.
    """
    shown: dict[str, str | float] = {name: iso_utc(at) for name, at in timings.items()}
    for name, (since, until) in DURATIONS.items():
        if since in timings and until in timings:
            shown[name] = round(timings[until] - timings[since], 3)
    return shown
