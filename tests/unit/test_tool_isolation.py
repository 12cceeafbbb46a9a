"""Tools in a process of their own: stopped at the timeout, same outputs and errors.

The tools are written to real modules (the child interpreter imports them by name),
registered in the default registry and run through `ToolRegistry.execute`, as the
tools task runs them.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterator

import psutil
import pytest

from runq.errors import ToolError
from runq.runs.error_codes import ToolErrorCode
from runq.runs.tools import load_tool_modules, registry

TOOLS = '''
import time

from runq import ToolError, tool


@tool(name="iso_sleepy", timeout=0.5, isolation="process")
def sleepy(seconds: float) -> str:
    """Sleep, then answer."""
    time.sleep(seconds)
    return "awake"


@tool(name="iso_sleepy_thread", timeout=0.5, isolation="thread")
def sleepy_thread(seconds: float) -> str:
    """Sleep, then answer (in a thread)."""
    time.sleep(seconds)
    return "awake"


@tool(name="iso_order", isolation="process")
def order(number: int) -> dict:
    """An order as data."""
    return {"number": number, "items": ["lamp", "cable"], "total": 41.5}


@tool(name="iso_broken", isolation="process")
def broken(x: int) -> int:
    """Divide by zero."""
    return x // 0


@tool(name="iso_refuses", isolation="process")
def refuses(x: int) -> int:
    """Refuse with a code of its own."""
    raise ToolError("no such customer", code="not_found")


@tool(name="iso_default")
def default(x: int) -> int:
    """Whatever the registry's default says."""
    import os

    return os.getpid()
'''


@pytest.fixture(scope="module")
def tools_module(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("isolated_tools")
    (folder / "runq_test_isolated_tools.py").write_text(TOOLS)
    sys.path.insert(0, str(folder))
    load_tool_modules(["runq_test_isolated_tools"])
    try:
        yield "runq_test_isolated_tools"
    finally:
        sys.path.remove(str(folder))
        sys.modules.pop("runq_test_isolated_tools", None)
        for spec in registry.specs():
            if spec.func.__module__ == "runq_test_isolated_tools":
                registry.unregister(spec.name)


def tool_processes() -> list[psutil.Process]:
    """Our children that run a tool ."""
    found = []
    for child in psutil.Process().children():
        try:
            if (
                child.status() != psutil.STATUS_ZOMBIE
                and "runq.runs.tools.process_runner" in " ".join(child.cmdline())
            ):
                found.append(child)
        except psutil.NoSuchProcess:
            continue
    return found


def test_a_tool_past_its_timeout_is_stopped(tools_module: str) -> None:
    with pytest.raises(ToolError) as info:
        registry.execute("iso_sleepy", {"seconds": 30})
    assert info.value.code == ToolErrorCode.TOOL_TIMEOUT
    assert "its process was stopped" in str(info.value)
    assert tool_processes() == []  # no child left running the tool


def test_a_thread_tool_past_its_timeout_is_abandoned_not_stopped(tools_module: str) -> None:
    """The documented limit of the default: the thread goes on after the timeout."""
    with pytest.raises(ToolError) as info:
        registry.execute("iso_sleepy_thread", {"seconds": 2})
    assert info.value.code == ToolErrorCode.TOOL_TIMEOUT
    assert "runq-tool-iso_sleepy_thread" in {t.name for t in threading.enumerate()}


def test_a_process_tool_answers_as_a_thread_tool_would(tools_module: str) -> None:
    assert registry.execute("iso_sleepy", {"seconds": 0}) == "awake"
    output = registry.execute("iso_order", '{"number": 7}')
    assert json.loads(output) == {"number": 7, "items": ["lamp", "cable"], "total": 41.5}
    assert output == json.dumps(json.loads(output), sort_keys=True)  # the same text form


def test_errors_in_the_child_keep_their_meaning(tools_module: str) -> None:
    with pytest.raises(ToolError) as raised:
        registry.execute("iso_broken", {"x": 1})
    assert raised.value.code == ToolErrorCode.TOOL_RAISED
    assert "ZeroDivisionError" in str(raised.value)
    with pytest.raises(ToolError) as refused:
        registry.execute("iso_refuses", {"x": 1})
    assert refused.value.code == "not_found" and "no such customer" in str(refused.value)


def test_the_registry_default_applies_to_tools_that_do_not_say(
    tools_module: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    assert registry.execute("iso_default", {"x": 1}) == str(os.getpid())
    monkeypatch.setattr(registry, "default_isolation", "process")
    assert registry.execute("iso_default", {"x": 1}) != str(os.getpid())


def test_an_unknown_isolation_is_refused_when_the_tool_is_defined() -> None:
    from runq.runs.tools.registry import ToolRegistry

    with pytest.raises(ValueError, match="isolation must be 'thread' or 'process'"):

        @ToolRegistry().tool(isolation="fiber")  # type: ignore[call-overload]
        def nope(x: int) -> int:
            return x
