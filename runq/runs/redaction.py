"""What a job's data may say about a failure: error text redacted as a log line is.

A backend that refuses a key often quotes it (`Incorrect API key provided: sk-...`), and
an error's text becomes job data that tenants read: the record's `error` and
`attempts`, the `job.retry` and `job.final` events (GET and SSE at the gateway), and
the result in the Celery result backend. So the text is redacted where it becomes job
data, with the rules and registered secrets of the logs (`runq.config.logging`): any
`sk-…` key, bearer and basic credentials, URL passwords, and the exact values the
worker registered (its `OPENAI_API_KEY` and the key of every link it configured).
"""

from __future__ import annotations

from typing import Any

from runq.config.logging import redact_text


def said(error: BaseException | str) -> str:
    """The text of an error as a job's data may hold it."""
    return redact_text(str(error))


def redact_result(result: dict[str, Any]) -> dict[str, Any]:
    """A job's result with its error texts redacted (the `error` message and every
    attempt's `error`), for what leaves the worker even if a record held them raw
    (one written before redaction, or by someone else)."""
    shown = dict(result)
    error = shown.get("error")
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        shown["error"] = {**error, "message": said(error["message"])}
    attempts = shown.get("attempts")
    if isinstance(attempts, list):
        shown["attempts"] = [
            {**a, "error": said(a["error"])}
            if isinstance(a, dict) and isinstance(a.get("error"), str)
            else a
            for a in attempts
        ]
    return shown
