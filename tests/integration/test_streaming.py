"""Stream mode: deltas arrive before the run completes, and a killed worker resumes cleanly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from datetime import datetime
from pathlib import Path

import pytest

from runq.config.settings import load_settings
from runq.producers.client.sync import Client
from runq.worker.launcher import Stack
from tests.conftest import wait_for

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def slow_stack(tmp_path_factory) -> Stack:
    """Its own Redis and a sandbox that streams 40 tokens per second."""
    home = tmp_path_factory.mktemp("stream")
    with Stack(
        home=home,
        sandbox_latency_ms=300,
        sandbox_args=["--tokens-per-second", "40"],
        concurrency=2,
        pool="prefork",  # the crash test kills a pool process mid-stream
        worker_log=home / "worker.log",
        worker_env={"RUNQ_TEST_MODE": "1"},
    ) as stack:
        yield stack


def _client(stack: Stack) -> Client:
    assert stack.redis_url
    return Client(stack.redis_url, load_settings(redis_url=stack.redis_url))


LONG = " ".join(f"word{i}" for i in range(120))


def test_first_delta_comes_before_the_run_completes(slow_stack: Stack) -> None:
    handle = _client(slow_stack).submit(LONG, mode="stream")
    events = list(handle.events(timeout=60))
    deltas = [e for e in events if e.type == "text.delta"]
    final = events[-1].data["result"]
    assert final["status"] == "succeeded"
    assert len(deltas) > 5
    completed = datetime.fromisoformat(final["timings"]["run_completed_at"]).timestamp()
    assert deltas[0].data["ts"] < completed
    assert "".join(d.data["delta"] for d in deltas) == final["output_text"]


def _pool_children(stack: Stack) -> list[int]:
    main = stack.worker_procs[0].proc
    assert main is not None
    out = subprocess.run(["pgrep", "-P", str(main.pid)], capture_output=True, text=True)
    return [int(pid) for pid in out.stdout.split()]


def test_a_worker_killed_mid_stream_resumes_without_duplicates(slow_stack: Stack) -> None:
    client = _client(slow_stack)
    handle = client.submit(LONG, mode="stream")
    wait_for(
        lambda: sum(e.type == "text.delta" for e in client.events.read(handle.id)) >= 3,
        timeout=30,
        what="the stream to start",
    )
    for pid in _pool_children(slow_stack):
        os.kill(pid, signal.SIGKILL)
    result = handle.result(timeout=90)
    assert result["status"] == "succeeded"
    deltas = [e for e in client.events.read(handle.id) if e.type == "text.delta"]
    seqs = [d.data["seq"] for d in deltas]
    assert seqs == sorted(set(seqs)), "a delta was forwarded twice"
    assert "".join(d.data["delta"] for d in deltas) == result["output_text"]
    assert result["output_text"].count("word119") == 1
    log = Path(slow_stack.worker_log or "").read_text()
    assert "runq.jobs.stream" in log


def test_chat_jobs_stream_their_turns(slow_stack: Stack) -> None:
    handle = _client(slow_stack).submit(LONG, mode="stream", backend="chat")
    events = list(handle.events(timeout=60))
    deltas = [e for e in events if e.type == "text.delta"]
    final = events[-1].data["result"]
    assert final["status"] == "succeeded"
    assert len(deltas) > 5
    assert "".join(d.data["delta"] for d in deltas) == final["output_text"]


def test_assistants_runs_stream_and_tool_rounds_still_work(slow_stack: Stack) -> None:
    script = json.dumps([[{"name": "calculator", "arguments": {"expression": "6*7"}}]])
    handle = _client(slow_stack).submit(
        LONG, mode="stream", backend="assistants", tools=["calculator"],
        metadata={"sandbox_script": script},
    )  # fmt: skip
    events = list(handle.events(timeout=90))
    final = events[-1].data["result"]
    assert final["status"] == "succeeded", final["error"]
    assert final["tool_calls"][0]["name"] == "calculator"
    deltas = [e for e in events if e.type == "text.delta"]
    assert deltas, "the answer after the tool round streamed"
    assert "".join(d.data["delta"] for d in deltas) == final["output_text"]
