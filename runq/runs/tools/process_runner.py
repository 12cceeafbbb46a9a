"""Run one tool in a process of its own, so a tool that outlives its timeout is stopped.

Python cannot stop a thread: a tool run by `runner.call_with_timeout` that hangs past
its timeout is abandoned, not stopped, and keeps its CPU, memory and connections until
it returns. A tool declared with `isolation="process"` (or every tool, with
`RUNQ_TOOL_ISOLATION=process`) runs instead in a new interpreter
(`python -m runq.runs.tools.process_runner MODULE NAME`), which is killed at the
deadline:

1. the child imports the tool's module and finds the tool by name; nothing but JSON
   text crosses the pipes (the arguments on its stdin, the answer on its stdout);
2. it prints `ready`, and the tool's own `timeout` starts then (the start-up of a new
   interpreter, a few hundred milliseconds, is not charged to the tool);
3. it runs the tool and prints `{"output": text}` or `{"error": {code, message}}`;
4. at the deadline the parent kills the child (SIGKILL) and reports `tool_timeout`.

A new interpreter, not `fork` or `multiprocessing`: a worker has threads (the sweeper,
a threads pool) whose locks a forked child would inherit, and Celery's prefork children
are daemonic processes, which `multiprocessing` forbids to have children. The price is
the start-up per call, which is why threads stay the default for fast tools.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from typing import Any, TextIO

import structlog

from runq.errors import ToolError
from runq.runs.error_codes import ToolErrorCode
from runq.runs.tools.spec import ToolSpec

log = structlog.get_logger("runq.tools")

READY = "ready"
STARTUP_TIMEOUT = 60.0  # seconds for a new interpreter to import the tool's module


def call_in_process(spec: ToolSpec, arguments: dict[str, Any]) -> str:
    """The tool's text output, computed in a child process that is killed at the timeout."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    child = subprocess.Popen(
        [sys.executable, "-m", __name__, spec.func.__module__, spec.name],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    assert child.stdin is not None and child.stdout is not None
    try:
        child.stdin.write(json.dumps(arguments).encode() + b"\n")
        child.stdin.close()
        reader = _LineReader(child.stdout.fileno())
        ready = reader.line(time.monotonic() + STARTUP_TIMEOUT)
        if ready is None:
            raise _startup_failure(spec, child)
        answer = reader.line(time.monotonic() + spec.timeout)
        if answer is None and child.poll() is None:
            log.warning("tool.timed_out", tool=spec.name, timeout=spec.timeout, stopped=True)
            raise ToolError(
                f"tool {spec.name!r} timed out after {spec.timeout:g} s; its process was stopped",
                code=ToolErrorCode.TOOL_TIMEOUT,
            )
        return _output(spec, answer, child)
    finally:
        if child.poll() is None:
            child.kill()
        child.wait(timeout=5)
        child.stdout.close()


class _LineReader:
    """Lines from a pipe, each awaited until a deadline (None: EOF or the deadline)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buffer = b""

    def line(self, deadline: float) -> str | None:
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.fd], [], [], left)[0]:
                return None
            chunk = os.read(self.fd, 65536)
            if not chunk:
                return None
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return line.decode()


def _startup_failure(spec: ToolSpec, child: subprocess.Popen[bytes]) -> ToolError:
    if child.poll() is None:
        return ToolError(
            f"tool {spec.name!r} did not start within {STARTUP_TIMEOUT:g} s",
            code=ToolErrorCode.TOOL_TIMEOUT,
        )
    return ToolError(
        f"tool {spec.name!r} did not start: its process exited with code {child.returncode}",
        code=ToolErrorCode.TOOL_RAISED,
    )


def _output(spec: ToolSpec, answer: str | None, child: subprocess.Popen[bytes]) -> str:
    if answer is None:
        child.wait(timeout=5)
        raise ToolError(
            f"tool {spec.name!r} ended its process (exit code {child.returncode}) without "
            "an answer",
            code=ToolErrorCode.TOOL_RAISED,
        )
    reply = json.loads(answer)
    if "error" in reply:
        error = reply["error"]
        raise ToolError(str(error["message"]), code=str(error["code"]))
    return str(reply["output"])


def child_main(module: str, name: str, answers: TextIO) -> None:
    """The child's whole life: import, say ready, run once, answer on `answers`, exit."""
    from runq.runs.tools.registry import load_tool_modules, registry
    from runq.runs.tools.runner import invoke, to_output

    arguments = json.loads(sys.stdin.readline())
    try:
        load_tool_modules([module])
        spec = registry.get(name)
    except Exception as exc:  # reported to the parent as the tool's failure
        _say(answers, READY)
        _say(answers, _error(name, exc))
        return
    _say(answers, READY)
    try:
        output = to_output(name, invoke(spec, arguments))
    except Exception as exc:  # the parent turns it into the model's error output
        _say(answers, _error(name, exc))
        return
    _say(answers, json.dumps({"output": output}))


def _say(answers: TextIO, line: str) -> None:
    answers.write(line + "\n")
    answers.flush()


def _error(name: str, exc: Exception) -> str:
    if isinstance(exc, ToolError):
        error = {"code": str(exc.code), "message": str(exc)}
    else:
        detail = str(exc)
        message = f"tool {name!r} raised {type(exc).__name__}" + (f": {detail}" if detail else "")
        error = {"code": str(ToolErrorCode.TOOL_RAISED), "message": message}
    return json.dumps({"error": error})


if __name__ == "__main__":
    # The answers keep stdout to themselves: what the tool prints goes to stderr.
    answers, sys.stdout = sys.stdout, sys.stderr
    child_main(sys.argv[1], sys.argv[2], answers)
