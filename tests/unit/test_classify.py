"""Classification of real openai / httpx2 exceptions into runq's error classes."""

from __future__ import annotations

import email.utils

import httpx2
import openai
import pytest

from runq.errors import BackendError
from runq.runs.classify import (
    MAX_RETRY_AFTER,
    RunEndedError,
    classify,
    classify_run_failure,
    parse_retry_after,
)

URL = "http://backend.test/v1/responses"


def _response(status: int, headers: dict[str, str] | None = None, code: str | None = None):
    body = {"error": {"message": "boom", "type": "test", "code": code, "param": None}}
    request = httpx2.Request("POST", URL)
    return httpx2.Response(status, headers=headers or {}, json=body, request=request), body


def _status_error(cls: type[openai.APIStatusError], status: int, headers=None, code=None):
    """Build the exception the way openai's client does (`_make_status_error`)."""
    response, body = _response(status, headers, code)
    return cls(f"Error code: {status} - boom", response=response, body=body["error"])


STATUS_CASES = [
    (openai.BadRequestError, 400, "bad_request", False),
    (openai.AuthenticationError, 401, "auth", False),
    (openai.PermissionDeniedError, 403, "forbidden", False),
    (openai.NotFoundError, 404, "not_found", False),
    (openai.APIStatusError, 408, "timeout", True),
    (openai.ConflictError, 409, "conflict", True),
    (openai.UnprocessableEntityError, 422, "unprocessable", False),
    (openai.RateLimitError, 429, "rate_limited", True),
    (openai.InternalServerError, 500, "server_error", True),
    (openai.InternalServerError, 502, "server_error", True),
    (openai.InternalServerError, 503, "server_error", True),
    (openai.APIStatusError, 418, "client_error", False),
]


@pytest.mark.parametrize(("cls", "status", "code", "retryable"), STATUS_CASES)
def test_status_errors(cls, status, code, retryable):
    exc = _status_error(cls, status)
    err = classify(exc)
    assert isinstance(err, BackendError)
    assert (err.code, err.retryable, err.status_code) == (code, retryable, status)
    assert err.retry_after is None
    assert err.__cause__ is exc
    assert str(status) in str(err)


@pytest.mark.parametrize(("cls", "status", "code", "retryable"), STATUS_CASES)
def test_status_errors_raised_by_the_real_client(cls, status, code, retryable):
    """The real client over a real httpx2 transport raises the class we expect."""

    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(status, json={"error": {"message": "boom", "code": None}})

    client = openai.OpenAI(
        api_key="test",
        base_url="http://backend.test/v1",
        max_retries=0,
        http_client=httpx2.Client(transport=httpx2.MockTransport(handler)),
    )
    with pytest.raises(openai.APIStatusError) as info:
        client.models.list()
    assert type(info.value) is cls
    err = classify(info.value)
    assert (err.code, err.retryable, err.status_code) == (code, retryable, status)


def test_connection_and_timeout_from_the_real_client():
    def refuse(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ConnectError("connection refused", request=request)

    def hang(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ReadTimeout("read timed out", request=request)

    for handler, exc_type, code in (
        (refuse, openai.APIConnectionError, "connection"),
        (hang, openai.APITimeoutError, "timeout"),
    ):
        client = openai.OpenAI(
            api_key="test",
            base_url="http://backend.test/v1",
            max_retries=0,
            http_client=httpx2.Client(transport=httpx2.MockTransport(handler)),
        )
        with pytest.raises(exc_type) as info:
            client.models.list()
        err = classify(info.value)
        assert (err.code, err.retryable, err.status_code) == (code, True, None)


def test_connection_and_timeout_constructed_directly():
    request = httpx2.Request("POST", URL)
    timeout = classify(openai.APITimeoutError(request=request))
    connection = classify(openai.APIConnectionError(request=request))
    assert (timeout.code, timeout.retryable) == ("timeout", True)
    assert (connection.code, connection.retryable) == ("connection", True)


@pytest.mark.parametrize(
    ("exc", "code", "retryable"),
    [
        (httpx2.ConnectTimeout("t"), "timeout", True),
        (httpx2.ReadTimeout("t"), "timeout", True),
        (httpx2.PoolTimeout("t"), "timeout", True),
        (httpx2.ConnectError("c"), "connection", True),
        (httpx2.ReadError("c"), "connection", True),
        (httpx2.RemoteProtocolError("server disconnected"), "connection", True),
        (httpx2.UnsupportedProtocol("ftp"), "bad_request", False),
        (httpx2.LocalProtocolError("bad"), "bad_request", False),
        (TimeoutError("socket"), "timeout", True),
        (ConnectionResetError("reset"), "connection", True),
        (KeyError("bug"), "unexpected", False),
    ],
)
def test_transport_and_other_errors(exc, code, retryable):
    err = classify(exc)
    assert (err.code, err.retryable) == (code, retryable)
    assert err.__cause__ is exc


def test_httpx_status_error_uses_the_status():
    response, _ = _response(503, {"retry-after": "7"})
    exc = httpx2.HTTPStatusError("503", request=response.request, response=response)
    err = classify(exc)
    assert (err.code, err.retryable, err.retry_after, err.status_code) == (
        "server_error",
        True,
        7.0,
        503,
    )


def test_backend_error_passes_through():
    original = BackendError("already classified", code="conflict", retryable=True)
    assert classify(original) is original


def test_insufficient_quota_is_final():
    err = classify(_status_error(openai.RateLimitError, 429, code="insufficient_quota"))
    assert (err.code, err.retryable) == ("quota_exceeded", False)


def test_x_should_retry_overrides_status():
    final = classify(_status_error(openai.InternalServerError, 500, {"x-should-retry": "false"}))
    retry = classify(_status_error(openai.BadRequestError, 400, {"x-should-retry": "true"}))
    assert final.retryable is False
    assert retry.retryable is True


def test_stream_error_event_without_status():
    request = httpx2.Request("GET", URL)
    transient = classify(openai.APIError("boom", request, body={"code": "server_error"}))
    final = classify(openai.APIError("boom", request, body={"code": "invalid_prompt"}))
    assert (transient.code, transient.retryable) == ("server_error", True)
    assert (final.code, final.retryable) == ("invalid_prompt", False)


def test_response_validation_error_is_final():
    response, _ = _response(200)
    err = classify(openai.APIResponseValidationError(response, body={"nope": 1}))
    assert (err.code, err.retryable, err.status_code) == ("invalid_response", False, 200)


# --- retry-after ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after-ms": "1500"}, 1.5),
        ({"retry-after": "3"}, 3.0),
        ({"retry-after": "0.25"}, 0.25),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),  # ms wins
        ({"retry-after-ms": "junk", "retry-after": "9"}, 9.0),
        ({"Retry-After": "4"}, 4.0),  # plain dicts: case-insensitive
        ({"retry-after": "600"}, MAX_RETRY_AFTER),  # capped
        ({"retry-after-ms": "-5"}, 0.0),
        ({"retry-after": "soon"}, None),
        ({}, None),
    ],
)
def test_parse_retry_after(headers, expected):
    assert parse_retry_after(headers) == expected


def test_parse_retry_after_http_date():
    now = 1_800_000_000.0
    date = email.utils.formatdate(now + 30, usegmt=True)
    assert parse_retry_after({"retry-after": date}, now=now) == 30.0
    past = email.utils.formatdate(now - 30, usegmt=True)
    assert parse_retry_after({"retry-after": past}, now=now) == 0.0
    far = email.utils.formatdate(now + 3600, usegmt=True)
    assert parse_retry_after({"retry-after": far}, now=now) == MAX_RETRY_AFTER


def test_rate_limit_error_carries_retry_after():
    err = classify(_status_error(openai.RateLimitError, 429, {"retry-after-ms": "2500"}))
    assert (err.code, err.retryable, err.retry_after) == ("rate_limited", True, 2.5)
    capped = classify(_status_error(openai.RateLimitError, 429, {"retry-after": "3600"}))
    assert capped.retry_after == MAX_RETRY_AFTER


# --- runs that ended badly -----------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error_code", "code", "retryable"),
    [
        ("failed", "server_error", "run_failed", True),
        ("failed", "rate_limit_exceeded", "run_failed", True),
        ("failed", "invalid_prompt", "run_failed", False),
        ("failed", None, "run_failed", False),
        ("expired", None, "run_expired", True),
        ("incomplete", "max_output_tokens", "run_incomplete", False),
        ("cancelled", None, "run_cancelled", False),
        ("exploded", None, "run_exploded", False),
    ],
)
def test_classify_run_failure(status, error_code, code, retryable):
    err = classify_run_failure(status, error_code)
    assert isinstance(err, RunEndedError)
    assert isinstance(err, BackendError)
    assert (err.code, err.retryable, err.status, err.error_code) == (
        code,
        retryable,
        status,
        error_code,
    )
    if error_code:
        assert error_code in str(err)


def test_classify_run_failure_refuses_completed():
    with pytest.raises(ValueError, match="completed"):
        classify_run_failure("completed")


@pytest.mark.parametrize("body", [b"<html>bad gateway</html>", b"[1, 2]"])
def test_a_responses_reply_that_is_no_json_object_is_an_invalid_response(body):
    """The Responses backend reads replies as JSON itself (no typed `Response`): a body
    that is not a JSON object is classified as the client's validation error would be."""
    from runq.runs.backends.responses import ResponsesBackend
    from runq.runs.job import Job, JobSpec

    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, content=body, headers={"content-type": "application/json"})

    client = openai.OpenAI(
        api_key="test",
        base_url="http://backend.test/v1",
        max_retries=0,
        http_client=httpx2.Client(transport=httpx2.MockTransport(handler)),
    )
    job = Job.new(JobSpec(input="hi"))
    job.handle["response_id"] = "resp_1"
    with pytest.raises(BackendError) as info:
        ResponsesBackend(client).retrieve(job)
    assert info.value.code == "invalid_response"
    assert "not a JSON object" in str(info.value)
