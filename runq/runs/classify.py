"""Error classification: turn whatever a backend call raised into one `BackendError`.

Everything downstream (retry policy, fallback chain, circuit breaker, job record) looks
at `code` and `retryable` only, never at exception types, so the `except` clauses of
the whole project live here, once.

Retryable (the same request may succeed later): 429, 408, 409, >=500, connection
failures, timeouts, runs that `failed` with `server_error` or `rate_limit_exceeded`,
runs that `expired`. Final: 400, 401, 403, 404, 422, other 4xx, a run `cancelled` or
`incomplete` (an incomplete run is a fallback trigger, not a retry: the same request
would hit the same output limit), and anything we do not recognise (a bug in our code
is not fixed by trying again).

Two refinements over the status code, both taken from what the server says:

* A 429 whose error code is `insufficient_quota` is final: the account is out of
  credit, and waiting will not bring it back.
* An `x-should-retry: true|false` header overrides the status code's verdict; the
  official client obeys it too.

`retry_after` comes from `retry-after-ms` (milliseconds), then `retry-after` (seconds,
or an HTTP date), capped at `MAX_RETRY_AFTER` (120 s, as in the official client).
"""

from __future__ import annotations

import email.utils
import math
import time
from collections.abc import Mapping

import httpx2
import openai

from runq.errors import BackendError
from runq.runs.error_codes import ErrorCode
from runq.runs.run_status import RunStatus

MAX_RETRY_AFTER = 120.0
"""Longest server-requested wait we honour, in seconds (the official client's limit)."""

RETRYABLE_RUN_ERRORS = frozenset({"server_error", "rate_limit_exceeded"})
"""`last_error.code` / `error.code` values of a `failed` run that are worth retrying."""

# status code -> (code, retryable, what to do). Looked up before the >=500 rule.
_BY_STATUS: dict[int, tuple[ErrorCode, bool, str]] = {
    400: (ErrorCode.BAD_REQUEST, False, "the backend rejected the request; fix the job's input"),
    401: (ErrorCode.AUTH, False, "the backend refused the credentials; check OPENAI_API_KEY"),
    403: (ErrorCode.FORBIDDEN, False, "the key may not use this model or resource; check access"),
    404: (ErrorCode.NOT_FOUND, False, "the model or object does not exist at this backend"),
    408: (ErrorCode.TIMEOUT, True, "the backend timed out the request; it will be retried"),
    409: (ErrorCode.CONFLICT, True, "the resource was busy (e.g. a run active on the thread)"),
    422: (
        ErrorCode.UNPROCESSABLE,
        False,
        "the backend could not process the request; fix the input",
    ),
    429: (ErrorCode.RATE_LIMITED, True, "the backend is rate limiting; it will be retried"),
}


class RunEndedError(BackendError):
    """A run reached a terminal status other than `completed`.

    Carries the run's `status` and the backend's error code (`error_code`), so that a
    fallback chain can tell an `incomplete` run (try a bigger model) from a failure.
    """

    def __init__(
        self, message: str, *, code: str, retryable: bool, status: str, error_code: str | None
    ) -> None:
        super().__init__(message, code=code, retryable=retryable)
        self.status = status
        self.error_code = error_code


def classify(exc: BaseException) -> BackendError:
    """Map any exception from a backend call to a `BackendError` (the cause is kept)."""
    if isinstance(exc, BackendError):
        return exc
    err = _classify(exc)
    err.__cause__ = exc
    return err


def _classify(exc: BaseException) -> BackendError:
    # Order matters: APITimeoutError is an APIConnectionError, and both are APIErrors.
    if isinstance(exc, openai.APITimeoutError):
        return BackendError(
            f"backend request timed out: {exc}", code=ErrorCode.TIMEOUT, retryable=True
        )
    if isinstance(exc, openai.APIConnectionError):
        return BackendError(
            f"cannot reach the backend: {exc}", code=ErrorCode.CONNECTION, retryable=True
        )
    if isinstance(exc, openai.APIStatusError):
        return _from_status(exc.status_code, exc.response.headers, exc.code, str(exc))
    if isinstance(exc, openai.APIResponseValidationError):
        return BackendError(
            f"the backend answered with an unexpected body: {exc}",
            code=ErrorCode.INVALID_RESPONSE,
            status_code=exc.status_code,
        )
    if isinstance(exc, openai.APIError):
        # An error event inside a stream: no status, but often a code.
        retryable = exc.code in RETRYABLE_RUN_ERRORS
        return BackendError(
            f"backend error: {exc}", code=exc.code or ErrorCode.API_ERROR, retryable=retryable
        )
    if isinstance(exc, httpx2.HTTPStatusError):
        response = exc.response
        return _from_status(response.status_code, response.headers, None, str(exc))
    return _from_transport(exc)


def _from_transport(exc: BaseException) -> BackendError:
    """Errors below HTTP: raised by httpx2 (a client used without openai) or the OS."""
    if isinstance(exc, httpx2.TimeoutException | TimeoutError):
        return BackendError(
            f"backend request timed out: {exc}", code=ErrorCode.TIMEOUT, retryable=True
        )
    if isinstance(
        exc,
        httpx2.NetworkError | httpx2.RemoteProtocolError | httpx2.ProxyError | ConnectionError,
    ):
        return BackendError(
            f"cannot reach the backend: {exc}", code=ErrorCode.CONNECTION, retryable=True
        )
    if isinstance(exc, httpx2.HTTPError):
        # UnsupportedProtocol, LocalProtocolError, DecodingError, TooManyRedirects: the
        # URL or our request is wrong, retrying sends the same mistake again.
        return BackendError(
            f"the request to the backend is malformed ({type(exc).__name__}: {exc}); "
            "check OPENAI_BASE_URL",
            code=ErrorCode.BAD_REQUEST,
        )
    return BackendError(
        f"unexpected error calling the backend ({type(exc).__name__}: {exc})",
        code=ErrorCode.UNEXPECTED,
    )


def _from_status(
    status: int, headers: Mapping[str, str], error_code: str | None, detail: str
) -> BackendError:
    if status in _BY_STATUS:
        code, retryable, hint = _BY_STATUS[status]
    elif status >= 500:
        code, retryable = ErrorCode.SERVER_ERROR, True
        hint = "the backend failed; it will be retried"
    else:
        code, retryable = ErrorCode.CLIENT_ERROR, False
        hint = "the backend refused the request"
    if status == 429 and error_code == "insufficient_quota":
        code, retryable = ErrorCode.QUOTA_EXCEEDED, False
        hint = "the account is out of quota; add credit"
    retryable = _should_retry_header(headers, retryable)
    return BackendError(
        f"{hint} (HTTP {status}: {detail})",
        code=code,
        retryable=retryable,
        retry_after=parse_retry_after(headers),
        status_code=status,
    )


def _should_retry_header(headers: Mapping[str, str], default: bool) -> bool:
    value = headers.get("x-should-retry")
    if value == "true":
        return True
    if value == "false":
        return False
    return default


def parse_retry_after(
    headers: Mapping[str, str] | None, *, now: float | None = None
) -> float | None:
    """Seconds the server asks us to wait, or None; never negative, at most 120 s.

    `retry-after-ms` (milliseconds) wins over `retry-after`, which may be seconds
    (floats accepted, as the official client does) or an HTTP date. Lookups are
    case-insensitive for plain dicts too (httpx2 headers already are).
    """
    if headers is None:
        return None
    lowered = {str(k).lower(): str(v) for k, v in headers.items()}
    for name, divisor in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = lowered.get(name)
        if value is None:
            continue
        try:
            seconds = float(value) / divisor
        except ValueError:
            continue
        if math.isnan(seconds):
            continue
        return _clamp(seconds)
    date = lowered.get("retry-after")
    if not date:
        return None
    try:
        parsed = email.utils.parsedate_tz(date)
        if parsed is None:
            return None
        at = float(email.utils.mktime_tz(parsed))
    except (TypeError, ValueError, OverflowError):
        return None
    return _clamp(at - (time.time() if now is None else now))


def _clamp(seconds: float) -> float:
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


_RUN_STATUS: dict[str, tuple[str, str]] = {
    RunStatus.FAILED: (ErrorCode.RUN_FAILED, "the run failed at the backend"),
    RunStatus.EXPIRED: (
        ErrorCode.RUN_EXPIRED,
        "the run expired before it finished (tool outputs too late?)",
    ),
    RunStatus.INCOMPLETE: (
        ErrorCode.RUN_INCOMPLETE,
        "the run stopped early (output limit or content filter)",
    ),
    RunStatus.CANCELLED: (ErrorCode.RUN_CANCELLED, "the run was cancelled at the backend"),
}


def classify_run_failure(status: str, error_code: str | None = None) -> RunEndedError:
    """Classify a run that ended in `failed`, `expired`, `incomplete` or `cancelled`.

    `error_code` is the run's `error.code` (Responses), `last_error.code` (Assistants)
    or, for `incomplete`, `incomplete_details.reason`. Only `failed` with a transient
    code (`RETRYABLE_RUN_ERRORS`) and `expired` are retryable; an `incomplete` run goes
    to the fallback chain instead. An unknown status is final (`run_<status>`).
    """
    if status == RunStatus.COMPLETED:
        raise ValueError("classify_run_failure() got a completed run; that is not a failure")
    code, what = _RUN_STATUS.get(status, (f"run_{status}", f"the run ended with status {status}"))
    retryable = (
        error_code in RETRYABLE_RUN_ERRORS
        if status == RunStatus.FAILED
        else status == RunStatus.EXPIRED
    )
    detail = f" ({error_code})" if error_code else ""
    return RunEndedError(
        f"{what}{detail}", code=code, retryable=retryable, status=status, error_code=error_code
    )
