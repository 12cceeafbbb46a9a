"""The gateway's acceptance script as a new user runs it: `curl` against `runq gateway`.

The other gateway tests speak httpx; this one uses the `curl` binary, so the README's
commands (`-d` bodies, `-N` for SSE, a `Last-Event-ID` header on reconnect) are what is
checked, not a client library's idea of them.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.integration.gateway_process import parse_sse

pytestmark = pytest.mark.integration

TOKEN_A, TOKEN_B = "token-a", "token-b"


def curl(*args: str, token: str | None = None) -> tuple[int, str]:
    """Run curl; return the HTTP status and the body."""
    binary = shutil.which("curl")
    assert binary, "curl is missing: `make system-deps` installs it"
    auth = ["-H", f"Authorization: Bearer {token}"] if token else []
    proc = subprocess.run(
        [binary, "-sS", "-N", "--max-time", "60", "-w", "\n%{http_code}", *auth, *args],
        capture_output=True, text=True, timeout=90, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    body, _, status = proc.stdout.rpartition("\n")
    return int(status), body


def post_job(base: str, body: dict[str, object], token: str) -> tuple[int, dict]:
    status, text = curl(
        "-H", "Content-Type: application/json", "-d", json.dumps(body), f"{base}/v1/jobs",
        token=token,
    )  # fmt: skip
    return status, json.loads(text)


def test_the_gateway_acceptance_script_with_curl(gateway: str, tmp_path: Path) -> None:
    script = json.dumps([[{"name": "calculator", "arguments": {"expression": "12 * 7"}}]])
    status, created = post_job(
        gateway,
        {"input": "What is 12 * 7?", "tools": ["calculator"],
         "metadata": {"sandbox_script": script}},
        TOKEN_A,
    )  # fmt: skip
    assert status == 201, created
    events_url = f"{gateway}/v1/jobs/{created['job_id']}/events"

    # Stream the events to the end (the gateway closes the stream after job.final).
    status, text = curl(events_url, token=TOKEN_A)
    assert status == 200
    everything = parse_sse(text.splitlines())
    assert everything[-1]["event"] == "job.final", everything
    assert everything[-1]["data"]["status"] == "succeeded"
    assert len(everything) >= 4

    # Reconnect after the second event: exactly the rest, nothing twice.
    status, text = curl(events_url, "-H", f"Last-Event-ID: {everything[1]['id']}", token=TOKEN_A)
    assert status == 200
    resumed = parse_sse(text.splitlines())
    assert [e["id"] for e in resumed] == [e["id"] for e in everything[2:]]

    # Token B cannot see the job, and no token gets 401.
    assert curl(events_url, token=TOKEN_B)[0] == 404
    assert curl(f"{gateway}/v1/jobs/{created['job_id']}", token=TOKEN_B)[0] == 404
    assert curl(f"{gateway}/v1/jobs/{created['job_id']}")[0] == 401

    # An invalid body: 422 naming the field.
    status, error = post_job(gateway, {"input": "hi", "mode": "turbo"}, TOKEN_A)
    assert status == 422
    assert error["detail"][0]["loc"][-1] == "mode", error
