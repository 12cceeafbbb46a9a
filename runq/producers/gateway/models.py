"""Request and response bodies of the gateway, as they appear in its OpenAPI description."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from runq.runs.input_limits import MAX_INPUT_ITEMS
from runq.runs.job import MAX_INPUT_CHARS, MAX_METADATA_PAIRS, ROLES

# Text with at least one non-blank character, as `JobSpec.validate` wants it.
Text = Annotated[str, StringConstraints(min_length=1, max_length=MAX_INPUT_CHARS, pattern=r"\S")]
JOB_ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,200}$"
STREAM_ID_PATTERN = r"^\d{1,20}-\d{1,20}$"
MAX_INSTRUCTIONS_CHARS = 100_000
MAX_SCHEMA_CHARS = 100_000
MAX_TOOLS = 64
IDEMPOTENCY_KEY_CHARS = 200
CONVERSATION_ID_PATTERN = r"^[A-Za-z0-9._-]{1,128}$"
MAX_TRANSCRIPT_TURNS = 10_000


class Message(BaseModel):
    """A Responses-style message: a role and its content (text or content parts).

    Other fields a message may have (`name`, `tool_call_id`, ...) are let through here
    and checked by `runs.input_limits`, which refuses a field no message has and bounds
    the whole input (characters, items, nesting) for every producer alike."""

    model_config = ConfigDict(extra="allow")

    role: Literal[ROLES]  # type: ignore[valid-type]
    content: (
        Annotated[str, StringConstraints(max_length=MAX_INPUT_CHARS)]
        | Annotated[list[Any], Field(max_length=MAX_INPUT_ITEMS)]
    )


class InputItem(BaseModel):
    """An input item of another kind, named by its `type` (`function_call_output`, ...);
    its fields are checked by `runs.input_limits`, as for a message."""

    model_config = ConfigDict(extra="allow")

    type: Annotated[str, StringConstraints(min_length=1, max_length=64)]


def _bounded_schema(schema: dict[str, Any] | None) -> dict[str, Any] | None:
    """An output schema of at most `MAX_SCHEMA_CHARS` characters as JSON."""
    if schema is not None and len(json.dumps(schema)) > MAX_SCHEMA_CHARS:
        raise ValueError(f"is larger than {MAX_SCHEMA_CHARS} characters as JSON")
    return schema


MetadataKey = Annotated[str, StringConstraints(min_length=1, max_length=64)]
MetadataValue = Annotated[str, StringConstraints(max_length=512)]
ToolName = Annotated[str, StringConstraints(min_length=1, max_length=200)]


class Reasoning(BaseModel):
    """How much a reasoning model thinks, and whether it summarises its thought."""

    model_config = ConfigDict(extra="forbid")

    effort: Literal["none", "minimal", "low", "medium", "high", "xhigh"] | None = None
    summary: Literal["auto", "concise", "detailed"] | None = None


class FunctionChoice(BaseModel):
    """`tool_choice` naming one of the job's tools."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["function"]
    name: ToolName


MAX_HOSTED_TOOL_CHARS = 10_000
MAX_FILES = 20


def _bounded_tool(tool: dict[str, Any]) -> dict[str, Any]:
    if len(json.dumps(tool)) > MAX_HOSTED_TOOL_CHARS:
        raise ValueError(f"is larger than {MAX_HOSTED_TOOL_CHARS} characters as JSON")
    return tool


HostedTool = Annotated[dict[str, Any], AfterValidator(_bounded_tool)]


def _base64(text: str) -> str:
    try:
        base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("is not valid base64") from None
    return text


class FileUpload(BaseModel):
    """An input file for the code interpreter: its name and its bytes in base64. The
    whole body is bounded by RUNQ_GATEWAY_MAX_BODY_BYTES, each file by RUNQ_FILE_MAX_BYTES."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, StringConstraints(min_length=1, max_length=255)]
    content_base64: Annotated[str, AfterValidator(_base64)]

    def decoded(self) -> tuple[str, bytes]:
        return self.name, base64.b64decode(self.content_base64)


class JobRequest(BaseModel):
    """A conversation job. Omitted options take the deployment's defaults."""

    model_config = ConfigDict(extra="forbid")

    input: (
        Text | Annotated[list[InputItem | Message], Field(min_length=1, max_length=MAX_INPUT_ITEMS)]
    ) = Field(
        description="the user's message, or a list of Responses-style message objects",
        examples=["What is the default geofencing radius?"],
    )
    backend: Literal["responses", "assistants", "chat"] | None = None
    model: Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"\S")] | None = (
        None
    )
    mode: Literal["poll", "stream", "webhook"] | None = None
    tools: list[ToolName | HostedTool] | None = Field(
        default=None,
        max_length=MAX_TOOLS,
        description="function tool names, and hosted tools: code_interpreter, web_search, "
        '{"type": "mcp", "server_label", "server_url", "allowed_tools", "require_approval"}',
        examples=[["code_interpreter"]],
    )
    files: list[FileUpload] | None = Field(
        default=None, max_length=MAX_FILES, description="input files for the code interpreter"
    )
    instructions: str | None = Field(default=None, max_length=MAX_INSTRUCTIONS_CHARS)
    conversation: Annotated[str, StringConstraints(pattern=CONVERSATION_ID_PATTERN)] | None = Field(
        default=None, description="the tenant's runq conversation to continue"
    )
    multitask: Literal["enqueue", "reject", "interrupt", "rollback"] | None = Field(
        default=None,
        description="while another job has the conversation: wait (enqueue), fail "
        "conversation_busy (reject), cancel it (interrupt), or cancel it and drop its turn "
        "(rollback); default RUNQ_MULTITASK",
    )
    approval_required: list[ToolName] | None = Field(
        default=None,
        max_length=MAX_TOOLS,
        description="tools whose calls wait for POST /v1/jobs/{id}/approvals/{call_id}",
    )
    deadline: float | None = Field(default=None, gt=0, le=7 * 24 * 3600, description="seconds")
    metadata: dict[MetadataKey, MetadataValue] | None = Field(
        default=None,
        max_length=MAX_METADATA_PAIRS,
        description="the API allows 16 pairs; runq adds runq_job_id, runq_attempt, runq_round",
    )
    # Structured output (see runq.runs.structured_output).
    output_schema: Annotated[dict[str, Any] | None, AfterValidator(_bounded_schema)] = Field(
        default=None,
        description="a JSON schema the answer must satisfy; the result's output_parsed holds it",
        examples=[{"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"]}],
    )  # fmt: skip
    output_name: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")] | None = None
    output_strict: bool | None = Field(
        default=None, description="default: strict when every property is required"
    )
    # Model settings (see runq.runs.model_settings); a backend without one refuses the job.
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    reasoning: Reasoning | None = None
    max_output_tokens: int | None = Field(default=None, ge=1)
    service_tier: Literal["auto", "default", "flex", "priority"] | None = None
    # The cost tier (see runq.runs.tiers): batch and flex at half price, auto by deadline.
    tier: Literal["auto", "standard", "flex", "priority", "batch"] | None = Field(
        default=None, description="cost tier; auto picks the cheapest that fits the deadline"
    )
    prompt_cache_key: str | None = Field(default=None, min_length=1, max_length=1024)
    safety_identifier: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        description="default (with RUNQ_SAFETY_IDENTIFIER_FROM_TENANT): a hash of the tenant",
    )
    truncation: Literal["auto", "disabled"] | None = None
    tool_choice: Literal["auto", "none", "required"] | FunctionChoice | None = None
    parallel_tool_calls: bool | None = None
    store: bool | None = None
    include: list[Annotated[str, StringConstraints(max_length=200)]] | None = Field(
        default=None, max_length=16
    )


class Links(BaseModel):
    self: str
    events: str
    cancel: str


class JobCreated(BaseModel):
    job_id: str
    status: str
    created: bool = Field(description="false when the Idempotency-Key matched an earlier job")
    links: Links


class JobView(BaseModel):
    """A job's status and, once it ended, its result."""

    model_config = ConfigDict(extra="allow")

    job_id: str
    status: str
    output_text: str | None = None
    output_parsed: Any = Field(
        default=None, description="the answer as JSON, valid against the job's output_schema"
    )
    citations: list[dict[str, Any]] = []
    tool_calls: list[dict[str, Any]] = []
    hosted_tool_calls: list[dict[str, Any]] = Field(
        default=[], description="the backend's own tool calls (code interpreter, web search, mcp)"
    )
    files: list[dict[str, Any]] = Field(
        default=[], description="files the run produced: GET /v1/jobs/{id}/files/{name}"
    )
    usage: dict[str, Any] = {}
    timings: dict[str, str | float] = Field(
        default={},
        description="moments as ISO 8601 UTC strings (queued_at, started_at, run_created_at, "
        "run_completed_at, finished_at) and durations in seconds (queue_s, run_s, total_s), "
        "each once it applies",
        examples=[{"queued_at": "2026-11-29T21:03:04.123Z", "total_s": 2.481}],
    )
    source: str | None = None
    fallback_used: bool = False
    error: dict[str, Any] | None = None
    backend: str | None = None
    model: str | None = None
    mode: str | None = None
    metadata: dict[str, Any] = {}


class JobListed(BaseModel):
    """One job of a listing: what it is, how far it got, its first words."""

    job_id: str
    status: str
    created_at: str | None = Field(description="when it was submitted, ISO 8601 UTC")
    backend: str
    model: str
    source: str | None = Field(description="the chain link that answered, once it ended")
    tenant: str | None
    step: str
    input: str = Field(description="the first words of the input")
    links: Links


class JobList(BaseModel):
    jobs: list[JobListed] = Field(description="newest first")


class CancelAccepted(BaseModel):
    job_id: str
    status: str
    cancel_requested: bool = True


class ApprovalDecision(BaseModel):
    """A person's decision on a tool call that waits (runs.approvals)."""

    model_config = ConfigDict(extra="forbid")

    approve: bool = Field(description="true: the tool runs; false: it never runs")
    reason: str | None = Field(
        default=None, max_length=1000, description="with a denial: what the model is told"
    )


class ApprovalView(BaseModel):
    """A tool call that waits (status pending) or waited for a person."""

    model_config = ConfigDict(extra="allow")

    call_id: str
    name: str
    arguments: str
    round: int
    status: Literal["pending", "approved", "denied"]
    deadline: float = Field(description="epoch seconds: undecided by then, it is denied")
    reason: str | None = None
    decided_by: Literal["person", "timeout"] | None = None


class ApprovalList(BaseModel):
    approvals: list[ApprovalView]


class Health(BaseModel):
    status: Literal["ok", "unavailable"]
    redis: bool


class Problem(BaseModel):
    """An error that is not a validation error."""

    detail: str


class ConversationImport(BaseModel):
    """A JSONL transcript's lines as a list: `{role: user|assistant|system, text, ...}`."""

    model_config = ConfigDict(extra="forbid")

    transcript: list[dict[str, Any]] = Field(min_length=1, max_length=MAX_TRANSCRIPT_TURNS)
    conversation: Annotated[str, StringConstraints(pattern=CONVERSATION_ID_PATTERN)] | None = Field(
        default=None, description="the new conversation's id (default: a new one)"
    )


class ConversationCreated(BaseModel):
    conversation: str
    turns: int


class ConversationView(BaseModel):
    conversation: str
    transcript: list[dict[str, Any]]
