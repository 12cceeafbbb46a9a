"""Run one tool function with a deadline, and turn what it returns into the model's text.

Why a fresh daemon thread per call, not a `ThreadPoolExecutor`: Python cannot kill a
thread, so a tool that hangs past its timeout keeps running (a tool that must be
stopped runs in a process of its own instead: `process_runner`). In a pool it would hold a
worker forever and, since Python 3.9, the pool's threads are joined at interpreter exit,
so one hung tool would stop a Celery worker from shutting down. A daemon thread is
abandoned instead: the caller gets `tool_timeout` at the deadline, the process can still
exit, and the thread ends whenever the function returns. That is also why a timeout is
reported as such and not retried blindly for a non-idempotent tool: the first call may
still complete.

The call runs in a copy of the caller's `contextvars`, so structlog context (job id,
task id) bound by the task is visible in the tool's own log lines.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import json
import threading
from typing import Any

import structlog

from runq.errors import ToolError
from runq.runs.error_codes import ToolErrorCode
from runq.runs.tools.spec import ToolSpec

log = structlog.get_logger("runq.tools")


def call_with_timeout(spec: ToolSpec, arguments: dict[str, Any]) -> Any:
    """`spec.func(**arguments)`, or `ToolError` if it raises or outlives `spec.timeout`.

    A `ToolError` raised by the tool itself passes through unchanged, so a tool can
    choose its own error code; any other exception becomes `tool_raised`.
    """
    outcome: dict[str, Any] = {}
    done = threading.Event()
    context = contextvars.copy_context()

    def target() -> None:
        try:
            outcome["value"] = context.run(invoke, spec, arguments)
        except BaseException as exc:  # handed to the caller, never lost in the thread
            outcome["error"] = exc
        finally:
            done.set()

    thread = threading.Thread(target=target, name=f"runq-tool-{spec.name}", daemon=True)
    thread.start()
    if not done.wait(spec.timeout):
        log.warning("tool.timed_out", tool=spec.name, timeout=spec.timeout, thread=thread.name)
        raise ToolError(
            f"tool {spec.name!r} timed out after {spec.timeout:g} s",
            code=ToolErrorCode.TOOL_TIMEOUT,
        )
    if "error" in outcome:
        exc = outcome["error"]
        if isinstance(exc, ToolError):
            raise exc
        detail = str(exc)
        message = f"tool {spec.name!r} raised {type(exc).__name__}" + (
            f": {detail}" if detail else ""
        )
        raise ToolError(message, code=ToolErrorCode.TOOL_RAISED) from exc
    return outcome.get("value")


def invoke(spec: ToolSpec, arguments: dict[str, Any]) -> Any:
    """`spec.func(**arguments)`, awaited when it is a coroutine function."""
    kwargs = dict(arguments)
    # A parameter the schema leaves optional but the function gives no default
    # (`x: str | None`) is passed as None rather than failing with a TypeError.
    required = set(spec.parameters.get("required", ()))
    for name, param in _signature(spec).parameters.items():
        if (
            name not in kwargs
            and name not in required
            and param.default is param.empty
            and param.kind in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY)
        ):
            kwargs[name] = None
    result = spec.func(**kwargs)
    if inspect.isawaitable(result):
        result = asyncio.run(_await(result))
    return result


async def _await(awaitable: Any) -> Any:
    return await awaitable


def _signature(spec: ToolSpec) -> inspect.Signature:
    try:
        return inspect.signature(spec.func)
    except (TypeError, ValueError):  # some builtins have none; pass arguments as they are
        return inspect.Signature()


def to_output(name: str, value: Any) -> str:
    """The text the model receives: a string as is, anything else as sorted JSON."""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    except (TypeError, ValueError) as exc:  # circular data, or keys json cannot sort
        raise ToolError(
            f"tool {name!r} returned a value that cannot be sent to the model: {exc}",
            code=ToolErrorCode.INVALID_OUTPUT,
        ) from exc


def error_output(err: ToolError) -> str:
    """The JSON text a model receives when its call failed: `{"error": {code, message}}`.

    Returning the error to the model (instead of failing the job) lets it correct its
    arguments or answer without the tool, which is what the APIs expect.
    """
    return json.dumps(
        {"error": {"code": getattr(err, "code", ToolErrorCode.TOOL_ERROR), "message": str(err)}},
        ensure_ascii=False,
    )
