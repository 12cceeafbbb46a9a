"""Conformance of the sandbox's newer objects against OpenAI's OpenAPI description.

The same two checks as :mod:`test_sandbox_conformance` (its helpers, reused): each body
parses as the ``openai`` package's type and validates against the spec. Covered here:
every status a Batch goes through (and its list), the lines of its output and error
files, Containers and their files (lists, an expired one, a delete), a
``code_interpreter_call`` with and without outputs (in a response, sent back as input,
in a conversation), a ``container_file_citation``, an Assistants run step with a
code interpreter call and a message with ``image_file`` content, responses and chat
completions with each ``service_tier``, and every webhook payload the sandbox sends
(``response.*`` and ``batch.*``) against the spec's webhook event schemas.

One documented difference: the spec types a Batch's optional timestamps, file ids,
``errors`` and ``model`` as plain values, while the live API (and the spec's own
example) answers ``null`` until they apply. :func:`check_allowing_nulls` accepts
exactly that: ``null`` in a field the spec does not require and the ``openai`` type
declares optional; any other difference fails.
"""

from __future__ import annotations

import base64
import json
import os
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pydantic
import pytest
from batch_helpers import client_of, create, line, question, serve, upload, wait_ended
from mcp_server import McpTestServer
from openai.types import Batch
from openai.types.beta.threads import Message
from openai.types.beta.threads.runs import RunStep
from openai.types.chat import ChatCompletion
from openai.types.responses import Response
from openai.types.responses.response_code_interpreter_tool_call import (
    ResponseCodeInterpreterToolCall,
)
from openai.types.responses.response_output_text import AnnotationContainerFileCitation
from openai.types.webhooks import UnwrapWebhookEvent
from pydantic import BaseModel
from sandbox_helpers import admin, wait_until
from test_sandbox_conformance import check, check_op, components, op_schema, raw, validator
from webhook_receiver import Received, Receiver

from runq.sandbox.engine.containers import ContainerPool
from runq.sandbox.server.serve import SandboxServer

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

SECRET = "whsec_" + base64.b64encode(os.urandom(32)).decode()
SALES = Path(__file__).resolve().parents[2] / "examples" / "data" / "sales.csv"
CI_TOOL_AUTO = {"type": "code_interpreter", "container": {"type": "auto"}}
BATCH_STATUSES = {
    "validating",
    "in_progress",
    "finalizing",
    "completed",
    "failed",
    "expired",
    "cancelling",
    "cancelled",
}
# OpenAI's documented result line: https://platform.openai.com/docs/guides/batch (no
# component in the spec); ``response.body`` is checked against the endpoint's own schema.
RESULT_LINE = {
    "type": "object",
    "required": ["id", "custom_id", "response", "error"],
    "additionalProperties": False,
    "properties": {
        "id": {"type": "string", "pattern": "^batch_req_"},
        "custom_id": {"type": "string"},
        "response": {
            "anyOf": [
                {"type": "null"},
                {
                    "type": "object",
                    "required": ["status_code", "request_id", "body"],
                    "additionalProperties": False,
                    "properties": {
                        "status_code": {"type": "integer"},
                        "request_id": {"type": "string"},
                        "body": {"type": "object"},
                    },
                },
            ]
        },
        "error": {
            "anyOf": [
                {"type": "null"},
                {
                    "type": "object",
                    "required": ["code", "message"],
                    "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
                },
            ]
        },
    },
}


def check_allowing_nulls(data: Any, model: Any, schema: str | dict[str, Any], item: str) -> Any:
    """Like :func:`check`, but a ``null`` is allowed where the live API answers one.

    ``item`` names the spec component of the object (``Batch``), whose ``required`` list
    decides: a ``null`` in a required field, or any other error, fails.
    """
    comps = components()
    assert comps is not None
    required = set(comps["schemas"][item].get("required") or [])
    problems = []
    for error in validator(schema).iter_errors(data):
        field = error.path[-1] if error.path else None
        allowed = error.instance is None and field is not None and field not in required
        if not allowed or "is not of type" not in error.message:
            problems.append(f"{list(error.path)}: {error.message[:200]}")
    assert not problems, f"{item}: " + "; ".join(problems)
    return check_type_only(data, model)


def check_type_only(data: Any, model: Any) -> Any:
    """The ``openai`` type half of :func:`check` (a ``null`` there must be optional)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        parsed = pydantic.TypeAdapter(model).validate_python(data)
    if isinstance(parsed, BaseModel):
        fields = type(parsed).model_fields
        missing = [n for n, f in fields.items() if f.is_required() and (f.alias or n) not in data]
        assert not missing, f"{type(parsed).__name__} lacks required {missing}"
    return parsed


# -- servers: batches quick, slow and short-windowed; each announces to one receiver ---------


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with Receiver() as rcv:
        yield rcv


def _hooked(receiver: Receiver, **settings: Any) -> SandboxServer:
    return serve(
        webhook_url=receiver.url,
        webhook_secret=SECRET,
        webhook_retry_base_seconds=0.05,
        **settings,
    )


@pytest.fixture(scope="module")
def quick(receiver: Receiver) -> Iterator[SandboxServer]:
    with _hooked(receiver, batch_time_scale=0.01, latency_ms=50) as srv:
        yield srv


@pytest.fixture(scope="module")
def slow(receiver: Receiver) -> Iterator[SandboxServer]:
    """Batch phases of 0.5 s and more; responses that stay in progress to be cancelled."""
    with _hooked(receiver, batch_time_scale=0.5, latency_ms=60_000) as srv:
        yield srv


@pytest.fixture(scope="module")
def short_window(receiver: Receiver) -> Iterator[SandboxServer]:
    with _hooked(receiver, batch_time_scale=0.2, batch_window_seconds=0.8) as srv:
        yield srv


@pytest.fixture(autouse=True)
def _fresh(request: pytest.FixtureRequest, receiver: Receiver) -> None:
    for name in ("quick", "slow", "short_window"):
        if name in request.fixturenames:
            admin(request.getfixturevalue(name).url, "/sandbox/reset", "POST")
    receiver.clear()


def batch_body(client: openai.OpenAI, batch_id: str) -> dict[str, Any]:
    return raw(client.batches.with_raw_response.retrieve(batch_id))


def check_batch(body: dict[str, Any], path: str = "/batches/{batch_id}") -> Batch:
    parsed: Batch = check_allowing_nulls(body, Batch, op_schema("get", path), "Batch")
    return parsed


def questions(count: int) -> list[dict[str, Any]]:
    return [question(f"q{i}", f"What is {i}+1?") for i in range(count)]


def result_lines(client: openai.OpenAI, file_id: str | None) -> list[dict[str, Any]]:
    if file_id is None:
        return []
    text = client.files.content(file_id).text
    return [json.loads(row) for row in text.splitlines()]


def check_result_line(row: dict[str, Any], endpoint: str) -> None:
    """A result line's envelope, and its body as the endpoint's answer or an error."""
    errors = list(validator(RESULT_LINE).iter_errors(row))
    assert not errors, [e.message for e in errors]
    response = row["response"]
    if response is None:
        assert row["error"] is not None
        return
    if response["status_code"] == 200:
        model = Response if endpoint == "/v1/responses" else ChatCompletion
        check_op(response["body"], model, "post", endpoint.removeprefix("/v1"))
    else:
        check(response["body"], dict, "ErrorResponse")


# -- Batch objects in each status, result lines ----------------------------------------------


def test_every_batch_status_conforms(
    slow: SandboxServer, quick: SandboxServer, short_window: SandboxServer
) -> None:
    seen: dict[str, dict[str, Any]] = {}

    def record(body: dict[str, Any]) -> dict[str, Any]:
        seen.setdefault(body["status"], body)
        return body

    client = client_of(slow)
    walked = create(client, questions(1), metadata={"run": "walk"})
    record(raw(client.batches.with_raw_response.retrieve(walked.id)))
    wait_until(lambda: record(batch_body(client, walked.id)), lambda b: b["status"] == "completed")

    cancelled = create(client, questions(20))
    wait_until(lambda: batch_body(client, cancelled.id), lambda b: b["status"] == "in_progress")
    record(raw(client.batches.with_raw_response.cancel(cancelled.id)))
    wait_until(
        lambda: record(batch_body(client, cancelled.id)), lambda b: b["status"] == "cancelled"
    )

    quick_client = client_of(quick)
    failed = create(quick_client, ["not json"])
    wait_ended(quick_client, failed.id)
    record(batch_body(quick_client, failed.id))

    window_client = client_of(short_window)
    expired = create(window_client, questions(20))
    wait_ended(window_client, expired.id)
    record(batch_body(window_client, expired.id))

    assert set(seen) == BATCH_STATUSES
    for status, body in seen.items():
        parsed = check_batch(body)
        assert parsed.status == status
    assert seen["failed"]["errors"]["data"][0]["line"] == 1
    listed = raw(client.batches.with_raw_response.list())
    check_allowing_nulls(listed, dict, op_schema("get", "/batches"), "Batch")
    for body in listed["data"]:
        check_batch(body)
    created = raw(
        quick_client.batches.with_raw_response.create(
            input_file_id=upload(quick_client, questions(1)),
            endpoint="/v1/responses",
            completion_window="24h",
        )
    )
    check_allowing_nulls(created, Batch, op_schema("post", "/batches"), "Batch")


def test_result_file_lines_conform(quick: SandboxServer, short_window: SandboxServer) -> None:
    client = client_of(quick)
    chat = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    lines = [
        line("ok", chat, "/v1/chat/completions"),
        line("flex", {**chat, "service_tier": "flex"}, "/v1/chat/completions"),
        line("no-messages", {"model": "gpt-4o-mini"}, "/v1/chat/completions"),
    ]
    chats = wait_ended(client, create(client, lines, endpoint="/v1/chat/completions").id)
    assert chats.status == "completed"
    output = result_lines(client, chats.output_file_id)
    errors = result_lines(client, chats.error_file_id)
    assert {row["custom_id"] for row in output} == {"ok", "flex"}
    assert [(row["custom_id"], row["response"]["status_code"]) for row in errors] == [
        ("no-messages", 400)
    ]
    for row in output + errors:
        check_result_line(row, "/v1/chat/completions")

    responses = wait_ended(client, create(client, questions(2)).id)
    for row in result_lines(client, responses.output_file_id):
        check_result_line(row, "/v1/responses")
    check(
        raw(client.files.with_raw_response.retrieve(responses.output_file_id)), dict, "OpenAIFile"
    )

    code = {
        "model": "gpt-4o-mini",
        "input": "```python\nprint(6*7)\n```",
        "tools": [CI_TOOL_AUTO],
        "include": ["code_interpreter_call.outputs"],
    }
    ran = wait_ended(client, create(client, [line("code", code)]).id)
    (row,) = result_lines(client, ran.output_file_id)
    check_result_line(row, "/v1/responses")
    call, answer = row["response"]["body"]["output"]
    assert call["type"] == "code_interpreter_call" and call["outputs"][0]["logs"] == "42\n"
    assert answer["content"][0]["text"] == "I ran the code.\n\n42"

    window_client = client_of(short_window)
    expired = wait_ended(window_client, create(window_client, questions(20)).id)
    late = result_lines(window_client, expired.error_file_id)
    assert late and {row["error"]["code"] for row in late} == {"batch_expired"}
    for row in late + result_lines(window_client, expired.output_file_id):
        check_result_line(row, "/v1/responses")


def test_a_batch_line_calls_its_mcp_server_as_a_live_request_does(quick: SandboxServer) -> None:
    client = client_of(quick)
    with McpTestServer() as mcp:
        tool = {
            "type": "mcp",
            "server_label": "calc",
            "server_url": mcp.url,
            "require_approval": "never",
        }
        body = {"model": "gpt-4o-mini", "input": 'Please add {"a": 2, "b": 40}', "tools": [tool]}
        live = raw(client.responses.with_raw_response.create(**body))
        done = wait_ended(client, create(client, [line("mcp", body)]).id)
    (row,) = result_lines(client, done.output_file_id)
    check_result_line(row, "/v1/responses")
    batched = row["response"]["body"]
    kinds = [item["type"] for item in batched["output"]]
    assert (
        kinds
        == [item["type"] for item in live["output"]]
        == [
            "mcp_list_tools",
            "mcp_call",
            "message",
        ]
    )
    assert batched["output"][1]["output"] == live["output"][1]["output"] == "42"


# -- Containers, code interpreter items and citations ----------------------------------------


def test_container_objects_conform(quick: SandboxServer) -> None:
    client = client_of(quick)
    file_id = client.files.create(file=("sales.csv", SALES.read_bytes()), purpose="user_data").id
    created = raw(client.containers.with_raw_response.create(name="a", file_ids=[file_id]))
    check(created, dict, "ContainerResource")
    cid = created["id"]
    check(raw(client.containers.with_raw_response.list()), dict, "ContainerListResource")
    files = raw(client.containers.files.with_raw_response.list(cid))
    check(files, dict, "ContainerFileListResource")
    for one in files["data"]:
        check(one, dict, "ContainerFileResource")
    empty = raw(client.containers.with_raw_response.create(name="empty"))
    page = raw(client.containers.files.with_raw_response.list(empty["id"]))
    assert page["data"] == [] and page["has_more"] is False
    # An empty page's cursors are null, as everywhere else (see the empty-pages test).
    errors = {
        (tuple(e.path), e.message) for e in validator("ContainerFileListResource").iter_errors(page)
    }
    assert errors == {
        (("first_id",), "None is not of type 'string'"),
        (("last_id",), "None is not of type 'string'"),
    }

    pool: ContainerPool = quick.app.state.sandbox.containers
    pool.containers[cid].last_active_at -= 21 * 60
    expired = raw(client.containers.with_raw_response.retrieve(cid))
    assert expired["status"] == "expired"
    check_op(expired, dict, "get", "/containers/{container_id}")
    deleted = client.containers.with_raw_response.delete(empty["id"])
    assert deleted.status_code == 200
    assert deleted.http_response.json() == {
        "id": empty["id"],
        "object": "container.deleted",
        "deleted": True,
    }


def test_code_interpreter_items_and_citations_conform(quick: SandboxServer) -> None:
    client = client_of(quick)
    file_id = client.files.create(file=("sales.csv", SALES.read_bytes()), purpose="user_data").id
    tools = [{"type": "code_interpreter", "container": {"type": "auto", "file_ids": [file_id]}}]
    with_outputs = raw(
        client.responses.with_raw_response.create(
            model="gpt-4o-mini",
            input="Plot monthly sales",
            tools=tools,  # type: ignore[arg-type]
            include=["code_interpreter_call.outputs"],
        )
    )
    check(with_outputs, Response, "Response")
    call, message = with_outputs["output"]
    parsed = check(call, ResponseCodeInterpreterToolCall, "CodeInterpreterToolCall")
    assert [o.type for o in parsed.outputs] == ["logs", "image"]
    for output in call["outputs"]:
        name = (
            "CodeInterpreterOutputLogs"
            if output["type"] == "logs"
            else "CodeInterpreterOutputImage"
        )
        check(output, dict, name)
    (citation,) = message["content"][0]["annotations"]
    check(citation, AnnotationContainerFileCitation, "ContainerFileCitationBody")

    without = raw(
        client.responses.with_raw_response.create(
            model="gpt-4o-mini",
            input="Describe this data",
            tools=[{"type": "code_interpreter", "container": call["container_id"]}],
        )
    )
    check(without, Response, "Response")
    assert without["output"][0]["outputs"] is None
    check(without["output"][0], ResponseCodeInterpreterToolCall, "CodeInterpreterToolCall")

    history = [{"role": "user", "content": "Plot monthly sales"}, call, message]
    history.append({"role": "user", "content": "```python\nprint(2)\n```"})
    follow = client.responses.create(model="gpt-4o-mini", input=history, tools=tools)  # type: ignore[arg-type]
    items = raw(client.responses.input_items.with_raw_response.list(follow.id, order="asc"))
    check_op(items, dict, "get", "/responses/{response_id}/input_items")
    # Every item the request carried is listed, in order, each with an id: the ones sent
    # back keep theirs (the code interpreter call keeps its container and outputs).
    listed = items["data"]
    kinds = [item["type"] for item in listed]
    assert kinds == ["message", "code_interpreter_call", "message", "message"]
    assert all(item["id"] for item in listed)
    assert listed[1] == call
    assert listed[2]["id"] == message["id"]
    assert listed[2]["content"][0]["text"] == message["content"][0]["text"]
    assert listed[3]["content"] == [{"type": "input_text", "text": "```python\nprint(2)\n```"}]
    assert (items["first_id"], items["last_id"]) == (listed[0]["id"], listed[3]["id"])

    conversation = client.conversations.create()
    client.responses.create(
        model="gpt-4o-mini",
        input="```python\nprint(1)\n```",
        tools=[CI_TOOL_AUTO],  # type: ignore[list-item]
        conversation=conversation.id,
    )
    stored = raw(client.conversations.items.with_raw_response.list(conversation.id))
    check_op(stored, dict, "get", "/conversations/{conversation_id}/items")
    assert [item["type"] for item in stored["data"]].count("code_interpreter_call") == 1


def test_input_items_list_every_item_in_order(client: openai.OpenAI) -> None:
    """``input_items`` lists function calls, their outputs and a referenced item (as the
    item it names) besides messages, each with an id, as OpenAI does."""
    first = client.responses.create(model="gpt-4o-mini", input="Say hello")
    answer = first.output[-1]
    call = {"type": "function_call", "call_id": "call_1", "name": "lookup", "arguments": "{}"}
    output = {"type": "function_call_output", "call_id": "call_1", "output": "42"}
    follow = client.responses.create(
        model="gpt-4o-mini",
        input=[  # type: ignore[list-item]
            {"type": "item_reference", "id": answer.id},
            {"role": "user", "content": "Look it up"},
            call,
            output,
        ],
    )
    items = raw(client.responses.input_items.with_raw_response.list(follow.id, order="asc"))
    check_op(items, dict, "get", "/responses/{response_id}/input_items")
    listed = items["data"]
    kinds = [item["type"] for item in listed]
    assert kinds == ["message", "message", "function_call", "function_call_output"]
    assert listed[0] == first.model_dump(mode="json", exclude_unset=True)["output"][-1]
    assert listed[2]["id"].startswith("fc_") and listed[3]["id"].startswith("fco_")
    assert {k: listed[2][k] for k in call} == call
    assert {k: listed[3][k] for k in output} == output
    assert len({item["id"] for item in listed}) == 4


def test_assistants_code_interpreter_steps_and_image_file_conform(quick: SandboxServer) -> None:
    client = client_of(quick)
    file_id = client.files.create(file=("sales.csv", SALES.read_bytes()), purpose="assistants").id
    assistant = client.beta.assistants.create(
        model="gpt-4o-mini",
        tools=[{"type": "code_interpreter"}],
        tool_resources={"code_interpreter": {"file_ids": [file_id]}},
    )
    thread = client.beta.threads.create(
        messages=[{"role": "user", "content": "Plot monthly sales as a bar chart"}]
    )
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id)
    assert run.status == "completed"
    steps = raw(client.beta.threads.runs.steps.with_raw_response.list(run.id, thread_id=thread.id))
    check_op(steps, dict, "get", "/threads/{thread_id}/runs/{run_id}/steps")
    code_step = next(s for s in steps["data"] if s["type"] == "tool_calls")
    step = raw(
        client.beta.threads.runs.steps.with_raw_response.retrieve(
            code_step["id"], thread_id=thread.id, run_id=run.id
        )
    )
    check_op(step, RunStep, "get", "/threads/{thread_id}/runs/{run_id}/steps/{step_id}")
    (tool_call,) = step["step_details"]["tool_calls"]
    check(tool_call, dict, "RunStepDetailsToolCallsCodeObject")
    kinds = {"logs": "Logs", "image": "Image"}
    for output in tool_call["code_interpreter"]["outputs"]:
        check(output, dict, f"RunStepDetailsToolCallsCodeOutput{kinds[output['type']]}Object")

    messages = raw(client.beta.threads.messages.with_raw_response.list(thread.id))
    check_op(messages, dict, "get", "/threads/{thread_id}/messages")
    answer = check(messages["data"][0], Message, "MessageObject")
    image = messages["data"][0]["content"][0]
    assert answer.content[0].type == "image_file"
    check(image, dict, "MessageContentImageFileObject")
    one = raw(
        client.beta.threads.messages.with_raw_response.retrieve(answer.id, thread_id=thread.id)
    )
    check_op(one, Message, "get", "/threads/{thread_id}/messages/{message_id}")


# -- service tiers ---------------------------------------------------------------------------


@pytest.mark.parametrize("tier", ["auto", "default", "flex", "priority"])
def test_responses_and_chat_with_each_service_tier_conform(quick: SandboxServer, tier: str) -> None:
    client = client_of(quick)
    body = raw(
        client.responses.with_raw_response.create(
            model="gpt-4o-mini",
            input="hi",
            service_tier=tier,  # type: ignore[arg-type]
        )
    )
    check_op(body, Response, "post", "/responses")
    assert body["service_tier"] == ("default" if tier == "auto" else tier)
    queued = raw(
        client.responses.with_raw_response.create(
            model="gpt-4o-mini",
            input="hi",
            service_tier=tier,  # type: ignore[arg-type]
            background=True,
        )
    )
    check_op(queued, Response, "post", "/responses")
    chat = raw(
        client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "hi"}],
            service_tier=tier,  # type: ignore[arg-type]
        )
    )
    check_op(chat, ChatCompletion, "post", "/chat/completions")


# -- webhook payloads ------------------------------------------------------------------------


def webhook_schema(event_type: str) -> str:
    """``response.completed`` -> ``WebhookResponseCompleted`` (the spec's component)."""
    return "Webhook" + "".join(
        part.capitalize() for part in event_type.replace(".", "_").split("_")
    )


def deliveries_for(receiver: Receiver, ids: set[str]) -> list[Received]:
    got = receiver.wait_for(lambda ds: ids <= {d.event["data"]["id"] for d in ds}, timeout=20)
    return [d for d in got if d.event["data"]["id"] in ids]


def test_every_webhook_payload_conforms(
    quick: SandboxServer, slow: SandboxServer, short_window: SandboxServer, receiver: Receiver
) -> None:
    client, slow_client = client_of(quick), client_of(slow)
    window_client = client_of(short_window)
    ids: dict[str, str] = {}
    for fault in (None, "failed", "incomplete"):
        headers = {"x-sandbox-fault": fault} if fault else None
        response = client.responses.create(
            model="gpt-4o-mini", input="hi", background=True, extra_headers=headers
        )
        ids[response.id] = f"response.{fault or 'completed'}"
    held = slow_client.responses.create(model="gpt-4o-mini", input="hi", background=True)
    slow_client.responses.cancel(held.id)
    ids[held.id] = "response.cancelled"
    ids[create(client, questions(1)).id] = "batch.completed"
    ids[create(client, ["not json"]).id] = "batch.failed"
    ids[create(window_client, questions(20)).id] = "batch.expired"
    cancelled = create(slow_client, questions(3))
    slow_client.batches.cancel(cancelled.id)
    ids[cancelled.id] = "batch.cancelled"

    got = deliveries_for(receiver, set(ids))
    assert {d.event["data"]["id"]: d.event["type"] for d in got} == ids
    for delivery in got:
        event = delivery.event
        check(event, UnwrapWebhookEvent, webhook_schema(event["type"]))
        unwrapped = client.webhooks.unwrap(delivery.body, delivery.headers, secret=SECRET)
        assert unwrapped.type == event["type"] and unwrapped.id == event["id"]
        assert abs(event["created_at"] - time.time()) < 120


# -- refusals, as the spec bounds them -------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "param", "message"),
    [
        ({"completion_window": "48h"}, "completion_window", "Supported values are: '24h'."),
        (
            {"output_expires_after": {"anchor": "created_at", "seconds": 10}},
            "output_expires_after.seconds",
            "Expected a value >= 3600",
        ),
        (
            {"output_expires_after": {"anchor": "created_at", "seconds": 31 * 24 * 3600}},
            "output_expires_after.seconds",
            "Expected a value <= 2592000",
        ),
        (
            {"output_expires_after": {"anchor": "last_active_at", "seconds": 3600}},
            "output_expires_after.anchor",
            "Supported values are: 'created_at'.",
        ),
        ({"output_expires_after": {"seconds": 3600}}, "output_expires_after.anchor", "Missing"),
        ({"output_expires_after": "1h"}, "output_expires_after", "expected an object"),
    ],
)
def test_batch_create_refusals_conform(
    quick: SandboxServer, extra: dict[str, Any], param: str, message: str
) -> None:
    client = client_of(quick)
    body = {
        "input_file_id": upload(client, questions(1)),
        "endpoint": "/v1/responses",
        "completion_window": "24h",
        **extra,
    }
    with pytest.raises(openai.BadRequestError) as refused:
        client.post("/batches", body=body, cast_to=Batch)
    error = refused.value.response.json()
    check(error, dict, "ErrorResponse")
    assert error["error"]["param"] == param
    assert message in error["error"]["message"]
    kept = {"anchor": "created_at", "seconds": 3600}
    accepted = client.batches.create(
        input_file_id=body["input_file_id"],
        endpoint="/v1/responses",
        completion_window="24h",
        output_expires_after=kept,  # type: ignore[arg-type]
    )
    assert accepted.status in BATCH_STATUSES
