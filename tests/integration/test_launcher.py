"""The embedded services launcher: processes that start, answer and stop."""

from __future__ import annotations

import json
import time

import openai
import pytest
import redis

from runq.runs import keys
from runq.worker.launcher import LaunchError, SandboxProcess, Stack, WorkerProcess
from tests.integration.conftest import own_database

pytestmark = pytest.mark.integration


def test_a_sandbox_that_requires_api_keys_starts() -> None:
    # Readiness asks /v1/models without a key: a 401 is an answer, the server is up.
    sandbox = SandboxProcess(latency_ms=0, env={"RUNQ_SANDBOX_API_KEYS": "right"}).start(timeout=20)
    try:
        good = openai.OpenAI(base_url=sandbox.base_url, api_key="right", max_retries=0)
        assert good.models.list().data
        bad = openai.OpenAI(base_url=sandbox.base_url, api_key="wrong", max_retries=0)
        with pytest.raises(openai.AuthenticationError):
            bad.models.list()
    finally:
        sandbox.stop()
    assert sandbox.proc is None


class _NeverReady(SandboxProcess):
    def ready(self) -> bool:
        return False


def test_a_child_that_never_becomes_ready_is_stopped_not_left_behind() -> None:
    sandbox = _NeverReady(latency_ms=0)
    with pytest.raises(LaunchError, match="did not become ready within 2s"):
        sandbox.start(timeout=2)
    assert sandbox.proc is not None
    assert sandbox.proc.poll() is not None  # stopped by the failed start itself


def test_the_embedded_redis_wants_its_password(redis_server, runq_home) -> None:
    """Another local user reaching the loopback port can do nothing without the password."""
    import os
    import stat

    import redis

    from runq.worker.discovery import read_state, write_state

    with pytest.raises(redis.AuthenticationError):
        redis.Redis(host="127.0.0.1", port=redis_server.port).set("runq:job:planted", "{}")
    assert redis.Redis.from_url(redis_server.url).ping()
    password_file = runq_home / "redis" / "password"
    assert password_file.read_text().strip() == redis_server.password
    assert stat.S_IMODE(os.stat(password_file).st_mode) == 0o600
    write_state(runq_home / "state", redis_url=redis_server.url)
    state_file = runq_home / "state" / "state.json"
    assert stat.S_IMODE(os.stat(state_file).st_mode) == 0o600
    assert read_state(runq_home / "state")["redis_url"] == redis_server.url


def test_a_redis_url_password_never_shows_in_a_log_line() -> None:
    from runq.config.logging import redact_text

    shown = redact_text(
        "connecting to redis://:s3cret-pass@127.0.0.1:6379/0 and amqp://u:pw1234@h//"
    )
    assert "s3cret-pass" not in shown and "pw1234" not in shown
    assert "redis://:[redacted]@127.0.0.1:6379/0" in shown


def test_a_stack_is_ready_on_heartbeats_since_its_start_only(redis_url, tmp_path) -> None:
    # A stack started earlier by the same process left heartbeats under the same
    # worker names (they carry the launching pid): they must not make this one ready.
    url = own_database(redis_url, 1)
    stack = Stack(home=tmp_path, redis_url=url, base_url="http://127.0.0.1:9/v1")
    stack.worker_procs = [WorkerProcess(url, "http://127.0.0.1:9/v1", name="runq0-1@host")]
    beats = redis.Redis.from_url(url)
    beats.hset(keys.fair("slots"), "runq0-1@host", json.dumps([2, time.time() - 60]))
    stack.started_at = time.time()
    with pytest.raises(LaunchError, match="did not become ready"):
        stack.wait_ready(timeout=0.5)
    beats.hset(keys.fair("slots"), "runq0-1@host", json.dumps([2, time.time()]))
    assert stack.wait_ready(timeout=5) is stack
