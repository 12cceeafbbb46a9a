"""The embedded services launcher: processes that start, answer and stop."""

from __future__ import annotations

import openai
import pytest

from runq.worker.launcher import LaunchError, SandboxProcess

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
