"""The code interpreter tool of a Responses create or an Assistants run: run the code.

Before the response (or the run's first step) is planned, the route calls
:func:`for_response` / :func:`for_run`. They check the tool the way the API does (a
400 or 404 naming the parameter), find or create the container and copy the input
files into it, ask :mod:`~runq.sandbox.engine.code_writer` which code the model writes,
and run it (:mod:`~runq.sandbox.engine.code_runner`) in a worker thread, so the server
keeps answering other requests while a child runs; executions in one container take
turns. The result is a :class:`~runq.sandbox.engine.code_calls.CodeTurn` (or ``None``
when there is no code to run: the ordinary policy answers).

Containers are reused within a session: a Responses ``{"type": "auto"}`` container
follows ``previous_response_id`` while it is running; an Assistants thread keeps one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from runq.sandbox.api import validation
from runq.sandbox.api.http import metadata
from runq.sandbox.api.response_plan import check_body
from runq.sandbox.engine import code_runner, code_writer
from runq.sandbox.engine.code_calls import PNG_SIGNATURE, CodeCall, CodeTurn
from runq.sandbox.engine.containers import MEMORY_LIMITS, ContainerRecord
from runq.sandbox.engine.errors import bad_request
from runq.sandbox.engine.file_objects import FileRecord
from runq.sandbox.engine.ids import new_id
from runq.sandbox.engine.state import SandboxState
from runq.sandbox.engine.thread_objects import ThreadRecord
from runq.sandbox.engine.transcript import content_text, turns_from_response_input

log = logging.getLogger("sandbox")
_LOCKS: dict[str, asyncio.Lock] = {}
_WARMED: set[str] = set()
# At most this many executions at once in one server (each is a Python process taking a
# core at worst), as vector-store parsing does: a burst of code cannot take every core.
PARALLEL_EXECUTIONS = 2


def limits(state: SandboxState) -> code_runner.CodeLimits:
    cfg = state.config
    return code_runner.CodeLimits(
        cpu_seconds=cfg.code_cpu_seconds,
        wall_seconds=cfg.code_wall_seconds,
        memory_bytes=cfg.code_memory_mb * 1024 * 1024,
        output_bytes=cfg.code_output_bytes,
    )


def copy_files(state: SandboxState, rec: ContainerRecord, file_ids: Any, param: str) -> None:
    """Copy uploaded files (Files API ids) into the container, by their file names."""
    if file_ids is None:
        return
    if not isinstance(file_ids, list) or not all(isinstance(f, str) for f in file_ids):
        raise bad_request(f"Invalid '{param}': expected an array of file ids.", param)
    if len(file_ids) > 50:
        raise bad_request(f"Invalid '{param}': at most 50 files.", param)
    for file_id in file_ids:
        upload: FileRecord = state.store.find("files", file_id, param)
        present = rec.by_name(upload.filename)
        if present is None or present.size != len(upload.data):
            state.containers.add_file(rec, upload.filename, upload.data)


def _csv_files(state: SandboxState, rec: ContainerRecord) -> dict[str, bytes]:
    return {
        f.name: state.containers.read(rec, f)
        for f in rec.files.values()
        if f.name.lower().endswith(".csv")
    }


async def run_plans(
    state: SandboxState, rec: ContainerRecord, plans: list[code_writer.Plan]
) -> CodeTurn:
    """Run each plan in the container, one at a time, off the event loop."""
    pool = state.containers
    lock = _LOCKS.setdefault(rec.id, asyncio.Lock())
    if pool.execution_slots is None:  # made on the server's own event loop
        pool.execution_slots = asyncio.Semaphore(PARALLEL_EXECUTIONS)
    slots: asyncio.Semaphore = pool.execution_slots
    calls: list[CodeCall] = []
    async with lock, slots:
        if pool.matplotlib_dir not in _WARMED:
            await asyncio.to_thread(code_runner.warm_matplotlib, pool.matplotlib_dir)
            _WARMED.add(pool.matplotlib_dir)
        for plan in plans:
            started = time.monotonic()
            execution = await asyncio.to_thread(
                code_runner.execute, plan.code, rec.workdir, pool.matplotlib_dir, limits(state)
            )
            files = pool.record_outputs(rec, execution.files)
            images = {}
            for cfile in files:
                data = pool.read(rec, cfile)
                if data.startswith(PNG_SIGNATURE):
                    images[cfile.id] = data
            calls.append(CodeCall(new_id("ci"), plan.code, rec, execution, files, images))
            log.info(
                "sandbox.code_interpreter.executed container=%s kind=%s ok=%s error=%r "
                "files=%d seconds=%.2f",
                rec.id,
                plan.kind,
                execution.ok,
                execution.error,
                len(files),
                time.monotonic() - started,
            )
    answer = code_writer.answer_text(plans, [c.execution for c in calls])
    return CodeTurn.build(calls, answer)


# -- Responses -----------------------------------------------------------------------------
def _code_tool(tools: Any) -> tuple[int, dict[str, Any]] | None:
    if not isinstance(tools, list):
        return None
    for i, tool in enumerate(tools):
        if isinstance(tool, dict) and tool.get("type") == "code_interpreter":
            return i, tool
    return None


def _previous_container(state: SandboxState, body: dict[str, Any]) -> ContainerRecord | None:
    """The auto container of the previous response, while it is running."""
    prev = state.store.responses.get(body.get("previous_response_id") or "")
    for item in getattr(prev, "output", None) or []:
        if item.get("type") == "code_interpreter_call":
            rec = state.containers.containers.get(item["container_id"])
            if rec is not None and not rec.expired:
                return rec
    return None


def response_container(
    state: SandboxState, body: dict[str, Any], i: int, tool: dict[str, Any]
) -> ContainerRecord:
    """The container a Responses ``code_interpreter`` tool names or asks for."""
    param = f"tools[{i}].container"
    container = tool.get("container")
    if container is None:
        raise bad_request(f"Missing required parameter: '{param}'.", param)
    if isinstance(container, str):
        rec = state.containers.running(container, param)
        state.containers.touch(rec)
        return rec
    if not isinstance(container, dict) or container.get("type") != "auto":
        raise bad_request(
            f"Invalid '{param}': expected a container id or an object with type 'auto'.",
            param,
        )
    memory = container.get("memory_limit") or "1g"
    if memory not in MEMORY_LIMITS:
        raise bad_request(
            f"Invalid '{param}.memory_limit': expected one of {', '.join(MEMORY_LIMITS)}.",
            f"{param}.memory_limit",
        )
    file_ids = container.get("file_ids")
    for file_id in file_ids if isinstance(file_ids, list) else []:
        state.store.find("files", str(file_id), f"{param}.file_ids")
    rec = _previous_container(state, body) or state.containers.create(
        "Code interpreter container", memory_limit=memory
    )
    copy_files(state, rec, file_ids, f"{param}.file_ids")
    return rec


async def for_response(state: SandboxState, body: dict[str, Any]) -> CodeTurn | None:
    """Run the code a Responses create asks for, if it offers the code interpreter."""
    found = _code_tool(body.get("tools"))
    if found is None:
        return None
    i, tool = found
    check_body(state, body, validation.RESPONSES_PARAMS)  # refuse a bad body before any run
    rec = response_container(state, body, i, tool)
    if body.get("tool_choice") == "none":
        return None
    turns = turns_from_response_input(body.get("input"))
    question = next((t.text for t in reversed(turns) if t.role == "user"), "")
    instructions = body.get("instructions") if isinstance(body.get("instructions"), str) else None
    plans = code_writer.plan_code(
        question, _csv_files(state, rec), metadata(body), instructions, turns
    )
    if not plans:
        return None
    return await run_plans(state, rec, plans)


# -- Assistants ----------------------------------------------------------------------------
def _thread_container(state: SandboxState, thread: ThreadRecord) -> ContainerRecord:
    pool = state.containers
    cid = pool.thread_containers.get(thread.id)
    rec = pool.containers.get(cid or "")
    pool.sweep()
    if rec is None or rec.expired:
        rec = pool.create(f"Code interpreter for {thread.id}")
        pool.thread_containers[thread.id] = rec.id
    return rec


def _thread_file_ids(thread: ThreadRecord, params: dict[str, Any]) -> list[str]:
    """Files for the code: the assistant's and the thread's ``tool_resources``, then the
    visible messages' attachments for code_interpreter."""
    ids: list[str] = []
    for resources in (params.get("tool_resources"), thread.tool_resources):
        ids += ((resources or {}).get("code_interpreter") or {}).get("file_ids") or []
    for message in thread.visible():
        for attachment in message.get("attachments") or []:
            kinds = [t.get("type") for t in attachment.get("tools") or []]
            if "code_interpreter" in kinds:
                ids.append(attachment["file_id"])
    return list(dict.fromkeys(ids))


async def for_run(
    state: SandboxState, thread: ThreadRecord, params: dict[str, Any]
) -> CodeTurn | None:
    """Run the code an Assistants run's first step asks for, if the run has the tool."""
    tools = params.get("tools") or []
    if not any(isinstance(t, dict) and t.get("type") == "code_interpreter" for t in tools):
        return None
    if params.get("tool_choice") == "none":
        return None
    rec = _thread_container(state, thread)
    copy_files(state, rec, _thread_file_ids(thread, params), "tool_resources")
    users = [m for m in thread.visible() if m["role"] == "user"]
    question = content_text(users[-1]["content"]) if users else ""
    plans = code_writer.plan_code(
        question,
        _csv_files(state, rec),
        params.get("metadata_for_script") or {},
        params.get("instructions"),
    )
    if not plans:
        return None
    return await run_plans(state, rec, plans)
