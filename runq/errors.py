"""runq's exceptions: one root, a branch per kind of trouble, messages that say what to do.

The whole tree (`except RunqError` catches everything runq raises on purpose; anything
else that escapes is a bug, not a job error)::

    RunqError
    ├── ConfigurationError      a setting or option is missing or invalid (names the variable)
    │   ├── LaunchError         an embedded service (Redis, the sandbox) could not start
    │   └── MissingExtraError   an optional part is not installed (names the pip extra)
    ├── InvalidJobError         a job refused before it was enqueued (also a ValueError)
    ├── IdempotencyConflictError an idempotency key reused for a different job (a ValueError)
    ├── JobNotFoundError        no such job, or not yours (also a KeyError)
    ├── JobTimeoutError         a producer waited longer than it allowed (also a TimeoutError)
    ├── JobAlreadyEndedError    a cancel came after the job had succeeded or failed: `status`
    ├── JobFailedError          `JobHandle.output()` of a job that did not succeed: `result`
    ├── BudgetExceededError     a submit refused: a `fail` budget has no room (`state`)
    ├── RedisUnavailableError   Redis stayed unreachable past a producer's wait: `url` (no password)
    ├── RedisFullError          Redis refused a write: out of memory (maxmemory reached)
    ├── BackendError            the model backend failed: `code`, `retryable`, `retry_after`
    │   └── RunEndedError       (runq.runs.classify) a run ended failed/expired/incomplete
    ├── ToolError               a tool call could not run: unknown, bad arguments, raised
    └── producer errors         (runq.producers.ask) CorpusError, OutputError, AskInterrupted

This module imports nothing of runq, so every layer (even `runq.config`) may raise these.
"""

from __future__ import annotations

from typing import Any


class RunqError(Exception):
    """Root of every error runq raises on purpose."""


class ConfigurationError(RunqError):
    """A setting or an option is missing or invalid; the message names what to set."""


class LaunchError(ConfigurationError):
    """An embedded service could not be started; the message says what to install or set."""


class MissingExtraError(ConfigurationError):
    """An optional part of runq is not installed: the message names the extra to install."""

    def __init__(self, extra: str, feature: str, missing: str) -> None:
        self.extra = extra
        super().__init__(
            f"{feature} needs the '{extra}' extra, which is not installed (no {missing}): "
            f"pip install 'runq[{extra}]'"
        )


class InvalidJobError(RunqError, ValueError):
    """A job was refused before it was enqueued; the message names the option."""

    def __init__(self, option: str, problem: str) -> None:
        self.option = option
        self.problem = problem
        super().__init__(f"{option}: {problem}")


class ConversationBusyError(InvalidJobError):
    """Another job has the conversation and this job's `multitask` strategy is `reject`
    (`runs.multitask`): the job fails at once with the code `conversation_busy`."""

    code = "conversation_busy"

    def __init__(self, holder: str) -> None:
        super().__init__(
            "conversation",
            f"busy: job {holder} is running on it (multitask=reject); submit again when it "
            "has ended, or choose enqueue, interrupt or rollback",
        )
        self.holder = holder


class IdempotencyConflictError(RunqError, ValueError):
    """An idempotency key already names a job that was asked with a different spec.

    The same key with the same spec returns the first job; with another spec it is a
    mistake (a reused order number, a key derived from too little), and answering with
    the first job would hand back an answer to a question that was not asked.
    """

    def __init__(self, key: str, job_id: str) -> None:
        self.key = key
        self.job_id = job_id
        super().__init__(
            f"idempotency key {key!r} was already used for job {job_id} with a different "
            "request; send the same request to get that job again, or use a new key"
        )


class JobNotFoundError(RunqError, KeyError):
    """No job with this id (or it expired, or belongs to someone else)."""

    def __str__(self) -> str:
        return f"no job with id {self.args[0]!r}"


class JobTimeoutError(RunqError, TimeoutError):
    """A producer waited for a result longer than it allowed."""


class JobFailedError(RunqError):
    """`JobHandle.output()` was asked for the answer of a job that did not succeed.

    `result` is the job's whole result (its `error` and `attempts` say why); `code` is
    the error's code, e.g. `output_schema_mismatch` once every link answered off-schema.
    """

    def __init__(self, job_id: str, result: dict[str, Any]) -> None:
        self.job_id = job_id
        self.result = result
        error = result.get("error") or {}
        self.code = error.get("code")
        super().__init__(
            f"job {job_id} ended {result.get('status')}: {error.get('message') or 'no answer'}"
        )


class JobAlreadyEndedError(RunqError):
    """A cancel came after the job had ended (`succeeded` or `failed`): nothing was done.

    Raised rather than ignored because the caller believed the job was still running,
    and its result now stands; `status` says how it ended. A job that was already
    cancelled is not an error: cancelling twice is harmless.
    """

    def __init__(self, job_id: str, status: str) -> None:
        self.job_id = job_id
        self.status = status
        super().__init__(f"job {job_id} had already ended ({status})")


class ApprovalNotFoundError(JobNotFoundError):
    """No call with this id waits for a person in this job (`runs.approvals`)."""

    def __init__(self, job_id: str, call_id: str) -> None:
        super().__init__(job_id)
        self.job_id = job_id
        self.call_id = call_id

    def __str__(self) -> str:
        return f"no tool call {self.call_id!r} waits for approval in job {self.job_id!r}"


class ApprovalDecidedError(RunqError):
    """The call was decided before (by a person or by its timeout): nothing changed."""

    def __init__(self, job_id: str, call_id: str, status: str) -> None:
        self.job_id = job_id
        self.call_id = call_id
        self.status = status
        super().__init__(f"tool call {call_id} of job {job_id} was already {status}")


class BudgetExceededError(RunqError):
    """A job refused at submit: a budget it falls under (`over: fail`) has no room left.

    `state` is the budget's state (its scope, period, spend, reserved and remaining, and
    `resets_at`); `retry_after` is the seconds until the period ends and it has room again.
    """

    def __init__(self, state: dict[str, Any], retry_after: float) -> None:
        self.state = state
        self.retry_after = retry_after
        super().__init__(
            f"budget {state.get('scope')!r} has no room for this job until its period "
            f"ends in {retry_after:.0f}s (`runq budgets` shows its state)"
        )


class RedisUnavailableError(RunqError, ConnectionError):
    """Redis could not be reached for as long as a producer was willing to wait.

    A producer's wait reconnects through a restart (runq.producers.client.reconnect);
    this is raised once, when the outage outlasts the wait. `url` has no password.
    """

    def __init__(self, url: str, down_for: float, cause: str) -> None:
        self.url = url
        self.down_for = down_for
        super().__init__(
            f"Redis at {url} could not be reached for {down_for:.1f}s ({cause}); "
            "check that it is running (`runq up`) and that REDIS_URL is right"
        )


class RedisFullError(RunqError):
    """Redis refused a write because it is out of memory (`maxmemory` reached)."""

    def __init__(self, url: str) -> None:
        self.url = url
        super().__init__(
            f"Redis at {url} is out of memory (maxmemory reached) and refused the write; "
            "free memory or raise maxmemory, or keep results for less time "
            "(RUNQ_RESULT_EXPIRES)"
        )


class BackendError(RunqError):
    """The model backend answered with an error or not at all.

    `retryable` says whether the same request may succeed later; `retry_after` is the
    server's hint in seconds, when it gave one.
    """

    def __init__(
        self,
        message: str,
        *,
        code: str = "backend_error",
        retryable: bool = False,
        retry_after: float | None = None,
        status_code: int | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.retryable = retryable
        self.retry_after = retry_after
        self.status_code = status_code


class ToolError(RunqError):
    """A tool call could not run: unknown tool, bad arguments, or the tool raised."""

    def __init__(self, message: str, *, code: str = "tool_error") -> None:
        super().__init__(message)
        self.code = code
