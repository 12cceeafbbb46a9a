"""A process-isolated tool in a real Celery worker: stopped at its timeout, job goes on."""

from __future__ import annotations

import json

import psutil
import pytest

from runq.producers.client import Client
from runq.worker.launcher import Stack
from tests.conftest import wait_for

pytestmark = pytest.mark.integration


def tool_processes_under(pid: int) -> list[psutil.Process]:
    """Processes below `pid` that run a tool in a process of its own."""
    found = []
    for child in psutil.Process(pid).children(recursive=True):
        try:
            running = child.status() != psutil.STATUS_ZOMBIE
            if running and "runq.runs.tools.process_runner" in " ".join(child.cmdline()):
                found.append(child)
        except psutil.NoSuchProcess:
            continue
    return found


def test_a_hung_process_tool_is_stopped_and_the_model_is_told(client: Client, stack: Stack) -> None:
    script = json.dumps([[{"name": "stuck_in_a_process", "arguments": {"seconds": 120}}]])
    handle = client.submit("hang please", tools=["stuck_in_a_process"],
                           metadata={"sandbox_script": script})  # fmt: skip
    result = handle.result(timeout=60)
    assert result["status"] == "succeeded"
    (call,) = result["tool_calls"]
    assert call["error"] == "tool_timeout"
    assert "its process was stopped" in call["output"]
    worker = stack.worker_procs[0].proc
    assert worker is not None
    wait_for(lambda: not tool_processes_under(worker.pid), timeout=10,
             what="no tool process left in the worker")  # fmt: skip
