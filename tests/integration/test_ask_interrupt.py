"""Ctrl-C during `runq ask`: the command stops waiting, the jobs go on, a re-run collects.

A sandbox of its own answers in 3 s, so the job is still running when SIGINT arrives.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from runq.runs import keys
from runq.runs.job import JobStatus
from runq.worker.launcher import Stack
from tests.conftest import wait_for
from tests.integration.conftest import WORKER_ENV, client_for

pytestmark = pytest.mark.integration

DOCS = Path(__file__).resolve().parents[2] / "examples" / "docs"


@pytest.fixture(scope="module")
def slow_stack(redis_url: str, tmp_path_factory) -> Iterator[Stack]:
    home = tmp_path_factory.mktemp("ask-interrupt")
    with Stack(home=home, redis_url=redis_url, sandbox_latency_ms=3000, concurrency=2,
               worker_log=home / "worker.log", worker_env=WORKER_ENV) as running:  # fmt: skip
        yield running


def _ask(stack: Stack, cwd: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "REDIS_URL": str(stack.redis_url), "OPENAI_BASE_URL": str(stack.base_url),
           "RUNQ_HOME": str(cwd / ".runq")}  # fmt: skip
    args = [sys.executable, "-m", "runq.producers.cli", "ask", str(DOCS), "-q",
            "How long is the warranty on the Nimbus thermostat?", "--out", "out.jsonl"]  # fmt: skip
    return subprocess.Popen(args, cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip


def test_ctrl_c_leaves_the_job_running_and_says_how_to_resume(
    slow_stack: Stack, tmp_path: Path
) -> None:
    client = client_for(slow_stack)
    before = set(client.redis.scan_iter(keys.job("ask_*")))
    proc = _ask(slow_stack, tmp_path)

    def submitted() -> list[bytes]:
        return [k for k in client.redis.scan_iter(keys.job("ask_*")) if k not in before]

    (job_key,) = wait_for(submitted, timeout=60, what="runq ask to submit its job")
    job_id = job_key.decode().removeprefix(keys.job(""))
    # Ctrl-C while the command waits for the answer (the run is under way at the backend).
    wait_for(lambda: client.store.get(job_id).handle, timeout=30, what="the job's run")
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr and "keep running" in stderr
    assert "runq ask" in stderr.split("interrupted", 1)[1]  # the command to run again

    assert client.get_job(job_id).result(timeout=60)["status"] == JobStatus.SUCCEEDED  # it went on

    again = _ask(slow_stack, tmp_path)
    _, stderr = again.communicate(timeout=60)
    assert again.returncode == 0, stderr
    assert "submitted=0" in stderr and "reused_results=1" in stderr
    assert (tmp_path / "out.jsonl").read_text().count("\n") == 1
