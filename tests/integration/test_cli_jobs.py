"""Jobs you can find again, messages that say what happened: the `runq` job commands and the
Python API against a real Redis, real workers and the sandbox."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from runq.errors import IdempotencyConflictError, InvalidJobError
from runq.producers.client.sync import Client
from runq.runs import keys, tool_catalog
from runq.worker.launcher import Stack
from tests.conftest import imported_modules, wait_for

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def _env(stack: Stack) -> dict[str, str]:
    # No RUNQ_TOOL_MODULES: a producer that loads no tool module, as the CLI usually is.
    base = {k: v for k, v in os.environ.items() if k != "RUNQ_TOOL_MODULES"}
    return {**base, "REDIS_URL": str(stack.redis_url), "PYTHONPATH": str(ROOT)}


def _cli(stack: Stack, tmp: Path, *args: str, python: tuple[str, ...] = ()):
    return subprocess.run([sys.executable, *python, "-m", "runq.producers.cli", *args],
                          capture_output=True, text=True, env=_env(stack), cwd=tmp,
                          timeout=120)  # fmt: skip


def test_submit_wait_json_prints_the_id_first_on_stderr(stack: Stack, tmp_path: Path) -> None:
    done = _cli(stack, tmp_path, "submit", "hello there", "--wait", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)  # stdout is one JSON document
    assert done.stderr.splitlines()[0] == result["job_id"]
    status = _cli(stack, tmp_path, "status", result["job_id"], python=("-X", "importtime"))
    lines = status.stdout.splitlines()
    assert lines[0] == "succeeded" and lines[1].split()[0] == "took", status.stdout
    assert "redis" not in imported_modules(status.stderr)


def test_ctrl_c_while_waiting_says_how_to_get_the_result(stack: Stack, tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "runq.producers.cli", "submit", "wait for me", "--wait",
         "--deadline", "120", "--instructions", "sandbox_latency_ms: 30000"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(stack), cwd=tmp_path,
    )  # fmt: skip
    assert proc.stdout is not None
    job_id = proc.stdout.readline().strip()  # the id comes before the wait
    assert job_id.startswith("job_")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert f"runq result {job_id} --wait" in err and "Traceback" not in err
    status = _cli(stack, tmp_path, "status", job_id)
    assert status.stdout.splitlines()[0] in ("queued", "running"), status.stdout  # it goes on
    assert "step" in status.stdout and "next" in status.stdout


def test_jobs_lists_recent_jobs_newest_first(stack: Stack, client: Client, tmp_path: Path) -> None:
    first = client.submit("the first of two listed questions")
    second = client.submit("the second of two listed questions")
    second.result(timeout=60)
    listed = _cli(stack, tmp_path, "jobs", "--limit", "5", "--json")
    assert listed.returncode == 0, listed.stderr
    ids = [job["job_id"] for job in json.loads(listed.stdout)]
    assert ids.index(second.id) < ids.index(first.id)
    table = _cli(stack, tmp_path, "jobs", "--status", "succeeded", "--limit", "50")
    row = next(line for line in table.stdout.splitlines() if line.startswith(second.id))
    assert "succeeded" in row and row.endswith("the second of two listed questions")
    assert [s.job_id for s in client.jobs(limit=2)] == [second.id, first.id]
    bad = _cli(stack, tmp_path, "jobs", "--status", "done")
    assert bad.returncode == 2 and "invalid choice: 'done'" in bad.stderr


def test_an_idempotency_key_reused_for_another_job_is_refused(
    stack: Stack, client: Client, tmp_path: Path
) -> None:
    first = client.submit("refund policy?", idempotency_key="cli-idem-1")
    assert client.submit("refund policy?", idempotency_key="cli-idem-1").id == first.id
    with pytest.raises(IdempotencyConflictError) as info:
        client.submit("shipping policy?", idempotency_key="cli-idem-1")
    assert info.value.key == "cli-idem-1" and info.value.job_id == first.id
    again = _cli(stack, tmp_path, "submit", "refund policy?", "--idempotency-key", "cli-idem-1")
    assert again.stdout.strip() == first.id
    other = _cli(stack, tmp_path, "submit", "other", "--idempotency-key", "cli-idem-1")
    assert other.returncode == 2
    assert "idempotency key 'cli-idem-1' was already used for job " + first.id in other.stderr


def test_unknown_tools_are_refused_at_submit(stack: Stack, client: Client, tmp_path: Path) -> None:
    published = wait_for(lambda: tool_catalog.published_names(client.redis), what="the catalog")
    assert {"calculator", "wait_a_while"} <= published
    jobs_before = len(client.redis.keys(keys.job("*")))
    done = _cli(stack, tmp_path, "submit", "hi", "--tool", "nope")
    assert done.returncode == 2
    assert "runq: error: tools: unknown tool 'nope'; choose from " in done.stderr
    assert "calculator" in done.stderr
    with pytest.raises(InvalidJobError) as info:
        client.submit("hi", tools=["calculator", "nope"])
    assert info.value.option == "tools" and "'nope'" in str(info.value)
    assert len(client.redis.keys(keys.job("*"))) == jobs_before
    # A tool only the workers load is known to a producer that loads none.
    ok = _cli(stack, tmp_path, "submit", "hi", "--tool", "wait_a_while")
    assert ok.returncode == 0, ok.stderr
    tools = _cli(stack, tmp_path, "tools", "--json")
    assert "wait_a_while" in {t["name"] for t in json.loads(tools.stdout)}
