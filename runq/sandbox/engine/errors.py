"""Errors in OpenAI's shape.

Every failure the sandbox reports, whatever its cause, must look exactly like one from
the real API (``{"error": {"message", "type", "param", "code"}}`` with the matching HTTP
status) so that the official client maps it to the right exception class and runq's
error classification is exercised for real.

The error is plain data (a status and a body) so that the engine can refuse what the
real API refuses (an unknown id, a malformed transcript) without knowing HTTP; the API
layer turns it into a response (:func:`runq.sandbox.api.errors.error_response`).
"""

from __future__ import annotations

from typing import Any

_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    403: "invalid_request_error",
    404: "invalid_request_error",
    409: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_exceeded",
    500: "server_error",
    503: "server_error",
}


class SandboxError(Exception):
    """An API error that handlers raise; the app turns it into an OpenAI error body."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        type_: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.type = type_ or _TYPES.get(status, "invalid_request_error")
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        """The JSON body the real API sends with this status."""
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


def not_found(kind: str, object_id: str, param: str | None = None) -> SandboxError:
    """404 for an unknown id, worded like the real API."""
    return SandboxError(
        404, f"No {kind} found with id '{object_id}'.", param=param, code="not_found"
    )


def bad_request(message: str, param: str | None = None, code: str | None = None) -> SandboxError:
    """400 for a body the real API would refuse."""
    return SandboxError(400, message, param=param, code=code)
