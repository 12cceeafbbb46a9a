"""`runq up` as a user runs it: jobs outlive a restart, and no child outlives the stack.

Each test starts the real command in a folder of its own (a private Redis, the sandbox,
a worker), then stops it the way users do: Ctrl-C, a closed terminal (SIGHUP), or a
SIGKILL that gives it no chance to clean up. Every process of the stack must be gone.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil
import pytest

from tests.conftest import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


ROOT = Path(__file__).resolve().parents[2]
# A user's own tools, importable from where they run `runq up` (here: the examples').
USER_TOOLS = {"RUNQ_TOOL_MODULES": "examples.tools", "PYTHONPATH": str(ROOT)}


def user_env(folder: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RUNQ_", "OPENAI_"))}
    env.pop("REDIS_URL", None)
    env.update(RUNQ_HOME=str(folder / ".runq"), RUNQ_TEST_MODE="1", RUNQ_LOG_FORMAT="json")
    env.update(extra)
    return env


def runq(
    folder: Path, *args: str, timeout: float = 120, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "runq.producers.cli", *args],
        cwd=folder,
        env=user_env(folder, **(env or {})),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@contextmanager
def runq_up(
    folder: Path, *args: str, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """`runq up` in `folder`, ready for commands; killed at the end if still running."""
    log = folder / f"up-{len(list(folder.glob('up-*.log')))}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "runq.producers.cli", "up", *args],
            cwd=folder, env=user_env(folder, **(env or {})), stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        try:
            wait_for(
                lambda: proc.poll() is not None or b"Ctrl-C stops" in log.read_bytes(),
                timeout=120,
                what="runq up to start",
            )
            assert proc.poll() is None, log.read_text()
            yield proc
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=60)


def stack_processes(proc: subprocess.Popen[bytes]) -> list[psutil.Process]:
    """Every process `runq up` started: Redis, the sandbox, the workers and their pools."""
    children = psutil.Process(proc.pid).children(recursive=True)
    names = " ".join(" ".join(child.cmdline()) for child in children)
    assert "redis-server" in names and "runq.sandbox" in names and "celery" in names, names
    return children


def all_gone(processes: list[psutil.Process]) -> bool:
    alive = []
    for process in processes:
        try:
            if process.status() != psutil.STATUS_ZOMBIE:
                alive.append(process)
        except psutil.NoSuchProcess:
            continue
    return not alive


def test_a_tool_job_typed_as_the_banner_shows_is_accepted(tmp_path: Path) -> None:
    # `runq up` says it is ready (and writes the state file other commands find it by)
    # only once its workers have published their tools: the first `runq submit --tool`
    # is not refused for a tool no worker has announced yet.
    with runq_up(tmp_path, env=USER_TOOLS):
        listed = runq(tmp_path, "tools", env=USER_TOOLS)
        assert listed.returncode == 0, listed.stderr
        assert "calculator" in listed.stdout
        assert "no worker has published" not in listed.stdout + listed.stderr
        done = runq(tmp_path, "submit", "Use the tool.", "--tool", "calculator", "--wait",
                    "--json", env=USER_TOOLS)  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        assert json.loads(done.stdout)["status"] == "succeeded"


def test_jobs_outlive_a_restart_and_fresh_starts_empty(tmp_path: Path) -> None:
    with runq_up(tmp_path) as up:
        done = runq(tmp_path, "submit", "Remember me", "--wait", "--json")
        assert done.returncode == 0, done.stderr
        job_id = json.loads(done.stdout)["job_id"]
        up.send_signal(signal.SIGINT)
        assert up.wait(timeout=60) == 0
    with runq_up(tmp_path):
        status = runq(tmp_path, "status", job_id)
        assert status.returncode == 0, status.stderr
        assert "succeeded" in status.stdout
        result = runq(tmp_path, "result", job_id, "--json")
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["job_id"] == job_id
    with runq_up(tmp_path, "--fresh"):
        gone = runq(tmp_path, "status", job_id)
        assert gone.returncode != 0
        assert job_id in gone.stderr


@pytest.mark.parametrize("how", [signal.SIGHUP, signal.SIGKILL], ids=["sighup", "sigkill"])
def test_no_process_of_the_stack_outlives_runq_up(tmp_path: Path, how: signal.Signals) -> None:
    with runq_up(tmp_path) as up:
        children = stack_processes(up)
        up.send_signal(how)
        up.wait(timeout=60)
        wait_for(lambda: all_gone(children), timeout=30, what="the stack's processes to end")
    if how == signal.SIGHUP:
        assert up.returncode == 0


def test_ctrl_c_stops_flower_and_the_webhook_receiver_with_the_stack(tmp_path: Path) -> None:
    """The processes `runq up` starts beside the stack stop with its workers."""
    from runq.worker.children import free_port

    port = str(free_port())
    with runq_up(tmp_path, "--flower-demo", "--flower-port", port, "--webhooks") as up:
        children = stack_processes(up)
        names = " ".join(" ".join(child.cmdline()) for child in children)
        assert "flower" in names and "webhooks" in names, names
        up.send_signal(signal.SIGINT)
        up.wait(timeout=60)
        wait_for(lambda: all_gone(children), timeout=30, what="the stack's processes to end")
    assert up.returncode == 0
    assert "runq up: stopped" in (tmp_path / "up-0.log").read_text()
