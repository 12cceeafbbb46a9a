"""Retry policy: whether a classified error is retried, and after how long.

A retry in runq is a re-scheduled task (a Celery countdown), never a sleep, so this
module only *decides*; the task does the scheduling. Attempts are counted from 0: the
first call is attempt 0, and `decide(err, attempt)` is asked about the attempt that
just failed.

Backoff (full jitter, after the AWS architecture blog's "Exponential Backoff And
Jitter")::

    bound(n) = min(cap, base * 2**n)
    delay(n) = uniform(0, bound(n))      if jitter
             = bound(n)                  otherwise
    delay(n) = retry_after               if the server sent one (never less than it,
                                          at most 120 s)

Full jitter spreads the retries of many workers that failed together over the whole
window, which is what a rate-limited or recovering backend needs. A server's
`retry-after` wins because the server knows when it will accept us again.

Error classes get different policies (`RetryPolicies`): a 429 deserves more attempts
and longer waits than a dropped connection, and a failed run (minutes of work) fewer.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, Protocol

from runq.errors import BackendError, ConfigurationError
from runq.runs.classify import MAX_RETRY_AFTER
from runq.runs.error_codes import ErrorCode


class _Uniform(Protocol):
    def uniform(self, a: float, b: float) -> float: ...


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to retry one class of error.

    `max_attempts` counts every call, the first included (3 = the call + 2 retries).
    `base` and `cap` are seconds. Plain numbers (ints, floats, numeric strings from a
    settings file) are accepted and validated.
    """

    max_attempts: int = 5
    base: float = 0.5
    cap: float = 30.0
    jitter: bool = True

    def __post_init__(self) -> None:
        try:
            max_attempts = int(self.max_attempts)
            base = float(self.base)
            cap = float(self.cap)
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(f"retry policy needs numbers: {exc}") from None
        if max_attempts < 1:
            raise ConfigurationError("retry policy max_attempts must be >= 1 (1 = no retry)")
        if base < 0 or cap < 0:
            raise ConfigurationError("retry policy base and cap must be >= 0 seconds")
        object.__setattr__(self, "max_attempts", max_attempts)
        object.__setattr__(self, "base", base)
        object.__setattr__(self, "cap", cap)
        object.__setattr__(self, "jitter", bool(self.jitter))

    def bound(self, attempt: int) -> float:
        """`min(cap, base * 2**attempt)`, without overflowing for large attempts."""
        if attempt < 0:
            raise ValueError("attempt counts from 0")
        if attempt >= 64:  # 2**64 * any sane base is far above any cap
            return self.cap if self.base > 0 else 0.0
        return min(self.cap, self.base * 2.0**attempt)

    def delay(
        self, attempt: int, retry_after: float | None = None, rng: _Uniform | None = None
    ) -> float:
        """Seconds to wait before retrying after `attempt` failed (see module docstring)."""
        if retry_after is not None:
            return min(max(float(retry_after), 0.0), MAX_RETRY_AFTER)
        bound = self.bound(attempt)
        if not self.jitter:
            return bound
        return (rng or random).uniform(0.0, bound)


@dataclass(frozen=True)
class RetryDecision:
    """What to do after a failed attempt. `reason` is a stable word for logs and metrics:
    `retry_after` / `backoff` (retrying), `final_error`, `retries_exhausted` or
    `deadline` (not retrying)."""

    retry: bool
    delay: float
    reason: str


# Error code -> the RetryPolicies field that governs it. Codes not listed but
# retryable fall back to `transient`.
POLICY_OF_CODE: dict[str, str] = {
    ErrorCode.RATE_LIMITED: "rate_limited",
    ErrorCode.SERVER_ERROR: "transient",
    ErrorCode.CONNECTION: "transient",
    ErrorCode.TIMEOUT: "transient",
    ErrorCode.CONFLICT: "transient",
    ErrorCode.RUN_FAILED: "run_failed",
    ErrorCode.RUN_EXPIRED: "run_failed",
    ErrorCode.OUTPUT_INVALID_JSON: "output",
    ErrorCode.OUTPUT_SCHEMA_MISMATCH: "output",
    ErrorCode.OUTPUT_REFUSED: "output",
}


DEFAULT_OUTPUT_RETRIES = 1


def output_policy(retries: int = DEFAULT_OUTPUT_RETRIES) -> RetryPolicy:
    """`retries` more tries (`RUNQ_OUTPUT_RETRIES`), at once: a model that broke the
    schema is asked again, not made to wait — nothing at the server needs time to
    recover."""
    return RetryPolicy(max_attempts=retries + 1, base=0.0, cap=0.0, jitter=False)


# The policies whose attempts count one call's failures in a row: a call that answers
# ends the streak. `run_failed` counts failed runs over the job's life instead, or a run
# that keeps failing would be retried until the deadline.
PER_CALL_CLASSES = ("rate_limited", "transient")


@dataclass(frozen=True)
class RetryPolicies:
    """One `RetryPolicy` per error class, and the decision that uses them.

    `test_mode=True` keeps every decision but makes every delay 0, so tests exercise
    the retry paths without waiting.
    """

    rate_limited: RetryPolicy = field(
        default_factory=lambda: RetryPolicy(max_attempts=8, base=1.0, cap=60.0)
    )
    transient: RetryPolicy = field(
        default_factory=lambda: RetryPolicy(max_attempts=5, base=0.5, cap=30.0)
    )
    run_failed: RetryPolicy = field(
        default_factory=lambda: RetryPolicy(max_attempts=3, base=2.0, cap=60.0)
    )
    # Answers that break the job's output schema, counted over the link like failed runs.
    output: RetryPolicy = field(default_factory=output_policy)
    test_mode: bool = False

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> RetryPolicies:
        """Build from plain data, e.g. a settings table::

            {"rate_limited": {"max_attempts": 10, "cap": 90}, "test_mode": False}

        Fields left out keep their defaults; unknown names are a configuration error.
        """
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigurationError(
                f"unknown retry policy name(s) {unknown}; expected some of {sorted(known)}"
            )
        defaults = cls()
        kwargs: dict[str, Any] = {}
        for name, value in data.items():
            if name == "test_mode":
                kwargs[name] = bool(value)
            elif isinstance(value, RetryPolicy):
                kwargs[name] = value
            elif isinstance(value, Mapping):
                try:
                    kwargs[name] = replace(getattr(defaults, name), **dict(value))
                except TypeError as exc:
                    raise ConfigurationError(f"retry policy {name!r}: {exc}") from None
            else:
                raise ConfigurationError(f"retry policy {name!r} must be a table of numbers")
        return cls(**kwargs)

    def class_of(self, err: BackendError) -> str:
        """The name of the policy that governs this error (attempts are counted per class)."""
        return POLICY_OF_CODE.get(err.code, "transient")

    def for_error(self, err: BackendError) -> RetryPolicy:
        """The policy for this error's class (by `err.code`)."""
        policy: RetryPolicy = getattr(self, POLICY_OF_CODE.get(err.code, "transient"))
        return policy

    def decide(
        self,
        err: BackendError,
        attempt: int,
        *,
        time_left: float | None = None,
        rng: _Uniform | None = None,
    ) -> RetryDecision:
        """Retry or not after attempt number `attempt` (from 0) failed with `err`.

        Final errors never retry. Past the policy's `max_attempts`, no retry
        (`retries_exhausted`). With `time_left` (seconds before the job's deadline), a
        wait that would end past the deadline is not taken (`deadline`).
        """
        if not err.retryable:
            return RetryDecision(False, 0.0, "final_error")
        policy = self.for_error(err)
        if attempt + 1 >= policy.max_attempts:
            return RetryDecision(False, 0.0, "retries_exhausted")
        delay = 0.0 if self.test_mode else policy.delay(attempt, err.retry_after, rng)
        if time_left is not None and delay >= time_left:
            return RetryDecision(False, 0.0, "deadline")
        reason = "retry_after" if err.retry_after is not None else "backoff"
        return RetryDecision(True, delay, reason)
