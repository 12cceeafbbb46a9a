"""The ``openai`` package's helpers against the sandbox: ``parse``, ``stream``,
``*_and_poll``, auto-paging and ``with_raw_response``.

The conformance suite checks the raw shapes; these check that the helpers built on them
work end to end, as an application uses them.
"""

from __future__ import annotations

import json

import openai
import pytest
from clients_helpers import FACTS, MODEL, City

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # Assistants


@pytest.fixture
def client(base_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=base_url, api_key="sk-test", max_retries=0, timeout=10)


def test_parse_helpers(client: openai.OpenAI) -> None:
    expected = City(name="Paris", population=2100000, country="France")
    parsed = client.responses.parse(model=MODEL, input=FACTS, text_format=City)
    assert parsed.output_parsed == expected
    chat = client.chat.completions.parse(
        model=MODEL, messages=[{"role": "user", "content": FACTS}], response_format=City
    )
    assert chat.choices[0].message.parsed == expected


def test_stream_helpers(client: openai.OpenAI) -> None:
    with client.responses.stream(model=MODEL, input="hello") as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == final.output_text == "Echo: hello"
    with client.chat.completions.stream(
        model=MODEL, messages=[{"role": "user", "content": FACTS}], response_format=City
    ) as chat:
        kinds = {event.type for event in chat}
        done = chat.get_final_completion()
    assert "content.delta" in kinds and done.choices[0].message.parsed is not None


def test_and_poll_helpers(client: openai.OpenAI) -> None:
    beta = client.beta
    script = json.dumps([[{"name": "lookup", "arguments": {"id": 7}}]])
    assistant = beta.assistants.create(
        model=MODEL,
        tools=[{"type": "function", "function": {"name": "lookup", "parameters": {}}}],
        metadata={"sandbox_script": script},
    )
    thread = beta.threads.create(messages=[{"role": "user", "content": "look it up"}])
    run = beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=20
    )
    assert run.status == "requires_action"
    call = run.required_action.submit_tool_outputs.tool_calls[0]  # type: ignore[union-attr]
    done = beta.threads.runs.submit_tool_outputs_and_poll(
        run_id=run.id,
        thread_id=thread.id,
        tool_outputs=[{"tool_call_id": call.id, "output": "found"}],
        poll_interval_ms=20,
    )
    assert done.status == "completed"
    answer = beta.threads.messages.list(thread.id).data[0]
    assert answer.content[0].text.value == "Tool results: lookup: found"  # type: ignore[union-attr]


def test_auto_paging(client: openai.OpenAI) -> None:
    conversation = client.conversations.create()
    for start in range(0, 45, 15):
        client.conversations.items.create(
            conversation.id,
            items=[
                {"type": "message", "role": "user", "content": f"note {i}"}
                for i in range(start, start + 15)
            ],
        )
    pages = client.conversations.items.list(conversation.id, limit=10, order="asc")
    texts = [item.content[0].text for item in pages]  # type: ignore[union-attr]
    assert texts == [f"note {i}" for i in range(45)]
    stored = [
        client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": f"q{i}"}], store=True
        ).id
        for i in range(5)
    ]
    listed = [c.id for c in client.chat.completions.list(limit=2, model=MODEL)]
    assert listed[-5:] == stored


def test_with_raw_response(client: openai.OpenAI) -> None:
    raw = client.responses.with_raw_response.create(model=MODEL, input="hi")
    assert raw.headers["x-request-id"].startswith("req_")
    assert raw.headers["x-ratelimit-limit-requests"]
    assert raw.parse().output_text == "Echo: hi"
    assert raw.request_id == raw.headers["x-request-id"]
    with client.responses.with_streaming_response.create(model=MODEL, input="hi") as streamed:
        assert json.loads(streamed.read())["status"] == "completed"
