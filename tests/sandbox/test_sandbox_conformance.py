"""Conformance: every object the sandbox returns validates against the ``openai``
package's types (no required field missing) and the OpenAPI schema of its operation.

The spec path comes from ``RUNQ_OPENAPI_SPEC`` (default ``../shared/spec/
openai-openapi.yaml`` from the repo root). Without it the schema checks are reported
as an error under ``RUNQ_CI`` (fail, never skip); elsewhere only the type checks run.
"""

from __future__ import annotations

import functools
import json
import os
import warnings
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import openai
import pydantic
import pytest
import yaml
from openai.types import (
    FileDeleted,
    FileObject,
    Model,
    VectorStoreDeleted,
    VectorStoreSearchResponse,
)
from openai.types.beta import (
    Assistant,
    AssistantDeleted,
    AssistantStreamEvent,
    Thread,
    ThreadDeleted,
)
from openai.types.beta.threads import Message, Run
from openai.types.beta.threads.runs import RunStep
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.conversations import Conversation, ConversationDeletedResource
from openai.types.conversations.conversation_item_list import ConversationItemList
from openai.types.responses import Response, ResponseItemList, ResponseStreamEvent
from openai.types.vector_store import VectorStore
from openai.types.vector_stores import (
    VectorStoreFile,
    VectorStoreFileBatch,
    VectorStoreFileDeleted,
)
from pydantic import BaseModel
from sandbox_helpers import wait_until

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
ROOT = Path(__file__).resolve().parents[2]


def spec_path() -> Path:
    """RUNQ_OPENAPI_SPEC, else the shared copy beside the checkout, else the vendored copy.

    The vendored copy (tests/spec, MIT, OpenAI) keeps a clean clone self-sufficient.
    """
    if os.environ.get("RUNQ_OPENAPI_SPEC"):
        return Path(os.environ["RUNQ_OPENAPI_SPEC"])
    shared = ROOT.parent / "shared" / "spec" / "openai-openapi.yaml"
    return shared if shared.exists() else ROOT / "tests" / "spec" / "openai-openapi.yaml"


@functools.lru_cache(maxsize=1)
def components() -> dict[str, Any] | None:
    path = spec_path()
    if not path.exists():
        raise AssertionError(f"OpenAPI spec missing at {path} (set RUNQ_OPENAPI_SPEC)")
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with path.open() as fh:
        return allow_nullable(yaml.load(fh, Loader=loader)["components"])


def allow_nullable(node: Any) -> Any:
    """OpenAPI's ``nullable: true`` (still used by this 3.1 document) means "or null"."""
    if isinstance(node, list):
        return [allow_nullable(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: allow_nullable(v) for k, v in node.items()}
    if out.pop("nullable", False):
        return {"anyOf": [out, {"type": "null"}]}
    return out


def check(data: Any, model: Any, schema: str | dict[str, Any]) -> Any:
    """Strict enough: the type parses, no required field is missing, the schema holds.

    ``model`` is a pydantic class or a union (e.g. ``ResponseStreamEvent``), parsed with a
    ``TypeAdapter``; the required-field check applies to the class it resolved to.
    ``schema`` is a component name or a schema (e.g. one taken from an operation).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        parsed = pydantic.TypeAdapter(model).validate_python(data)
    if isinstance(parsed, BaseModel):
        fields = type(parsed).model_fields
        missing = [n for n, f in fields.items() if f.is_required() and (f.alias or n) not in data]
        assert not missing, f"{type(parsed).__name__} lacks required {missing}"
    if components() is not None:
        errors = sorted(validator(schema).iter_errors(data), key=lambda e: list(e.path))
        assert not errors, f"{schema}: " + "; ".join(
            f"{list(e.path)}: {e.message[:200]}" for e in errors[:5]
        )
    return parsed


_VALIDATORS: dict[str, jsonschema.Draft202012Validator] = {}


def validator(schema: str | dict[str, Any]) -> jsonschema.Draft202012Validator:
    if isinstance(schema, str):
        schema = {"$ref": f"#/components/schemas/{schema}"}
    key = json.dumps(schema, sort_keys=True)
    if key not in _VALIDATORS:
        _VALIDATORS[key] = jsonschema.Draft202012Validator({**schema, "components": components()})
    return _VALIDATORS[key]


@functools.lru_cache(maxsize=1)
def spec_paths() -> dict[str, Any]:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with spec_path().open() as fh:
        paths: dict[str, Any] = yaml.load(fh, Loader=loader)["paths"]
    return paths


def op_schema(method: str, path: str, media: str = "application/json") -> dict[str, Any]:
    """The 200 schema of an operation, e.g. ``op_schema("get", "/responses/{response_id}")``."""
    content = spec_paths()[path][method]["responses"]["200"].get("content") or {}
    assert media in content, f"{method.upper()} {path} has no {media} response in the spec"
    schema: dict[str, Any] = content[media]["schema"]
    return schema


def check_op(data: Any, model: Any, method: str, path: str) -> Any:
    """Validate ``data`` as the 200 body of that operation (and as ``model``)."""
    return check(data, model, op_schema(method, path))


def variant_by_tag(union: str, tag: str, value: str) -> str | dict[str, Any]:
    """The member of a spec union whose ``tag`` property is the constant ``value``.

    Members are ``$ref``s (``ResponseStreamEvent``) or inline objects (``RunStreamEvent``);
    nested unions (``AssistantStreamEvent`` of ``RunStreamEvent``...) are searched too.
    """
    comps = components()
    assert comps is not None
    node = comps["schemas"][union]
    for member in node.get("oneOf") or node.get("anyOf") or []:
        target = member
        if "$ref" in member:
            name = member["$ref"].rsplit("/", 1)[1]
            target = comps["schemas"][name]
            if "oneOf" in target or "anyOf" in target:
                try:
                    return variant_by_tag(name, tag, value)
                except LookupError:
                    continue
        enum = ((target.get("properties") or {}).get(tag) or {}).get("enum") or []
        if value in enum:
            return member if "$ref" not in member else member["$ref"].rsplit("/", 1)[1]
    raise LookupError(f"no member of {union} has {tag}={value!r}")


def raw(call: Any) -> dict[str, Any]:
    return call.http_response.json()


def test_spec_is_found_under_ci() -> None:
    if os.environ.get("RUNQ_CI"):
        assert components() is not None
    else:
        assert spec_path().name == "openai-openapi.yaml"


def test_responses_objects_conform(client: openai.OpenAI) -> None:
    tools = [
        {
            "type": "function",
            "name": "get_weather",
            "description": "weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        }
    ]
    queued = raw(
        client.responses.with_raw_response.create(model="gpt-4o-mini", input="x", background=True)
    )
    check(queued, Response, "Response")
    done = raw(
        client.responses.with_raw_response.create(
            model="gpt-4o-mini", input="weather in Paris", tools=tools
        )
    )
    check(done, Response, "Response")
    check(raw(client.responses.with_raw_response.cancel(queued["id"])), Response, "Response")


def test_chat_completion_conforms(client: openai.OpenAI) -> None:
    data = raw(
        client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
        )
    )
    check(data, ChatCompletion, "CreateChatCompletionResponse")


def test_assistants_objects_conform(client: openai.OpenAI) -> None:
    beta = client.beta
    assistant = raw(beta.assistants.with_raw_response.create(model="gpt-4o-mini", name="a"))
    check(assistant, Assistant, "AssistantObject")
    thread = raw(beta.threads.with_raw_response.create())
    check(thread, Thread, "ThreadObject")
    message = raw(
        beta.threads.messages.with_raw_response.create(thread["id"], role="user", content="hello")
    )
    check(message, Message, "MessageObject")
    run = raw(
        beta.threads.runs.with_raw_response.create(
            thread_id=thread["id"], assistant_id=assistant["id"]
        )
    )
    check(run, Run, "RunObject")
    done = wait_until(
        lambda: raw(
            beta.threads.runs.with_raw_response.retrieve(run["id"], thread_id=thread["id"])
        ),
        lambda r: r["status"] == "completed",
    )
    check(done, Run, "RunObject")
    steps = raw(beta.threads.runs.steps.with_raw_response.list(run["id"], thread_id=thread["id"]))
    for step in steps["data"]:
        check(step, RunStep, "RunStepObject")


def test_files_vector_stores_models_conform(client: openai.OpenAI) -> None:
    file = raw(
        client.files.with_raw_response.create(file=("a.txt", b"hello world."), purpose="assistants")
    )
    check(file, FileObject, "OpenAIFile")
    store = raw(client.vector_stores.with_raw_response.create(file_ids=[file["id"]]))
    check(store, VectorStore, "VectorStoreObject")
    model = raw(client.models.with_raw_response.retrieve("gpt-4o"))
    check(model, Model, "Model")
    models = raw(client.models.with_raw_response.list())
    check_op(models, dict, "get", "/models")
    assert models["data"]


# -- more operations ------------------------------------------------------------------------
WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}
DOC = b"The vault opens at dawn. Guards change shifts at noon. The vault code is 4417."


def ready_store(client: openai.OpenAI) -> tuple[str, str]:
    """A vector store with one ingested text file: ``(store_id, file_id)``."""
    file = client.files.create(file=("vault.txt", DOC), purpose="assistants")
    store = client.vector_stores.create(name="vault", file_ids=[file.id])
    wait_until(
        lambda: client.vector_stores.retrieve(store.id),
        lambda s: s.file_counts.completed == 1,
    )
    return store.id, file.id


def test_conversation_objects_conform(client: openai.OpenAI) -> None:
    conv = raw(
        client.conversations.with_raw_response.create(
            items=[{"type": "message", "role": "user", "content": "first"}], metadata={"a": "b"}
        )
    )
    check_op(conv, Conversation, "post", "/conversations")
    path = "/conversations/{conversation_id}"
    check_op(
        raw(client.conversations.with_raw_response.retrieve(conv["id"])), Conversation, "get", path
    )
    client.responses.create(model="gpt-4o-mini", input="second", conversation=conv["id"])
    items = raw(client.conversations.items.with_raw_response.list(conv["id"]))
    check_op(items, ConversationItemList, "get", path + "/items")
    assert [i["type"] for i in items["data"]] == ["message"] * 3
    deleted = raw(client.conversations.with_raw_response.delete(conv["id"]))
    check_op(deleted, ConversationDeletedResource, "delete", path)
    assert deleted["deleted"] is True


def test_response_input_items_and_delete_conform(client: openai.OpenAI) -> None:
    first = client.responses.create(
        model="gpt-4o-mini", input="weather in Paris", tools=[WEATHER_TOOL]
    )
    call = next(i for i in first.output if i.type == "function_call")
    second = raw(
        client.responses.with_raw_response.create(
            model="gpt-4o-mini",
            previous_response_id=first.id,
            input=[
                {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"},
                {"role": "user", "content": "thanks"},
            ],
        )
    )
    check_op(second, Response, "post", "/responses")
    items = raw(client.responses.input_items.with_raw_response.list(second["id"]))
    check_op(items, ResponseItemList, "get", "/responses/{response_id}/input_items")
    assert {i["type"] for i in items["data"]} == {"function_call_output", "message"}
    # The spec gives this operation no schema, only an example: match the example.
    op = spec_paths()["/responses/{response_id}"]["delete"]
    example = json.loads(op["x-oaiMeta"]["examples"]["response"])
    deleted = client.responses.with_raw_response.delete(second["id"]).http_response.json()
    assert deleted == {**example, "id": second["id"]}


def test_vector_store_files_batches_and_search_conform(client: openai.OpenAI) -> None:
    store_id, file_id = ready_store(client)
    vs = client.vector_stores
    base = "/vector_stores/{vector_store_id}"
    other = client.files.create(
        file=("b.md", b"# Notes\n\nBread rises overnight."), purpose="assistants"
    )
    added = raw(vs.files.with_raw_response.create(store_id, file_id=other.id))
    check_op(added, VectorStoreFile, "post", base + "/files")
    listed = raw(vs.files.with_raw_response.list(store_id))
    check_op(listed, dict, "get", base + "/files")
    for item in listed["data"]:
        check(item, VectorStoreFile, "VectorStoreFileObject")
    one = raw(vs.files.with_raw_response.retrieve(file_id, vector_store_id=store_id))
    check_op(one, VectorStoreFile, "get", base + "/files/{file_id}")
    third = client.files.create(file=("c.txt", b"Owls hunt at night."), purpose="assistants")
    batch = raw(vs.file_batches.with_raw_response.create(store_id, file_ids=[third.id]))
    check_op(batch, VectorStoreFileBatch, "post", base + "/file_batches")
    again = raw(vs.file_batches.with_raw_response.retrieve(batch["id"], vector_store_id=store_id))
    check_op(again, VectorStoreFileBatch, "get", base + "/file_batches/{batch_id}")
    results = raw(vs.with_raw_response.search(store_id, query="vault code"))
    check_op(results, dict, "post", base + "/search")
    assert results["data"], "the search should find the vault file"
    for hit in results["data"]:
        check(hit, VectorStoreSearchResponse, "VectorStoreSearchResultItem")
    stores = raw(vs.with_raw_response.list())
    check_op(stores, dict, "get", "/vector_stores")
    files = raw(client.files.with_raw_response.list())
    check_op(files, dict, "get", "/files")
    unlinked = raw(vs.files.with_raw_response.delete(other.id, vector_store_id=store_id))
    check_op(unlinked, VectorStoreFileDeleted, "delete", base + "/files/{file_id}")
    assert other.id not in {f.id for f in vs.files.list(store_id)}
    gone = raw(vs.with_raw_response.delete(store_id))
    check_op(gone, VectorStoreDeleted, "delete", base)
    gone_file = raw(client.files.with_raw_response.delete(third.id))
    check_op(gone_file, FileDeleted, "delete", "/files/{file_id}")


def test_assistants_lists_deletes_and_run_steps_conform(client: openai.OpenAI) -> None:
    beta = client.beta
    store_id, _ = ready_store(client)
    script = json.dumps([[{"name": "get_weather", "arguments": {"city": "Oslo"}}]])
    assistant = beta.assistants.create(
        model="gpt-4o-mini",
        tools=[
            {"type": "function", "function": {"name": "get_weather", "parameters": {}}},
            {"type": "file_search"},
        ],
        tool_resources={"file_search": {"vector_store_ids": [store_id]}},
        metadata={"sandbox_script": script},
    )
    listed = raw(beta.assistants.with_raw_response.list())
    check_op(listed, dict, "get", "/assistants")
    for item in listed["data"]:
        check(item, Assistant, "AssistantObject")
    thread = beta.threads.create(messages=[{"role": "user", "content": "weather in Oslo?"}])
    run = beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=20
    )
    assert run.status == "requires_action"
    check(
        raw(beta.threads.runs.with_raw_response.retrieve(run.id, thread_id=thread.id)),
        Run,
        "RunObject",
    )
    call = run.required_action.submit_tool_outputs.tool_calls[0]  # type: ignore[union-attr]
    submitted = raw(
        beta.threads.runs.with_raw_response.submit_tool_outputs(
            run.id, thread_id=thread.id, tool_outputs=[{"tool_call_id": call.id, "output": "cold"}]
        )
    )
    check_op(submitted, Run, "post", "/threads/{thread_id}/runs/{run_id}/submit_tool_outputs")
    wait_until(
        lambda: beta.threads.runs.retrieve(run.id, thread_id=thread.id),
        lambda r: r.status == "completed",
    )
    # a second run on the same thread searches the files
    beta.threads.messages.create(thread.id, role="user", content="what is the vault code?")
    searched = beta.threads.runs.create_and_poll(
        thread_id=thread.id,
        assistant_id=assistant.id,
        poll_interval_ms=20,
        metadata={"sandbox_script": "[]"},
    )
    assert searched.status == "completed"
    kinds = set()
    for run_id in (run.id, searched.id):
        steps = raw(beta.threads.runs.steps.with_raw_response.list(run_id, thread_id=thread.id))
        check_op(steps, dict, "get", "/threads/{thread_id}/runs/{run_id}/steps")
        for step in steps["data"]:
            check(step, RunStep, "RunStepObject")
            kinds |= {c["type"] for c in step["step_details"].get("tool_calls", [])}
            kinds.add(step["type"])
    assert kinds == {"tool_calls", "message_creation", "function", "file_search"}
    runs = raw(beta.threads.runs.with_raw_response.list(thread.id))
    check_op(runs, dict, "get", "/threads/{thread_id}/runs")
    messages = raw(beta.threads.messages.with_raw_response.list(thread.id))
    check_op(messages, dict, "get", "/threads/{thread_id}/messages")
    for message in messages["data"]:
        check(message, Message, "MessageObject")
    assert any(m["content"][0]["text"]["annotations"] for m in messages["data"])
    gone_thread = raw(beta.threads.with_raw_response.delete(thread.id))
    check_op(gone_thread, ThreadDeleted, "delete", "/threads/{thread_id}")
    gone = raw(beta.assistants.with_raw_response.delete(assistant.id))
    check_op(gone, AssistantDeleted, "delete", "/assistants/{assistant_id}")


# -- streams --------------------------------------------------------------------------------
def sse(
    client: openai.OpenAI,
    method: str,
    path: str,
    body: dict[str, Any] | None = None,
    fault: str | None = None,
) -> list[tuple[str | None, str]]:
    """Raw server-sent events of a request: ``[(event name or None, data text)]``."""
    url = str(client.base_url).rstrip("/") + path
    events: list[tuple[str | None, str]] = []
    with (
        httpx.Client(timeout=10) as http,
        http.stream(
            method,
            url,
            json=body,
            headers={"authorization": "Bearer k", **({"x-sandbox-fault": fault} if fault else {})},
        ) as resp,
    ):
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        name, data = None, []
        for line in resp.iter_lines():
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].strip())
            elif line == "" and data:
                events.append((name, "\n".join(data)))
                name, data = None, []
    return events


def check_response_events(raw_events: list[tuple[str | None, str]]) -> list[dict[str, Any]]:
    out = []
    for i, (name, text) in enumerate(raw_events):
        event = json.loads(text)
        assert name == event["type"], "the SSE event name is the event's type"
        assert event["sequence_number"] == i
        check(
            event, ResponseStreamEvent, variant_by_tag("ResponseStreamEvent", "type", event["type"])
        )
        out.append(event)
    return out


def test_responses_stream_events_conform(client: openai.OpenAI) -> None:
    store_id, _ = ready_store(client)
    bodies = [
        {
            "model": "gpt-4o-mini",
            "input": "weather in Paris",
            "tools": [WEATHER_TOOL],
            "stream": True,
        },
        {
            "model": "gpt-4o-mini",
            "input": "what is the vault code?",
            "tools": [{"type": "file_search", "vector_store_ids": [store_id]}],
            "stream": True,
        },
        {"model": "gpt-4o-mini", "input": "hello", "background": True, "stream": True},
    ]
    seen: set[str] = set()
    for body in bodies:
        events = check_response_events(sse(client, "POST", "/responses", body))
        seen |= {e["type"] for e in events}
        final = events[-1]
        assert final["type"] == "response.completed"
        # the official client parses the same stream into the same typed events
        official = list(client.responses.create(**body))
        assert [e.type for e in official] == [e["type"] for e in events]
        for parsed, event in zip(official, events, strict=True):
            expected = pydantic.TypeAdapter(ResponseStreamEvent).validate_python(event)
            assert type(parsed) is type(expected)
        raw_text = "".join(
            part["text"]
            for item in final["response"]["output"]
            if item["type"] == "message"
            for part in item["content"]
        )
        assert official[-1].response.output_text == raw_text  # the same answer both times
        deltas = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
        assert deltas == raw_text
    # a background stream resumes with the same events
    bg = client.responses.create(model="gpt-4o-mini", input="resume me", background=True)
    resumed = check_response_events(
        sse(client, "GET", f"/responses/{bg.id}?stream=true&starting_after=-1")
    )
    assert resumed[-1]["response"]["output"][0]["content"][0]["text"] == "Echo: resume me"
    assert {
        "response.created",
        "response.queued",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.annotation.added",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.file_search_call.in_progress",
        "response.file_search_call.searching",
        "response.file_search_call.completed",
        "response.completed",
    } <= seen


def test_chat_completion_stream_chunks_conform(client: openai.OpenAI) -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]
    bodies = [
        {
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": "hello"}],
            "stream": True,
            "stream_options": {"include_usage": True},
        },
        {
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": "weather in Paris"}],
            "tools": tools,
            "stream": True,
        },
    ]
    schema = op_schema("post", "/chat/completions", "text/event-stream")
    for body in bodies:
        events = sse(client, "POST", "/chat/completions", body)
        assert events[-1] == (None, "[DONE]")
        chunks = [json.loads(text) for _, text in events[:-1]]
        for chunk in chunks:
            check(chunk, ChatCompletionChunk, schema)
        official = list(client.chat.completions.create(**body))
        assert len(official) == len(chunks)
        assert all(isinstance(c, ChatCompletionChunk) for c in official)
        with_usage = [c.usage for c in official if c.usage is not None]
        assert len(with_usage) == (1 if "stream_options" in body else 0)
        deltas = [c.choices[0].delta for c in official if c.choices]
        if "tools" in body:
            calls = [t for d in deltas for t in d.tool_calls or []]
            assert calls[0].function and calls[0].function.name == "get_weather"
            assert json.loads("".join(t.function.arguments or "" for t in calls if t.function))
        else:
            assert "".join(d.content or "" for d in deltas) == "Echo: hello"


def check_assistant_events(raw_events: list[tuple[str | None, str]]) -> list[str]:
    names = []
    for name, text in raw_events:
        assert name is not None
        names.append(name)
        if name == "done":
            check({"event": name, "data": text}, dict, "DoneEvent")
            continue
        event = {"event": name, "data": json.loads(text)}
        check(event, AssistantStreamEvent, variant_by_tag("AssistantStreamEvent", "event", name))
    assert names[-1] == "done"
    return names


def test_assistants_run_stream_events_conform(client: openai.OpenAI) -> None:
    beta = client.beta
    script = json.dumps([[{"name": "get_weather", "arguments": {"city": "Oslo"}}]])
    assistant = beta.assistants.create(
        model="gpt-4o-mini",
        tools=[{"type": "function", "function": {"name": "get_weather", "parameters": {}}}],
        metadata={"sandbox_script": script},
    )
    body = {
        "assistant_id": assistant.id,
        "thread": {"messages": [{"role": "user", "content": "go"}]},
        "stream": True,
    }
    first = sse(client, "POST", "/threads/runs", body)
    names = check_assistant_events(first)
    assert names[-2] == "thread.run.requires_action"
    run = json.loads(first[-2][1])
    call_id = run["required_action"]["submit_tool_outputs"]["tool_calls"][0]["id"]
    second = sse(
        client,
        "POST",
        f"/threads/{run['thread_id']}/runs/{run['id']}/submit_tool_outputs",
        {"tool_outputs": [{"tool_call_id": call_id, "output": "cold"}], "stream": True},
    )
    names += check_assistant_events(second)
    assert {
        "thread.run.created",
        "thread.run.queued",
        "thread.run.in_progress",
        "thread.run.step.created",
        "thread.run.step.in_progress",
        "thread.run.step.completed",
        "thread.message.created",
        "thread.message.in_progress",
        "thread.message.delta",
        "thread.message.completed",
        "thread.run.completed",
    } <= set(names)
    # the official client's stream parsing and accumulation agree
    thread = beta.threads.create(messages=[{"role": "user", "content": "hello there"}])
    with beta.threads.runs.stream(
        thread_id=thread.id, assistant_id=assistant.id, metadata={"sandbox_script": "[]"}
    ) as stream:
        events = list(stream)
        final_run = stream.get_final_run()
        final_messages = stream.get_final_messages()
    assert [e.event for e in events][:2] == ["thread.run.created", "thread.run.queued"]
    assert final_run.status == "completed"
    assert final_messages[0].content[0].text.value == "Echo: hello there"  # type: ignore[union-attr]
    with beta.threads.runs.create(
        thread_id=thread.id,
        assistant_id=assistant.id,
        stream=True,
        metadata={"sandbox_script": "[]"},
    ) as typed:
        kinds = [type(e).__name__ for e in typed]
    assert "ThreadMessageDelta" in kinds and kinds[-1] == "ThreadRunCompleted"


@pytest.mark.parametrize("fault", ["failed", "incomplete", "expired", "bad_args"])
def test_streams_ending_badly_conform(client: openai.OpenAI, fault: str) -> None:
    """Failed, incomplete and expired endings: each event still matches its schema."""
    body = {
        "model": "gpt-4o-mini",
        "input": "weather in Paris",
        "tools": [WEATHER_TOOL],
        "stream": True,
    }
    if fault == "incomplete":
        body = {"model": "gpt-4o-mini", "input": "a long enough question to cut", "stream": True}
    events = check_response_events(sse(client, "POST", "/responses", body, fault))
    endings = {
        "failed": ("response.failed", "thread.run.failed"),
        "incomplete": ("response.incomplete", "thread.run.incomplete"),
        "expired": ("response.failed", "thread.run.expired"),  # Responses has no "expired"
        "bad_args": ("response.completed", "thread.run.completed"),
    }
    assert events[-1]["type"] == endings[fault][0]
    chat = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "cut me short"}],
        "stream": True,
    }
    if fault in ("incomplete", "bad_args"):
        chunks = sse(client, "POST", "/chat/completions", chat, fault)
        schema = op_schema("post", "/chat/completions", "text/event-stream")
        for _, text in chunks[:-1]:
            check(json.loads(text), ChatCompletionChunk, schema)
    assistant = client.beta.assistants.create(model="gpt-4o-mini")
    run_body = {
        "assistant_id": assistant.id,
        "thread": {"messages": [{"role": "user", "content": "a long enough question to cut"}]},
        "stream": True,
    }
    names = check_assistant_events(sse(client, "POST", "/threads/runs", run_body, fault))
    assert names[-2] == endings[fault][1]


def test_cancelled_run_and_response_streams_conform(client: openai.OpenAI) -> None:
    assistant = client.beta.assistants.create(model="gpt-4o-mini")
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "hi"}])
    run = client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id)
    cancelling = raw(client.beta.threads.runs.with_raw_response.cancel(run.id, thread_id=thread.id))
    check_op(cancelling, Run, "post", "/threads/{thread_id}/runs/{run_id}/cancel")
    cancelled = wait_until(
        lambda: raw(
            client.beta.threads.runs.with_raw_response.retrieve(run.id, thread_id=thread.id)
        ),
        lambda r: r["status"] == "cancelled",
    )
    check(cancelled, Run, "RunObject")
    for step in raw(
        client.beta.threads.runs.steps.with_raw_response.list(run.id, thread_id=thread.id)
    )["data"]:
        check(step, RunStep, "RunStepObject")
    bg = client.responses.create(model="gpt-4o-mini", input="stop", background=True)
    client.responses.cancel(bg.id)
    events = check_response_events(sse(client, "GET", f"/responses/{bg.id}?stream=true"))
    assert events and events[0]["type"] == "response.created"


def test_empty_pages_differ_from_the_spec_only_by_null_cursors(client: openai.OpenAI) -> None:
    """An empty page has ``first_id``/``last_id`` null, as the live API answers; the spec
    types them as plain strings. Everything else about the page must hold."""
    thread = client.beta.threads.create()
    pages = {
        "/assistants": raw(client.beta.assistants.with_raw_response.list()),
        "/threads/{thread_id}/messages": raw(
            client.beta.threads.messages.with_raw_response.list(thread.id)
        ),
        "/threads/{thread_id}/runs": raw(
            client.beta.threads.runs.with_raw_response.list(thread.id)
        ),
        "/vector_stores": raw(client.vector_stores.with_raw_response.list()),
        "/files": raw(client.files.with_raw_response.list()),
    }
    for path, data in pages.items():
        assert data["data"] == [] and data["has_more"] is False
        errors = list(validator(op_schema("get", path)).iter_errors(data))
        assert {(tuple(e.path), e.message) for e in errors} == {
            (("first_id",), "None is not of type 'string'"),
            (("last_id",), "None is not of type 'string'"),
        }, path


# -- structured outputs, reasoning, stored chat, conversation items, side operations --------
CITY_SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "population": {"type": "integer"},
        "mayor": {"anyOf": [{"type": "string"}, {"type": "null"}]},
    },
    "required": ["name", "population", "mayor"],
    "additionalProperties": False,
}
REFUSAL = json.dumps([[{"refusal": "I can't help with that."}]])


def test_structured_reasoning_and_refusal_responses_conform(client: openai.OpenAI) -> None:
    fmt = {"type": "json_schema", "name": "City", "schema": CITY_SCHEMA, "strict": True}
    bodies: list[dict[str, Any]] = [
        {"model": "gpt-4o-mini", "input": "Paris has 2100000 people", "text": {"format": fmt}},
        {
            "model": "gpt-5-mini",
            "input": "hello",
            "reasoning": {"effort": "low", "summary": "auto"},
        },
        {"model": "o4-mini", "input": "hi", "include": ["reasoning.encrypted_content"]},
        {"model": "gpt-4o-mini", "input": "x", "metadata": {"sandbox_script": REFUSAL}},
        {"model": "gpt-4o-mini", "input": "in JSON", "text": {"format": {"type": "json_object"}}},
    ]
    seen: set[str] = set()
    for body in bodies:
        data = raw(client.responses.with_raw_response.create(**body))
        check_op(data, Response, "post", "/responses")
        assert data["text"]["format"]["type"] == (body.get("text") or {}).get("format", {}).get(
            "type", "text"
        )
        events = check_response_events(sse(client, "POST", "/responses", {**body, "stream": True}))
        seen |= {e["type"] for e in events}
    assert {
        "response.reasoning_summary_part.added",
        "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.done",
        "response.reasoning_summary_part.done",
        "response.refusal.delta",
        "response.refusal.done",
    } <= seen


def test_input_tokens_and_compact_conform(client: openai.OpenAI) -> None:
    counted = raw(
        client.responses.input_tokens.with_raw_response.count(
            model="gpt-4o-mini", input="Tell me a joke."
        )
    )
    check_op(counted, dict, "post", "/responses/input_tokens")
    created = client.responses.create(model="gpt-4o-mini", input="Tell me a joke.")
    assert created.usage is not None
    assert counted["input_tokens"] == created.usage.input_tokens
    compacted = raw(
        client.responses.with_raw_response.compact(
            model="gpt-4o-mini", previous_response_id=created.id, input="and another"
        )
    )
    check_op(compacted, dict, "post", "/responses/compact")
    assert [i["type"] for i in compacted["output"]] == ["message", "message", "compaction"]
    # the compacted history continues like the full one
    follow = client.responses.create(
        model="gpt-4o-mini", input=[*compacted["output"], {"role": "user", "content": "last"}]
    )
    assert follow.output_text == ('Echo: last (earlier: "Tell me a joke." | "and another")')


def test_stored_chat_completions_conform(client: openai.OpenAI) -> None:
    chat = client.chat.completions
    made = raw(
        chat.with_raw_response.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "hi"}],
            store=True,
            metadata={"team": "a"},
            n=2,
            logprobs=True,
            top_logprobs=2,
        )
    )
    check_op(made, ChatCompletion, "post", "/chat/completions")
    assert len(made["choices"]) == 2 and made["choices"][0]["logprobs"]["content"]
    path = "/chat/completions/{completion_id}"
    check_op(raw(chat.with_raw_response.retrieve(made["id"])), ChatCompletion, "get", path)
    listed = raw(chat.with_raw_response.list(metadata={"team": "a"}))
    check_op(listed, dict, "get", "/chat/completions")
    assert [c["id"] for c in listed["data"]] == [made["id"]]
    updated = raw(chat.with_raw_response.update(made["id"], metadata={"team": "b"}))
    check_op(updated, ChatCompletion, "post", path)
    messages = raw(chat.messages.with_raw_response.list(made["id"]))
    # The spec types these as assistant messages; OpenAI lists the request's messages
    # with their own roles (its example shows role "user"): the one known difference.
    errors = list(validator(op_schema("get", path + "/messages")).iter_errors(messages))
    assert {e.message for e in errors} <= {"'user' is not one of ['assistant']"}
    assert messages["data"][0]["content"] == "hi"
    gone = raw(chat.with_raw_response.delete(made["id"]))
    check_op(gone, dict, "delete", path)
    # a refusal, and stream chunks carrying "usage": null with include_usage
    refused = raw(
        chat.with_raw_response.create(
            model="gpt-4o-mini",
            messages=[
                {"role": "system", "content": f"sandbox_script: {REFUSAL}"},
                {"role": "user", "content": "x"},
            ],
        )
    )
    check_op(refused, ChatCompletion, "post", "/chat/completions")
    body = {
        "model": "gpt-5-mini",
        "messages": [{"role": "user", "content": "hello"}],
        "stream": True,
        "stream_options": {"include_usage": True},
        "n": 2,
    }
    schema = op_schema("post", "/chat/completions", "text/event-stream")
    chunks = [json.loads(text) for _, text in sse(client, "POST", "/chat/completions", body)[:-1]]
    for chunk in chunks:
        check(chunk, ChatCompletionChunk, schema)
        assert "usage" in chunk
    assert chunks[-1]["usage"]["completion_tokens_details"]["reasoning_tokens"] > 0


def test_conversation_items_and_updates_conform(client: openai.OpenAI) -> None:
    conv = client.conversations.create()
    path = "/conversations/{conversation_id}"
    updated = raw(client.conversations.with_raw_response.update(conv.id, metadata={"k": "v"}))
    check_op(updated, Conversation, "post", path)
    added = raw(
        client.conversations.items.with_raw_response.create(
            conv.id,
            items=[
                {"type": "message", "role": "user", "content": "first"},
                {"type": "message", "role": "assistant", "content": "ok"},
            ],
        )
    )
    check_op(added, ConversationItemList, "post", path + "/items")
    item_id = added["data"][1]["id"]
    one = raw(
        client.conversations.items.with_raw_response.retrieve(item_id, conversation_id=conv.id)
    )
    check_op(one, dict, "get", path + "/items/{item_id}")
    after = raw(
        client.conversations.items.with_raw_response.delete(item_id, conversation_id=conv.id)
    )
    check_op(after, Conversation, "delete", path + "/items/{item_id}")
    listed = client.conversations.items.list(conv.id, order="asc")
    assert [i.id for i in listed.data] == [added["data"][0]["id"]]
    answer = client.responses.create(model="gpt-4o-mini", input="second", conversation=conv.id)
    assert answer.output_text == 'Echo: second (earlier: "first")'


def test_thread_message_run_updates_and_step_retrieve_conform(client: openai.OpenAI) -> None:
    beta = client.beta
    fmt = {
        "type": "json_schema",
        "json_schema": {"name": "City", "schema": CITY_SCHEMA, "strict": True},
    }
    assistant = beta.assistants.create(model="gpt-4o-mini", response_format=fmt)  # type: ignore[arg-type]
    check(
        raw(beta.assistants.with_raw_response.retrieve(assistant.id)), Assistant, "AssistantObject"
    )
    thread = beta.threads.create(messages=[{"role": "user", "content": "Paris has 2100000 people"}])
    check_op(
        raw(beta.threads.with_raw_response.update(thread.id, metadata={"a": "b"})),
        Thread, "post", "/threads/{thread_id}",
    )  # fmt: skip
    run = beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=20
    )
    done = raw(beta.threads.runs.with_raw_response.retrieve(run.id, thread_id=thread.id))
    check(done, Run, "RunObject")
    assert done["response_format"]["type"] == "json_schema"
    runs = beta.threads.runs.with_raw_response
    moved = raw(runs.update(run.id, thread_id=thread.id, metadata={"x": "y"}))
    check_op(moved, Run, "post", "/threads/{thread_id}/runs/{run_id}")
    step = beta.threads.runs.steps.list(run.id, thread_id=thread.id).data[0]
    steps = beta.threads.runs.steps.with_raw_response
    one = raw(steps.retrieve(step.id, thread_id=thread.id, run_id=run.id))
    check_op(one, RunStep, "get", "/threads/{thread_id}/runs/{run_id}/steps/{step_id}")
    answer = beta.threads.messages.list(thread.id).data[0]
    assert json.loads(answer.content[0].text.value)["population"] == 2100000  # type: ignore[union-attr]
    mpath = "/threads/{thread_id}/messages/{message_id}"
    msgs = beta.threads.messages.with_raw_response
    noted = raw(msgs.update(answer.id, thread_id=thread.id, metadata={"m": "1"}))
    check_op(noted, Message, "post", mpath)
    check_op(raw(msgs.delete(answer.id, thread_id=thread.id)), dict, "delete", mpath)
    assert answer.id not in {m.id for m in beta.threads.messages.list(thread.id)}


def test_every_reply_carries_a_request_id(client: openai.OpenAI) -> None:
    ok_reply = client.models.with_raw_response.list()
    assert ok_reply.headers["x-request-id"].startswith("req_")
    with pytest.raises(openai.NotFoundError) as info:
        client.responses.retrieve("resp_missing")
    assert info.value.request_id and info.value.request_id.startswith("req_")
