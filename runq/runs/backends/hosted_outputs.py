"""What hosted tools leave in a run: their calls (as a result lists them) and the files
they made (as `runs.files.produced` downloads them), for Responses and Assistants.

Responses: `code_interpreter_call` items carry the code, its logs and images, and the
container; `web_search_call`, `mcp_call`, `mcp_list_tools`, `mcp_approval_request` and
`file_search_call` items are listed as they come. Files are the container files an
answer cites (`container_file_citation`) plus those the code wrote into the container
(`source: assistant` in `GET /v1/containers/{id}/files`), read from
`/v1/containers/{id}/files/{file_id}/content`.

Assistants: `code_interpreter` tool calls in the run's steps (input, logs, image file
ids); files are the message's `image_file` parts and `file_path` annotations, read
from `/v1/files/{id}/content`.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable
from typing import Any

import openai

from runq.runs.backends.base import RunOutputs, RunState

MAX_URL_KEPT = 2048  # an image output's URL longer than this (a data: URL) is not kept
RESPONSES_ITEMS = {
    "code_interpreter_call": ("id", "status", "container_id", "code"),
    "web_search_call": ("id", "status"),
    "mcp_call": ("id", "status", "server_label", "name", "arguments", "output", "error"),
    "mcp_list_tools": ("id", "server_label", "error"),
    "mcp_approval_request": ("id", "server_label", "name", "arguments"),
    "file_search_call": ("id", "status", "queries"),
}


def _attr(obj: Any, name: str, default: Any = None) -> Any:
    if isinstance(obj, dict):
        return obj.get(name, default)
    return getattr(obj, name, default)


def _plain(value: Any) -> Any:
    """An SDK object (a pydantic model) as JSON-ready data."""
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json", exclude_none=True)
    return value


def _image(url: Any) -> dict[str, Any]:
    url = str(url or "")
    if len(url) > MAX_URL_KEPT:
        return {"type": "image", "url": None, "url_chars": len(url)}
    return {"type": "image", "url": url}


def responses_items(item: Any) -> list[dict[str, Any]]:
    """A Responses output item of a hosted tool as a result lists it ([]: not one)."""
    kind = _attr(item, "type")
    fields = RESPONSES_ITEMS.get(str(kind))
    if fields is None:
        return []
    call: dict[str, Any] = {"type": kind}
    for name in fields:
        value = _attr(item, name)
        if value is not None:
            call[name] = _plain(value)
    if kind == "code_interpreter_call":
        outputs = []
        for out in _attr(item, "outputs", None) or []:
            if _attr(out, "type") == "logs":
                outputs.append({"type": "logs", "logs": _attr(out, "logs", "")})
            elif _attr(out, "type") == "image":
                outputs.append(_image(_attr(out, "url")))
        call["outputs"] = outputs
    elif kind == "web_search_call" and _attr(item, "action") is not None:
        call["action"] = _plain(_attr(item, "action"))
    elif kind == "mcp_list_tools":
        call["tools"] = [_attr(t, "name") for t in _attr(item, "tools", None) or []]
    return [call]


def container_refs(part: Any) -> list[dict[str, Any]]:
    """The `container_file_citation` annotations of an output text part, as file refs."""
    return [
        {"name": _attr(note, "filename"), "file_id": _attr(note, "file_id"),
         "container_id": _attr(note, "container_id")}
        for note in _attr(part, "annotations", None) or []
        if _attr(note, "type") == "container_file_citation"
    ]  # fmt: skip


def _dedupe(refs: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: dict[tuple[Any, Any], dict[str, Any]] = {}
    for ref in refs:
        key = (ref.get("container_id"), ref.get("file_id"))
        if ref.get("file_id") and key not in seen:
            seen[key] = ref
    return list(seen.values())


def responses_outputs(client: openai.OpenAI, state: RunState) -> RunOutputs:
    """The calls the response holds, and the files cited or written in its containers."""
    refs = list(state.file_refs)
    containers = dict.fromkeys(
        c["container_id"] for c in state.hosted_calls if c.get("container_id")
    )
    for container_id in containers:
        try:
            listed = client.containers.files.list(container_id)
            for f in listed:
                if _attr(f, "source") != "assistant":
                    continue  # the job's own input files
                path = str(_attr(f, "path", "") or "")
                refs.append({"name": posixpath.basename(path) or f.id, "file_id": f.id,
                             "container_id": container_id, "bytes": _attr(f, "bytes")})  # fmt: skip
        except openai.NotFoundError:
            continue  # the container expired: only what the answer cited can be read
    return RunOutputs(hosted_calls=list(state.hosted_calls), file_refs=_dedupe(refs))


def _step_calls(step: Any, refs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A run step's hosted tool calls; the images its code made join `refs`."""
    calls: list[dict[str, Any]] = []
    for tc in step.step_details.tool_calls:
        if tc.type == "code_interpreter":
            ci = tc.code_interpreter
            outputs: list[dict[str, Any]] = []
            for out in ci.outputs or []:
                if out.type == "logs":
                    outputs.append({"type": "logs", "logs": out.logs})
                elif out.type == "image" and out.image is not None:
                    outputs.append({"type": "image", "file_id": out.image.file_id})
                    refs.append({"name": None, "file_id": out.image.file_id})
            calls.append({"type": "code_interpreter_call", "id": tc.id, "status": step.status,
                          "code": ci.input, "outputs": outputs})  # fmt: skip
        elif tc.type == "file_search":
            calls.append({"type": "file_search_call", "id": tc.id, "status": step.status})
    return calls


def assistants_outputs(client: openai.OpenAI, handle: dict[str, str]) -> RunOutputs:
    """The run's code interpreter calls (its steps) and the files its messages hold."""
    thread_id, run_id = handle["thread_id"], handle["run_id"]
    threads = client.beta.threads
    calls: list[dict[str, Any]] = []
    refs: list[dict[str, Any]] = []
    for step in threads.runs.steps.list(run_id, thread_id=thread_id, order="asc"):
        if step.step_details.type == "tool_calls":
            calls.extend(_step_calls(step, refs))
    for message in threads.messages.list(thread_id, run_id=run_id, order="asc"):
        if message.role != "assistant":
            continue
        for part in message.content:
            if part.type == "image_file":
                refs.append({"name": None, "file_id": part.image_file.file_id})
            elif part.type == "text":
                for note in part.text.annotations:
                    if note.type == "file_path":
                        name = posixpath.basename(str(note.text or "").split(":")[-1])
                        refs.append({"name": name or None, "file_id": note.file_path.file_id})
    refs = _named(client, _prefer_named(refs))
    return RunOutputs(hosted_calls=calls, file_refs=refs)


def _prefer_named(refs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One reference per file id, the one with a name when several point at it."""
    best: dict[str, dict[str, Any]] = {}
    for ref in refs:
        known = best.get(ref["file_id"])
        if known is None or (not known.get("name") and ref.get("name")):
            best[ref["file_id"]] = ref
    return list(best.values())


def _named(client: openai.OpenAI, refs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Give each unnamed file its name and size from the Files API."""
    for ref in refs:
        if ref.get("name"):
            continue
        found = client.files.retrieve(ref["file_id"])
        ref["name"] = posixpath.basename(found.filename or "") or ref["file_id"]
        ref["bytes"] = found.bytes
    return refs


def read_capped(chunks: Iterable[bytes], limit: int) -> bytes | None:
    """The chunks joined, or None as soon as they pass `limit` bytes."""
    parts: list[bytes] = []
    size = 0
    for chunk in chunks:
        size += len(chunk)
        if size > limit:
            return None
        parts.append(chunk)
    return b"".join(parts)


def read_file(client: openai.OpenAI, ref: dict[str, Any], limit: int) -> bytes | None:
    """A produced file's bytes through the backend (container file or plain file)."""
    if ref.get("container_id"):
        content = client.containers.files.content.with_streaming_response.retrieve(
            ref["file_id"], container_id=ref["container_id"]
        )
    else:
        content = client.files.with_streaming_response.content(ref["file_id"])
    with content as response:
        return read_capped(response.iter_bytes(), limit)
