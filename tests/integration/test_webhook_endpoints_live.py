"""`runq webhooks register|list|test|rotate|remove` for real: the endpoint registered at
the sandbox through its webhook endpoints API (as at OpenAI), the secret kept in a 0600
file that a real `runq webhooks` reads, real workers in webhook mode, the real `openai`
client underneath. Jobs finish with zero polls before and after each kind of rotation:
the receiver reads its file again when a delivery fails its check."""

from __future__ import annotations

import json
import re
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from runq.producers.webhooks import PATH
from runq.producers.webhooks.process import WebhookServerProcess
from runq.runs.job import JobStatus
from runq.worker.launcher import SandboxProcess, free_port
from tests.integration.conftest import client_for, own_database
from tests.integration.test_up_lifecycle import runq
from tests.integration.test_webhook_mode import TOOL_SCRIPT, finished, workers

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


@pytest.fixture
def sandbox() -> Iterator[SandboxProcess]:
    """A sandbox sending nothing until an endpoint is registered at it."""
    running = SandboxProcess(latency_ms=200).start()
    try:
        yield running
    finally:
        running.stop()


def cli(folder: Path, sandbox: SandboxProcess, *args: str) -> Any:
    return runq(folder, "webhooks", *args, env={"OPENAI_BASE_URL": sandbox.base_url})


def run_jobs(stack: Any, n: int) -> list[Any]:
    client = client_for(stack)
    handles = [client.submit(f"Question {k}?", tools=["calculator"], metadata={
        "sandbox_script": TOOL_SCRIPT}) for k in range(n)]  # fmt: skip
    return finished(client, [h.id for h in handles], timeout=120)


def test_a_registered_receiver_verifies_through_both_kinds_of_rotation(
    sandbox, redis_url, tmp_path
) -> None:
    redis_url = own_database(redis_url, 10)
    redis.Redis.from_url(redis_url).flushdb()
    port = free_port()
    url = f"http://127.0.0.1:{port}{PATH}"
    secret_file = tmp_path / "secrets" / "openai_webhook"

    registered = cli(tmp_path, sandbox, "register", url, "--secret-file", str(secret_file))
    assert registered.returncode == 0, registered.stderr
    endpoint_id = re.search(r"registered (whe_\w+)", registered.stdout).group(1)  # type: ignore[union-attr]
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    secret = secret_file.read_text().strip()
    assert secret.startswith("whsec_")
    assert secret not in registered.stdout + registered.stderr  # only in the file
    twice = cli(tmp_path, sandbox, "register", url, "--print-secret")
    assert twice.returncode == 2 and f"registered already, as {endpoint_id}" in twice.stderr

    log_path = tmp_path / "webhooks.log"
    # No secret in the receiver's environment: it reads the file, and reads it again.
    env = {"OPENAI_WEBHOOK_SECRET_FILE": str(secret_file), "RUNQ_LOG_FORMAT": "json"}
    receiver = WebhookServerProcess(redis_url, "", port=port, log_path=log_path, env=env).start()
    try:
        tested = cli(tmp_path, sandbox, "test", endpoint_id)
        assert tested.returncode == 0 and "HTTP 200" in tested.stdout, tested.stdout + tested.stderr
        with workers(redis_url, sandbox, tmp_path, RUNQ_SAFETY_POLL_INTERVAL="600") as stack:
            jobs = run_jobs(stack, 2)

            # A rotation that ends the old secret at once: the file has the new one, and
            # the receiver takes it on the first delivery the new one signs.
            rotated = cli(tmp_path, sandbox, "rotate", endpoint_id, "--secret-file",
                          str(secret_file))  # fmt: skip
            assert rotated.returncode == 0, rotated.stderr
            assert secret_file.read_text().strip() != secret
            jobs += run_jobs(stack, 2)

            # A rotation that keeps the old secret for a day, the new one printed (for a
            # secrets manager) and not yet given to the receiver: both still verify.
            kept = cli(tmp_path, sandbox, "rotate", endpoint_id, "--keep-old", "--print-secret")
            assert kept.returncode == 0, kept.stderr
            assert kept.stdout.strip().splitlines()[-1].startswith("whsec_")
            jobs += run_jobs(stack, 2)
    finally:
        receiver.stop()
    assert [job.status for job in jobs] == [JobStatus.SUCCEEDED] * 6, [j.error for j in jobs]
    assert [job.polls for job in jobs] == [0] * 6  # every result came by webhook
    events = [json.loads(line) for line in log_path.read_text().splitlines()
              if line.startswith("{")]  # fmt: skip
    assert sum(e.get("event") == "webhook.secret_reloaded" for e in events) == 1
    assert not any(e.get("event") == "webhook.refused" for e in events)  # none was lost
    assert "whsec_" not in log_path.read_text()

    listed = cli(tmp_path, sandbox, "list", "--json")
    assert [e["id"] for e in json.loads(listed.stdout)] == [endpoint_id]
    removed = cli(tmp_path, sandbox, "remove", endpoint_id)
    assert removed.returncode == 0, removed.stderr
    assert json.loads(cli(tmp_path, sandbox, "list", "--json").stdout) == []


def test_endpoint_commands_name_what_is_wrong(sandbox, tmp_path) -> None:
    unknown = cli(tmp_path, sandbox, "test", "whe_unknown")
    assert unknown.returncode == 2
    assert "the backend refused (404)" in unknown.stderr
    assert "Traceback" not in unknown.stderr
    bad_events = cli(tmp_path, sandbox, "register", "https://example.com/hook", "--events", "eval")
    assert bad_events.returncode == 2 and "'eval' is none of runq's events" in bad_events.stderr
    nowhere = runq(tmp_path, "webhooks", "list")  # no OPENAI_BASE_URL, no key, no `runq up`
    assert nowhere.returncode == 2 and "OPENAI_BASE_URL" in nowhere.stderr
