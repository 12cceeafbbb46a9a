"""Bad code cannot escape the sandbox's code interpreter, over real HTTP.

Each piece of code goes in a fenced block to ``POST /v1/responses`` with the
``code_interpreter`` tool, through the official client. The limit or barrier that
stops it must show as the tool call's error output (a ``failed`` call whose logs say
why), and the server must stay up and answer the next request.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from runq.sandbox.engine import code_runner
from runq.sandbox.engine.config import SandboxConfig
from runq.sandbox.server.serve import SandboxServer

CPU_SECONDS = 2
WALL_SECONDS = 6.0


@pytest.fixture(scope="module")
def strict_server() -> Iterator[SandboxServer]:
    config = SandboxConfig(
        port=0,
        latency_ms=0,
        code_cpu_seconds=CPU_SECONDS,
        code_wall_seconds=WALL_SECONDS,
        code_memory_mb=512,
        code_output_bytes=4096,
    )
    with SandboxServer(config) as srv:
        yield srv


@pytest.fixture
def strict_client(strict_server: SandboxServer) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=strict_server.base_url, api_key="sk-test", max_retries=0, timeout=60
    )


def run_code(client: openai.OpenAI, code: str) -> tuple[dict[str, Any], str]:
    """The code_interpreter_call item (as JSON) and the answer text."""
    response = client.responses.create(
        model="gpt-4o-mini",
        input=f"Run this:\n```python\n{code}\n```",
        tools=[{"type": "code_interpreter", "container": {"type": "auto"}}],
        include=["code_interpreter_call.outputs"],
    )
    call = next(i for i in response.output if i.type == "code_interpreter_call")
    return call.model_dump(), response.output_text


def logs_of(call: dict[str, Any]) -> str:
    return "\n".join(o["logs"] for o in call["outputs"] if o["type"] == "logs")


def still_serving(client: openai.OpenAI) -> None:
    """The server answers the next request, and runs the next code normally."""
    call, text = run_code(client, "print(6 * 7)")
    assert call["status"] == "completed"
    assert "42" in logs_of(call) and "42" in text


ESCAPES = [
    pytest.param("x = 0\nwhile True:\n    x += 1", "CPU time limit exceeded", id="infinite-loop"),
    pytest.param("import time\ntime.sleep(600)", "timed out after 6 s", id="wall-clock"),
    pytest.param(
        "blocks = []\nwhile True:\n    blocks.append(bytearray(50_000_000))",
        "Memory limit exceeded",
        id="unbounded-allocation",
    ),
    pytest.param("import os\nwhile True:\n    os.fork()", "os.fork: not allowed", id="fork-bomb"),
    pytest.param(
        "import subprocess\nsubprocess.run(['cat', '/etc/passwd'])",
        "subprocess.Popen: not allowed",
        id="subprocess",
    ),
    pytest.param(
        "import _posixsubprocess\n_posixsubprocess.fork_exec",
        "has no attribute 'fork_exec'",
        id="unaudited-fork",
    ),
    pytest.param(
        "import sys\ndel sys.modules['_posixsubprocess']\nimport _posixsubprocess",
        "cannot be loaded again",
        id="reloaded-fork",
    ),
    pytest.param(
        "import ctypes\nctypes.memmove(0, 0, 1)", "has no attribute 'memmove'", id="ctypes"
    ),
    pytest.param(
        "print(open('/etc/passwd').read())", "outside the container's directory", id="read-etc"
    ),
    pytest.param(
        "open('../escaped.txt', 'w').write('out')", "outside the container's directory", id="up"
    ),
    pytest.param(
        "import os\nprint(os.listdir('/'))", "outside the container's directory", id="list-root"
    ),
    pytest.param(
        "import os\nos.symlink('/etc/passwd', 'passwd')", "outside the container's", id="symlink"
    ),
    pytest.param("import os\nos.kill(os.getppid(), 9)", "os.kill: not allowed", id="kill-server"),
    pytest.param("while True:\n    print('x' * 1000)", "Output limit exceeded", id="output-flood"),
]


@pytest.mark.parametrize(("code", "reason"), ESCAPES)
def test_bad_code_is_stopped_and_reported(
    strict_client: openai.OpenAI, code: str, reason: str
) -> None:
    started = time.monotonic()
    call, text = run_code(strict_client, code)
    elapsed = time.monotonic() - started
    assert call["status"] == "failed"
    assert reason in logs_of(call)
    assert text.startswith("The code failed:") and reason in text
    assert elapsed < WALL_SECONDS + 10  # every limit ends it, at worst the wall clock
    still_serving(strict_client)


def test_an_infinite_loop_ends_at_its_cpu_limit(strict_client: openai.OpenAI) -> None:
    started = time.monotonic()
    call, _ = run_code(strict_client, "while True:\n    pass")
    assert "CPU time limit exceeded (2 s)" in logs_of(call)
    assert time.monotonic() - started < WALL_SECONDS  # the CPU limit, not the wall clock


def test_no_network_even_to_this_machine(
    strict_server: SandboxServer, strict_client: openai.OpenAI
) -> None:
    port = strict_server.sock.getsockname()[1]
    code = f"import socket\ns = socket.socket()\ns.connect(('127.0.0.1', {port}))"
    call, _ = run_code(strict_client, code)
    assert call["status"] == "failed"
    assert "network access is disabled" in logs_of(call)
    still_serving(strict_client)


def test_writing_outside_leaves_nothing_there(
    strict_server: SandboxServer, strict_client: openai.OpenAI
) -> None:
    call, _ = run_code(strict_client, "open('../escaped.txt', 'w').write('out')")
    root = Path(strict_server.app.state.sandbox.containers.root)
    workdir = root / call["container_id"]
    assert workdir.is_dir()
    assert not (root / "escaped.txt").exists()
    assert list(workdir.iterdir()) == []


def test_code_may_read_and_write_its_own_directory(strict_client: openai.OpenAI) -> None:
    code = (
        "import os\n"
        "os.makedirs('out', exist_ok=True)\n"
        "open('out/result.txt', 'w').write('ok')\n"
        "print(open('out/result.txt').read(), sorted(os.listdir('.')))"
    )
    call, text = run_code(strict_client, code)
    assert call["status"] == "completed"
    assert "ok ['out']" in logs_of(call)
    assert "[out/result.txt](sandbox:/mnt/data/out/result.txt)" in text


def test_without_a_network_namespace_the_hook_refuses_sockets_and_says_so(
    strict_server: SandboxServer, tmp_path: Path
) -> None:
    port = strict_server.sock.getsockname()[1]
    code = f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2)"
    limits = code_runner.CodeLimits(cpu_seconds=5, wall_seconds=10)
    done = code_runner.execute(code, tmp_path, str(tmp_path / ".mpl"), limits, False)
    assert done.logs.startswith(code_runner.FALLBACK_NOTE)
    assert done.error is not None and "network access is disabled" in done.error


def test_the_child_sees_no_network_device_but_loopback(tmp_path: Path) -> None:
    """Below the hook, the kernel: in its own namespace the child has only ``lo``; a host
    without user namespaces gets the documented fallback, said in the logs."""
    code = "import socket\nprint([name for _, name in socket.if_nameindex()])"
    done = code_runner.execute(code, tmp_path, str(tmp_path / ".mpl"), code_runner.CodeLimits())
    assert done.ok, done.logs
    if code_runner.network_namespace_available():
        assert done.logs == "['lo']\n"
    else:
        assert done.logs.startswith(code_runner.FALLBACK_NOTE)
