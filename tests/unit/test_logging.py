"""config.logging: one JSON object per line, and no secret ever in a line."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from runq.config import logging as runq_logging
from runq.config.logging import REDACTED, configure_logging, redact_processor, register_secret
from runq.config.settings import load_settings

API_KEY = "sk-proj-Zt7Qb2Lw9XcVn4Rt8Yp1"
SETTINGS_KEY = "plainkey-without-prefix-5521"  # a key the sk- pattern cannot recognise
BEARER = "gw_tok.8f3a9c2e77b14d05"
BASIC = "YWxpY2U6czNjcjN0LXBhc3M="  # alice:s3cr3t-pass
REGISTERED = "redis-password-Hq93kd"


@pytest.fixture
def stderr(capsys: pytest.CaptureFixture[str]) -> Iterator[pytest.CaptureFixture[str]]:
    """Logging configured inside a test writes to the captured stderr; restore state after."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    config = structlog.get_config()
    secrets = set(runq_logging._extra_secrets)
    try:
        yield capsys
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        structlog.configure(**config)
        structlog.contextvars.clear_contextvars()
        runq_logging._extra_secrets.clear()
        runq_logging._extra_secrets.update(secrets)


def _configure(**overrides: Any) -> None:
    settings = load_settings(log_format="json", log_level="DEBUG", **overrides)
    configure_logging(settings, process="test")


def _read(captured: pytest.CaptureFixture[str]) -> tuple[str, list[dict[str, Any]]]:
    text = captured.readouterr().err
    assert text.endswith("\n")
    return text, [json.loads(line) for line in text.splitlines()]  # each line: one JSON object


def test_structlog_and_stdlib_records_are_json_lines(stderr: pytest.CaptureFixture[str]) -> None:
    _configure()
    structlog.contextvars.bind_contextvars(job_id="job_1", task_id="t-1")
    structlog.get_logger("runq.steps").info("job.run_created", attempt=0, response_id="resp_1")
    logging.getLogger("celery.worker").warning("Task %s received", "runq.jobs.start")
    structlog.get_logger("runq.steps").debug("job.polled", status="in_progress")
    _, (first, second, third) = _read(stderr)
    assert first["event"] == "job.run_created"
    assert first["level"] == "info"
    assert first["logger"] == "runq.steps"
    assert first["process"] == "test"
    assert first["job_id"] == "job_1" and first["task_id"] == "t-1"
    assert first["attempt"] == 0 and first["response_id"] == "resp_1"
    assert first["timestamp"].endswith("Z")
    assert second["event"] == "Task runq.jobs.start received"  # stdlib args are applied
    assert second["logger"] == "celery.worker" and second["level"] == "warning"
    assert second["job_id"] == "job_1"  # context reaches stdlib records too
    assert third["level"] == "debug"


def test_no_secret_in_any_line(stderr: pytest.CaptureFixture[str]) -> None:
    _configure(openai_api_key=SETTINGS_KEY)  # configure_logging registers the settings' key
    register_secret(REGISTERED)
    log = structlog.get_logger("runq.test")
    log.info("client.built", api_key=API_KEY, base_url="http://sandbox:8765/v1")
    log.info("http.request", headers={"Authorization": f"Bearer {BEARER}", "Accept": "json"})
    log.info("http.request", authorization=f"Basic {BASIC}")
    log.warning("backend.error", error=f"401 Incorrect API key provided: {API_KEY}")
    log.info("gateway.auth", detail=f"Authorization: Bearer {BEARER}")
    log.info("redis.connect", url=f"redis://:{REGISTERED}@redis:6379/0")
    log.info("settings.loaded", values=["ok", SETTINGS_KEY, {"nested": f"x {API_KEY} y"}])
    logging.getLogger("openai").error("request failed with key %s", API_KEY)
    logging.getLogger("celery").info("Authorization: Basic %s", BASIC)
    try:
        raise ValueError(f"cannot use {API_KEY} with {SETTINGS_KEY}")
    except ValueError:
        log.exception("job.crashed")
    text, lines = _read(stderr)
    assert len(lines) == 10
    for secret in (API_KEY, SETTINGS_KEY, BEARER, BASIC, REGISTERED):
        assert secret not in text, secret
    # Redaction keeps the line useful: the non-secret parts stay.
    assert lines[0]["api_key"] == REDACTED
    assert lines[0]["base_url"] == "http://sandbox:8765/v1"
    assert lines[1]["headers"] == {"Authorization": REDACTED, "Accept": "json"}
    assert lines[3]["error"].startswith("401 Incorrect API key provided: ")
    assert lines[4]["detail"] == f"Authorization: Bearer {REDACTED}"
    assert lines[5]["url"] == f"redis://:{REDACTED}@redis:6379/0"
    assert "ValueError: cannot use" in lines[9]["exception"]


def test_redact_processor_alone() -> None:
    """The processor other stacks (the gateway's access log) can reuse."""
    register_secret("short")  # under 6 characters: too common to redact everywhere
    out = redact_processor(None, "info", {
        "event": f"calling with {API_KEY}", "password": "hunter22", "token": "t0k3n-abcdef",
        "tokens": 42, "count": 3, "note": "a short word",
    })  # fmt: skip
    assert out == {
        "event": f"calling with {REDACTED}", "password": REDACTED, "token": REDACTED,
        "tokens": 42, "count": 3, "note": "a short word",
    }  # fmt: skip
