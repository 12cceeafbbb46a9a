"""The codes that say why something failed: a backend call, a run, a job, a tool call.

A code is what everything downstream decides on (the retry policy, the fallback chain,
the breaker, a producer reading `result["error"]["code"]`), so it is one word from a
closed list, never a message. The record and the events hold the plain string; a
`StrEnum` member compares equal to it.

A backend may still hand over a code of its own (an error event's `code`, a run status
runq does not know, read as `run_<status>`): `BackendError.code` stays a `str`.
"""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    """Why a backend call, a run or a job failed (`BackendError.code`, `job.error.code`)."""

    # The backend answered with an HTTP error (`runs.classify`).
    BAD_REQUEST = "bad_request"
    AUTH = "auth"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"
    TIMEOUT = "timeout"
    CONFLICT = "conflict"
    UNPROCESSABLE = "unprocessable"
    RATE_LIMITED = "rate_limited"
    QUOTA_EXCEEDED = "quota_exceeded"
    SERVER_ERROR = "server_error"
    CLIENT_ERROR = "client_error"
    # The backend gave no usable answer.
    CONNECTION = "connection"
    INVALID_RESPONSE = "invalid_response"
    API_ERROR = "api_error"
    UNEXPECTED = "unexpected"
    NOT_RESUMABLE = "not_resumable"
    # The run ended, but not `completed`.
    RUN_FAILED = "run_failed"
    RUN_EXPIRED = "run_expired"
    RUN_INCOMPLETE = "run_incomplete"
    RUN_CANCELLED = "run_cancelled"
    # The job's own limits, its chain of links, its tools.
    DEADLINE_NEAR = "deadline_near"
    DEADLINE_EXCEEDED = "deadline_exceeded"
    CIRCUIT_OPEN = "circuit_open"
    LINK_UNUSABLE = "link_unusable"  # this worker cannot call the link (its key is not set)
    CACHE_MISS = "cache_miss"
    ALL_LINKS_FAILED = "all_links_failed"
    MAX_TOOL_ROUNDS_EXCEEDED = "max_tool_rounds_exceeded"
    TOOL_ERROR = "tool_error"
    CANCELLED = "cancelled"
    # Another job had the conversation and this job's `multitask` is `reject`.
    CONVERSATION_BUSY = "conversation_busy"
    # Admission refused the job: a budget it falls under has no room (`runs.budgets`).
    BUDGET_EXCEEDED = "budget_exceeded"
    # The run completed, but its answer is not what the job's output schema asks for
    # (`runs.structured_output`): retried `RUNQ_OUTPUT_RETRIES` times, then the next link.
    OUTPUT_INVALID_JSON = "output_invalid_json"
    OUTPUT_SCHEMA_MISMATCH = "output_schema_mismatch"
    OUTPUT_REFUSED = "output_refused"


OUTPUT_CODES = frozenset(
    {ErrorCode.OUTPUT_INVALID_JSON, ErrorCode.OUTPUT_SCHEMA_MISMATCH, ErrorCode.OUTPUT_REFUSED}
)


class ToolErrorCode(StrEnum):
    """Why a tool call produced an error output instead of the tool's (`ToolError.code`)."""

    TOOL_ERROR = "tool_error"
    UNKNOWN_TOOL = "unknown_tool"
    INVALID_JSON = "invalid_json"
    INVALID_ARGUMENTS = "invalid_arguments"
    INVALID_OUTPUT = "invalid_output"
    TOOL_RAISED = "tool_raised"
    TOOL_TIMEOUT = "tool_timeout"
    TOOL_INTERRUPTED = "tool_interrupted"
    MISSING_OUTPUT = "missing_output"
    CANCELLED = "cancelled"
