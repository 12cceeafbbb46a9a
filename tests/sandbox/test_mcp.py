"""The sandbox's mcp tool through the official ``openai`` client over HTTP, calling a
real MCP server (the ``mcp`` package's MCPServer over streamable HTTP, in a thread).

The sandbox lists the server's tools (filtered by ``allowed_tools``), calls the one the
model picks (``mcp_call`` with its output), or asks for approval first and continues
after an ``mcp_approval_response``; a server that is down, or a tool that fails, is an
error in the items, never a 500. The tool's headers reach its server.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from mcp_server import McpTestServer
from openai.types.responses import Response
from sandbox_helpers import is_terminal, wait_until
from test_sandbox_conformance import check, check_response_events, raw, sse

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def mcp_server() -> Iterator[McpTestServer]:
    with McpTestServer() as srv:
        yield srv


def _tool(url: str, **extra: Any) -> dict[str, Any]:
    return {"type": "mcp", "server_label": "calc", "server_url": url, **extra}


def _types(response: Response) -> list[str]:
    return [item.type for item in response.output]


def test_lists_the_allowed_tools_and_calls_the_named_one(
    client: openai.OpenAI, mcp_server: McpTestServer
) -> None:
    body = raw(
        client.responses.with_raw_response.create(
            model="gpt-4o-mini",
            input='Please add {"a": 2, "b": 40}',
            tools=[_tool(mcp_server.url, allowed_tools=["add", "shout"], require_approval="never")],
        )
    )
    response = check(body, Response, "Response")
    assert _types(response) == ["mcp_list_tools", "mcp_call", "message"]
    listing, call, message = response.output
    assert listing.server_label == "calc" and listing.error is None
    assert [t.name for t in listing.tools] == ["add", "shout"]  # not `fail`
    assert listing.tools[0].input_schema["required"] == ["a", "b"]
    assert listing.tools[1].annotations == {"readOnlyHint": True}
    assert call.name == "add" and json.loads(call.arguments) == {"a": 2, "b": 40}
    assert call.output == "42" and call.error is None and call.status == "completed"
    assert message.content[0].text == "Tool results: add: 42"


def test_no_tool_named_answers_after_the_list_and_the_list_is_not_repeated(
    client: openai.OpenAI, mcp_server: McpTestServer
) -> None:
    tool = _tool(mcp_server.url, require_approval="never")
    first = client.responses.create(model="gpt-4o-mini", input="hello there", tools=[tool])
    assert _types(first) == ["mcp_list_tools", "message"]
    assert [t.name for t in first.output[0].tools] == ["add", "shout", "fail"]
    assert first.output[1].content[0].text == "Echo: hello there"
    then = client.responses.create(
        model="gpt-4o-mini",
        input='now shout {"text": "hi"}',
        tools=[tool],
        previous_response_id=first.id,
    )
    assert _types(then) == ["mcp_call", "message"]  # the earlier list is in the context
    assert then.output[0].output == "HI!"


def test_approval_request_then_approval_response_continues(
    client: openai.OpenAI, mcp_server: McpTestServer
) -> None:
    tool = _tool(mcp_server.url, require_approval={"never": {"read_only": True}})
    asked = check(
        raw(
            client.responses.with_raw_response.create(
                model="gpt-4o-mini", input='add {"a": 1, "b": 2}', tools=[tool]
            )
        ),
        Response,
        "Response",
    )
    assert _types(asked) == ["mcp_list_tools", "mcp_approval_request"]  # the response ends
    request = asked.output[1]
    assert request.server_label == "calc" and request.name == "add"
    assert json.loads(request.arguments) == {"a": 1, "b": 2}
    approved = client.responses.create(
        model="gpt-4o-mini",
        previous_response_id=asked.id,
        tools=[tool],
        input=[
            {"type": "mcp_approval_response", "approval_request_id": request.id, "approve": True}
        ],
    )
    assert _types(approved) == ["mcp_call", "message"]
    call = approved.output[0]
    assert call.output == "3" and call.approval_request_id == request.id
    (listed,) = client.responses.input_items.list(approved.id).data  # given an id, as OpenAI does
    assert listed.type == "mcp_approval_response" and listed.id.startswith("mcpr_")
    assert (listed.approval_request_id, listed.approve) == (request.id, True)
    # `shout` is read-only: the filter lets it run without asking.
    direct = client.responses.create(
        model="gpt-4o-mini", input='shout {"text": "ok"}', tools=[tool]
    )
    assert _types(direct) == ["mcp_list_tools", "mcp_call", "message"]


def test_a_denied_request_is_not_called_and_an_unknown_one_is_refused(
    client: openai.OpenAI, mcp_server: McpTestServer
) -> None:
    tool = _tool(mcp_server.url)  # require_approval defaults to "always"
    asked = client.responses.create(model="gpt-4o-mini", input='shout {"text": "x"}', tools=[tool])
    request_id = asked.output[-1].id
    denied = client.responses.create(
        model="gpt-4o-mini",
        previous_response_id=asked.id,
        tools=[tool],
        input=[
            {
                "type": "mcp_approval_response",
                "approval_request_id": request_id,
                "approve": False,
                "reason": "not today",
            }
        ],
    )
    assert _types(denied) == ["message"]
    assert (
        denied.output[0].content[0].text == "The call of shout on calc was not approved: not today"
    )
    with pytest.raises(openai.BadRequestError) as bad:
        client.responses.create(
            model="gpt-4o-mini",
            previous_response_id=asked.id,
            tools=[tool],
            input=[
                {
                    "type": "mcp_approval_response",
                    "approval_request_id": "mcpr_nope",
                    "approve": True,
                }
            ],
        )
    assert bad.value.body["param"] == "input[0].approval_request_id"


def test_the_script_channel_and_a_tool_that_fails(
    client: openai.OpenAI, mcp_server: McpTestServer
) -> None:
    script = {"server_label": "calc", "name": "fail", "arguments": {}}
    response = client.responses.create(
        model="gpt-4o-mini",
        input="anything",
        tools=[_tool(mcp_server.url, require_approval="never")],
        metadata={"sandbox_mcp": json.dumps(script)},
    )
    call = response.output[1]
    assert call.type == "mcp_call" and call.status == "failed" and call.output is None
    assert call.error is not None and call.error.model_dump() == {
        "type": "mcp_tool_execution_error",
        "content": [{"type": "text", "text": "Error executing tool fail"}],
    }
    with pytest.raises(openai.BadRequestError) as bad:  # a tool allowed_tools leaves out
        client.responses.create(
            model="gpt-4o-mini",
            input="anything",
            tools=[_tool(mcp_server.url, allowed_tools=["add"], require_approval="never")],
            metadata={"sandbox_mcp": json.dumps(script)},
        )
    assert "offers no tool 'fail'" in bad.value.body["message"]


def test_headers_reach_their_server_only(client: openai.OpenAI, mcp_server: McpTestServer) -> None:
    before = len(mcp_server.seen_headers)
    with McpTestServer() as other:
        client.responses.create(
            model="gpt-4o-mini",
            input="hello",
            tools=[
                _tool(mcp_server.url, headers={"X-Calc-Key": "k-123"}, require_approval="never"),
                {**_tool(other.url), "server_label": "other"},
            ],
        )
    seen = mcp_server.seen_headers[before:]
    assert seen and all(h.get("x-calc-key") == "k-123" for h in seen)
    assert all("authorization" not in h for h in seen)  # nothing of the caller's leaks
    assert other.seen_headers and all("x-calc-key" not in h for h in other.seen_headers)


def test_a_down_server_is_an_error_item_not_a_500(client: openai.OpenAI) -> None:
    with McpTestServer() as gone:
        url = gone.url
    script = json.dumps({"name": "add", "arguments": {"a": 1, "b": 2}})
    response = client.responses.create(
        model="gpt-4o-mini",
        input="add them",
        tools=[_tool(url, require_approval="never")],
        metadata={"sandbox_mcp": script},
    )
    assert response.status == "completed"
    listing, call, message = response.output
    assert listing.type == "mcp_list_tools" and listing.tools == []
    assert "Could not reach the MCP server" in listing.error
    assert call.status == "failed" and call.error is not None
    assert call.error.model_dump() == {"type": "http_error", "code": 502, "message": listing.error}
    assert message.content[0].text.startswith("The tool add on calc failed")


def test_approved_call_on_a_server_that_went_down(client: openai.OpenAI) -> None:
    with McpTestServer() as srv:
        tool = _tool(srv.url)
        asked = client.responses.create(
            model="gpt-4o-mini", input='add {"a": 1, "b": 2}', tools=[tool]
        )
    approved = client.responses.create(
        model="gpt-4o-mini",
        previous_response_id=asked.id,
        tools=[tool],
        input=[
            {
                "type": "mcp_approval_response",
                "approval_request_id": asked.output[-1].id,
                "approve": True,
            }
        ],
    )
    call = approved.output[0]
    assert call.type == "mcp_call" and call.status == "failed"
    assert call.error is not None and call.error.type == "http_error"


def test_bad_tools_are_400s_naming_the_parameter(client: openai.OpenAI) -> None:
    for tool, param in [
        (
            {"type": "mcp", "server_label": "x", "server_url": "file:///etc/passwd"},
            "tools[0].server_url",
        ),
        (
            {"type": "mcp", "server_label": "bad label", "server_url": "http://127.0.0.1:9/"},
            "tools[0].server_label",
        ),
    ]:
        with pytest.raises(openai.BadRequestError) as bad:
            client.responses.create(model="gpt-4o-mini", input="x", tools=[tool])
        assert bad.value.body["param"] == param


def test_background_and_stream(client: openai.OpenAI, mcp_server: McpTestServer) -> None:
    tool = _tool(mcp_server.url, require_approval="never")
    started = client.responses.create(
        model="gpt-4o-mini", input='add {"a": 5, "b": 5}', tools=[tool], background=True
    )
    done = wait_until(lambda: client.responses.retrieve(started.id), is_terminal)
    assert _types(done) == ["mcp_list_tools", "mcp_call", "message"]
    assert done.output[1].output == "10"
    body = {
        "model": "gpt-4o-mini",
        "input": 'add {"a": 5, "b": 6}',
        "tools": [tool],
        "stream": True,
    }
    events = check_response_events(sse(client, "POST", "/responses", body))
    kinds = [e["type"] for e in events]
    assert [k for k in kinds if k.startswith("response.mcp")] == [
        "response.mcp_list_tools.in_progress",
        "response.mcp_list_tools.completed",
        "response.mcp_call.in_progress",
        "response.mcp_call_arguments.delta",
        "response.mcp_call_arguments.done",
        "response.mcp_call.completed",
    ]
    assert events[-1]["response"]["output"][1]["output"] == "11"


def test_with_web_search_and_no_tool_named_the_model_searches_after_the_list(
    client: openai.OpenAI, mcp_server: McpTestServer
) -> None:
    response = client.responses.create(
        model="gpt-4o-mini",
        input="What are template strings in Python 3.14?",
        tools=[_tool(mcp_server.url, require_approval="never"), {"type": "web_search"}],
    )
    assert _types(response) == ["mcp_list_tools", "web_search_call", "message"]
    notes = response.output[2].content[0].annotations
    assert notes and notes[0].url == "https://docs.example.com/python/whats-new-3-14"
