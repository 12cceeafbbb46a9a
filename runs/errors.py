"""runq's exceptions: one root, a branch per kind of trouble, messages that say what to do."""

from __future__ import annotations

from config.settings import ConfigError


class RunqError(Exception):
    """Root of every error runq raises on purpose."""


class ConfigurationError(RunqError, ConfigError):
    """A setting or an option is missing or invalid."""


class InvalidJobError(RunqError, ValueError):
    """A job was refused before it was enqueued; the message names the option."""

    def __init__(self, option: str, problem: str) -> None:
        self.option = option
        self.problem = problem
        super().__init__(f"{option}: {problem}")


class JobNotFoundError(RunqError, KeyError):
    """No job with this id (or it expired, or belongs to someone else)."""

    def __str__(self) -> str:
        return f"no job with id {self.args[0]!r}"


class JobTimeoutError(RunqError, TimeoutError):
    """A producer waited for a result longer than it allowed."""


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
