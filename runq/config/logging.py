"""structlog setup: JSON lines for machines, the console renderer in a terminal.

Every process (worker, gateway, CLI) calls `configure_logging` once. Celery's and the
standard library's records go through the same processors, so one log stack ingests
everything. A redaction processor removes secrets (API keys, bearer tokens,
Authorization headers) from every event, whatever the caller put in it.
"""

from __future__ import annotations

import logging
import re
import sys
from typing import Any

import structlog

from runq.config.settings import Settings

# Field names that hold secrets: `token` and `*_token`, but not `input_tokens` (usage).
SECRET_FIELDS = re.compile(
    r"(api[_-]?key|authorization|(^|[_-])token$|secret|password|credential)", re.I
)
SECRET_PATTERNS = [
    re.compile(r"sk-[A-Za-z0-9_\-]{8,}"),
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._\-~+/=]{6,}"),
    re.compile(r"(?i)(basic\s+)[A-Za-z0-9+/=]{6,}"),
    # The password of a URL (`redis://:secret@host`, `amqp://user:secret@host`).
    re.compile(r"(?i)(\b[a-z][a-z0-9+.\-]*://[^:/@\s]*:)[^@\s/]+(?=@)"),
]
REDACTED = "[redacted]"
_extra_secrets: set[str] = set()


def register_secret(value: str | None) -> None:
    """Redact this exact value wherever it appears in a log line."""
    if value and len(value) >= 6:
        _extra_secrets.add(value)


def redact_text(text: str) -> str:
    for secret in _extra_secrets:
        text = text.replace(secret, REDACTED)
    for pattern in SECRET_PATTERNS:
        text = pattern.sub(lambda m: (m.group(1) if m.groups() else "") + REDACTED, text)
    return text


def _redact(value: Any) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {
            k: (REDACTED if isinstance(k, str) and SECRET_FIELDS.search(k) and v else _redact(v))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return type(value)(_redact(v) for v in value)
    return value


def redact_processor(_logger: Any, _method: str, event: dict[str, Any]) -> dict[str, Any]:
    """structlog processor: no secret leaves the process through a log line."""
    return {
        key: (REDACTED if SECRET_FIELDS.search(key) and value else _redact(value))
        for key, value in event.items()
    }


def _use_json(settings: Settings) -> bool:
    if settings.log_format == "json":
        return True
    if settings.log_format == "console":
        return False
    return not sys.stderr.isatty()


def configure_logging(settings: Settings, *, process: str = "runq") -> None:
    """Route structlog and stdlib logging through one JSON (or console) renderer."""
    register_secret(settings.api_key_value() if settings.openai_api_key else None)
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        redact_processor,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if _use_json(settings)
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        # Below the level, an event stops at once: without the filter it would go through
        # the timestamp and the redaction before the stdlib logger dropped it.
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())
    logging.captureWarnings(True)  # warnings become JSON records too, not raw stderr lines
    structlog.contextvars.bind_contextvars(process=process)
    for noisy in ("httpx", "httpx2", "httpcore", "httpcore2", "openai"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
