"""Batch API objects: a batch, its input file's lines, its result lines, its timing.

A batch is created from an uploaded JSONL file (``purpose: batch``) whose lines are
``{custom_id, method: "POST", url, body}`` for one endpoint. Its life:
``validating -> in_progress -> finalizing -> completed``, or ``failed`` (the file breaks
a file-level rule: every problem listed in ``errors.data`` with its line number),
``expired`` (still running when its window ends), ``cancelling -> cancelled``.

Result lines are written as OpenAI writes them, keyed by ``custom_id``: an answered
request (any HTTP status) carries ``response: {status_code, request_id, body}``; a
request never run (the batch expired or was cancelled first) carries ``error: {code,
message}``. Lines answered 200 go to the output file, the others to the error file:
one bad line never fails the batch. The processing itself is
:mod:`runq.sandbox.engine.batch_runner`; this module holds only data and rules.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from runq.sandbox.engine.config import SandboxConfig
from runq.sandbox.engine.ids import new_id

ENDPOINTS = ("/v1/responses", "/v1/chat/completions")  # what the sandbox's batches run
COMPLETION_WINDOWS = ("24h",)
MAX_LINES = 50_000  # OpenAI's limits for one batch file
MAX_INPUT_BYTES = 200 * 1024 * 1024
MAX_REPORTED_ERRORS = 100  # file-level problems listed in ``errors.data``
TERMINAL = frozenset({"completed", "failed", "expired", "cancelled"})
CANCELLABLE = frozenset({"validating", "in_progress"})


@dataclass
class BatchLine:
    """One request of the input file that passed the file-level rules."""

    line: int  # 1-based, as ``errors.data[].line`` counts
    custom_id: str
    body: dict[str, Any]


@dataclass
class BatchTiming:
    """The completion-time model, in seconds, already scaled by ``batch_time_scale``."""

    validating: float
    base: float
    per_line: float
    finalizing: float
    window: float  # from creation to expiry, not scaled

    @classmethod
    def from_config(cls, cfg: SandboxConfig) -> BatchTiming:
        scale = cfg.batch_time_scale
        return cls(
            validating=cfg.batch_validating_seconds * scale,
            base=cfg.batch_base_seconds * scale,
            per_line=cfg.batch_seconds_per_line * scale,
            finalizing=cfg.batch_finalizing_seconds * scale,
            window=cfg.batch_window_seconds,
        )

    def in_progress(self, lines: int) -> float:
        """How long answering ``lines`` requests takes once validated."""
        return self.base + self.per_line * lines


@dataclass
class BatchRecord:
    id: str
    endpoint: str
    input_file_id: str
    completion_window: str
    metadata: dict[str, str]
    created_at: float
    expires_at: float
    status: str = "validating"
    model: str | None = None
    in_progress_at: float | None = None
    finalizing_at: float | None = None
    completed_at: float | None = None
    failed_at: float | None = None
    expired_at: float | None = None
    cancelling_at: float | None = None
    cancelled_at: float | None = None
    errors: list[dict[str, Any]] = field(default_factory=list)  # file-level problems
    lines: list[BatchLine] = field(default_factory=list)
    answered: int = 0  # lines answered so far, in order: where a resumed run goes on
    outputs: list[dict[str, Any]] = field(default_factory=list)  # answered 200
    failures: list[dict[str, Any]] = field(default_factory=list)  # any other outcome
    usage: dict[str, int] = field(default_factory=dict)
    output_file_id: str | None = None
    error_file_id: str | None = None
    processor: str | None = None  # the runner that claimed it: never processed twice

    def is_terminal(self) -> bool:
        return self.status in TERMINAL

    def request_counts(self) -> dict[str, int]:
        return {
            "total": len(self.lines),
            "completed": len(self.outputs),
            "failed": len(self.failures),
        }

    def to_json(self) -> dict[str, Any]:
        """The ``batch`` object as the API shows it."""

        def ts(value: float | None) -> int | None:
            return None if value is None else int(value)

        return {
            "id": self.id,
            "object": "batch",
            "endpoint": self.endpoint,
            "model": self.model,
            "errors": {"object": "list", "data": self.errors} if self.errors else None,
            "input_file_id": self.input_file_id,
            "completion_window": self.completion_window,
            "status": self.status,
            "output_file_id": self.output_file_id,
            "error_file_id": self.error_file_id,
            "created_at": int(self.created_at),
            "in_progress_at": ts(self.in_progress_at),
            "expires_at": ts(self.expires_at),
            "finalizing_at": ts(self.finalizing_at),
            "completed_at": ts(self.completed_at),
            "failed_at": ts(self.failed_at),
            "expired_at": ts(self.expired_at),
            "cancelling_at": ts(self.cancelling_at),
            "cancelled_at": ts(self.cancelled_at),
            "request_counts": self.request_counts(),
            "usage": usage_object(self.usage),
            "metadata": self.metadata,
        }


def usage_object(total: dict[str, int]) -> dict[str, Any]:
    """The batch's ``usage``: the sum of its answered lines' usage (no prices)."""
    inputs, outputs = total.get("input_tokens", 0), total.get("output_tokens", 0)
    return {
        "input_tokens": inputs,
        "input_tokens_details": {"cached_tokens": total.get("cached_tokens", 0)},
        "output_tokens": outputs,
        "output_tokens_details": {"reasoning_tokens": total.get("reasoning_tokens", 0)},
        "total_tokens": inputs + outputs,
    }


def add_usage(total: dict[str, int], body: dict[str, Any]) -> None:
    """Add a response's or chat completion's ``usage`` to a batch's running total."""
    usage = body.get("usage")
    if not isinstance(usage, dict):
        return
    if "prompt_tokens" in usage:  # Chat Completions names
        inputs, outputs = usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0)
        in_details = usage.get("prompt_tokens_details") or {}
        out_details = usage.get("completion_tokens_details") or {}
    else:
        inputs, outputs = usage.get("input_tokens", 0), usage.get("output_tokens", 0)
        in_details = usage.get("input_tokens_details") or {}
        out_details = usage.get("output_tokens_details") or {}
    total["input_tokens"] = total.get("input_tokens", 0) + inputs
    total["output_tokens"] = total.get("output_tokens", 0) + outputs
    cached = in_details.get("cached_tokens", 0)
    total["cached_tokens"] = total.get("cached_tokens", 0) + cached
    thinking = out_details.get("reasoning_tokens", 0)
    total["reasoning_tokens"] = total.get("reasoning_tokens", 0) + thinking


def answered_line(custom_id: str, status_code: int, body: dict[str, Any]) -> dict[str, Any]:
    """A result line for a request that got an HTTP answer (a 4xx one too)."""
    return {
        "id": new_id("batch_req"),
        "custom_id": custom_id,
        "response": {"status_code": status_code, "request_id": new_id("req"), "body": body},
        "error": None,
    }


def unexecuted_line(custom_id: str, code: str, message: str) -> dict[str, Any]:
    """A result line for a request the batch never ran (``batch_expired``...)."""
    return {
        "id": new_id("batch_req"),
        "custom_id": custom_id,
        "response": None,
        "error": {"code": code, "message": message},
    }


def jsonl(lines: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(line, separators=(",", ":")) + "\n" for line in lines).encode()


def _problem(code: str, message: str, line: int | None, param: str | None = None) -> dict[str, Any]:
    return {"code": code, "message": message, "param": param, "line": line}


def _check_line(raw: str, number: int, endpoint: str) -> tuple[BatchLine | None, dict | None]:
    """One line against the file-level rules: the line, or the problem it has."""
    try:
        item = json.loads(raw)
    except ValueError:
        item = None
    if not isinstance(item, dict):
        return None, _problem(
            "invalid_json_line", "This line is not parseable as valid JSON.", number
        )
    custom_id = item.get("custom_id")
    if not isinstance(custom_id, str) or not custom_id:
        message = "Missing required parameter: 'custom_id' (a non-empty string)."
        return None, _problem("missing_required_parameter", message, number, "custom_id")
    if item.get("method") != "POST":
        message = f"Invalid 'method': {item.get('method')!r}. Only 'POST' is supported."
        return None, _problem("invalid_request", message, number, "method")
    if item.get("url") != endpoint:
        message = (
            f"The url {item.get('url')!r} does not match the batch's endpoint {endpoint!r}: "
            "every line must use the batch's endpoint."
        )
        return None, _problem("url_mismatch", message, number, "url")
    body = item.get("body")
    if not isinstance(body, dict):
        message = "Missing required parameter: 'body' (a JSON object)."
        return None, _problem("missing_required_parameter", message, number, "body")
    return BatchLine(number, custom_id, body), None


def parse_input(
    data: bytes, endpoint: str, serves_model: Callable[[str], bool]
) -> tuple[list[BatchLine], list[dict[str, Any]], str | None]:
    """The input file's lines, its file-level problems (any fails the batch), its model.

    A body's own validity (an unknown model, a bad parameter) is not a file-level rule:
    such a line is answered with its error in the error file. Two lines naming different
    models the sandbox serves are (``model_mismatch``): a batch runs one model.
    """
    if len(data) > MAX_INPUT_BYTES:
        message = f"The input file is larger than {MAX_INPUT_BYTES} bytes."
        return [], [_problem("file_too_large", message, None)], None
    text = data.decode("utf-8", errors="replace")
    raw_lines = [(n, raw) for n, raw in enumerate(text.splitlines(), start=1) if raw.strip()]
    if not raw_lines:
        return [], [_problem("empty_file", "The batch input file is empty.", None)], None
    if len(raw_lines) > MAX_LINES:
        message = f"The input file has {len(raw_lines)} requests; a batch takes {MAX_LINES}."
        return [], [_problem("too_many_tasks", message, None)], None
    lines: list[BatchLine] = []
    problems: list[dict[str, Any]] = []
    first_line_of: dict[str, int] = {}
    model: str | None = None
    for number, raw in raw_lines:
        line, problem = _check_line(raw, number, endpoint)
        if line is not None and line.custom_id in first_line_of:
            message = (
                f"The custom_id {line.custom_id!r} is used more than once in this batch "
                f"(first on line {first_line_of[line.custom_id]}); each must be unique."
            )
            line, problem = None, _problem("duplicate_custom_id", message, number, "custom_id")
        if line is not None:
            name = line.body.get("model")
            if isinstance(name, str) and serves_model(name):
                if model is not None and name != model:
                    message = f"The model {name!r} differs from {model!r}: a batch runs one model."
                    line, problem = None, _problem("model_mismatch", message, number, "body.model")
                model = model or name
        if line is not None:
            first_line_of[line.custom_id] = number
            lines.append(line)
        elif problem is not None and len(problems) < MAX_REPORTED_ERRORS:
            problems.append(problem)
    return lines, problems, model
