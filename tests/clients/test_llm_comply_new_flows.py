"""The Open Responses compliance suite (``llm-comply``) on a sandbox with its newer
features switched on, and its Chat Completions format.

With webhooks configured (a real receiver), slower flex and faster priority tiers and
quick batches, the ``open-responses`` result is the one of the plain sandbox
(test_clients_llm_comply): every test passes.

The ``openai-chat`` format passes too, but for ``chat-reasoning-summary``: that test
sends a Responses-style ``reasoning: {"summary": "auto"}`` object to Chat Completions,
which OpenAI's Chat Completions does not take (it has ``reasoning_effort`` only) and
refuses with a 400 naming the parameter. The sandbox answers as OpenAI does; the test
suits providers that accept the object. Asserted as observed.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from runq.sandbox.engine.config import SandboxConfig
from runq.sandbox.server.serve import SandboxServer
from tests.sandbox.webhook_receiver import Receiver

SECRET = "whsec_" + base64.b64encode(os.urandom(32)).decode()


@pytest.fixture(scope="module")
def featured() -> Iterator[SandboxServer]:
    with Receiver() as receiver:
        config = SandboxConfig(
            port=0,
            latency_ms=20,
            webhook_url=receiver.url,
            webhook_secret=SECRET,
            flex_latency_multiplier=3.0,
            priority_latency_multiplier=0.5,
            batch_time_scale=0.01,
        )
        with SandboxServer(config) as server:
            yield server


def comply(base_url: str, model: str, api_format: str) -> dict[str, tuple[str, str]]:
    """Each test's status and errors (joined)."""
    command = [
        str(Path(sys.executable).with_name("llm-comply")),
        *("-u", base_url, "-k", "sk-test", "-m", model, "--format", api_format, "--json"),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    report = json.loads(done.stdout)
    return {r["id"]: (r["status"], "; ".join(r.get("errors") or [])) for r in report["results"]}


def test_open_responses_result_is_unchanged_with_the_new_features(
    featured: SandboxServer,
) -> None:
    results = comply(featured.base_url, "gpt-5-mini", "open-responses")
    assert len(results) >= 13
    failed = {k: errors for k, (status, errors) in results.items() if status != "passed"}
    assert not failed, failed


def test_openai_chat_format_passes_but_for_a_responses_parameter(
    featured: SandboxServer,
) -> None:
    results = comply(featured.base_url, "gpt-5-mini", "openai-chat")
    assert len(results) >= 9
    failed = {k: errors for k, (status, errors) in results.items() if status != "passed"}
    assert set(failed) == {"chat-reasoning-summary"}, failed
    assert "HTTP 400" in failed["chat-reasoning-summary"]
    client = openai.OpenAI(base_url=featured.base_url, api_key="sk-test", max_retries=0)
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(
            model="gpt-5-mini",
            messages=[{"role": "user", "content": "What is 15 * 37?"}],
            reasoning_effort="low",
            extra_body={"reasoning": {"summary": "auto"}},
        )
    assert refused.value.code == "unknown_parameter"
    assert refused.value.param == "reasoning"
