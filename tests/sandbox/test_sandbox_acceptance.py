"""The issue's acceptance flows, end to end with the official client."""

from __future__ import annotations

import json

import openai
import pytest
from sandbox_helpers import is_terminal, wait_until

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # Assistants is deprecated

WEATHER = {
    "type": "object",
    "properties": {
        "city": {"type": "string"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        "days": {"type": "integer"},
    },
    "required": ["city"],
}
SCRIPT = json.dumps(
    [
        [
            {"name": "get_weather", "arguments": {"city": "Paris"}},
            {"name": "get_weather", "arguments": {"city": "Rome"}},
        ],
        [{"name": "get_weather", "arguments": {"city": "Oslo"}}],
    ]
)
DOCS = {
    "thermostat.md": b"# Thermostat\n\nThe thermostat warranty lasts five years from purchase. "
    b"Reset it by holding the dial for ten seconds.",
    "filters.html": b"<html><body><p>Air filters must be replaced every three months.</p>"
    b"<p>Use only MERV 8 filters.</p></body></html>",
    "garden.json": json.dumps(
        {"sprinkler": {"schedule": "The sprinkler runs at dawn daily"}}
    ).encode(),
}


def test_function_call_round_trip_with_previous_response_id(client: openai.OpenAI) -> None:
    tools = [
        {
            "type": "function",
            "name": "get_weather",
            "description": "Weather forecast",
            "parameters": WEATHER,
        }
    ]
    first = client.responses.create(
        model="gpt-4o-mini",
        input="What's the weather in Paris in celsius for 3 days?",
        tools=tools,
    )
    call = first.output[0]
    assert call.type == "function_call"
    assert call.name == "get_weather"
    assert json.loads(call.arguments) == {"city": "Paris", "unit": "celsius", "days": 3}
    second = client.responses.create(
        model="gpt-4o-mini",
        previous_response_id=first.id,
        tools=tools,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "21C"}],
    )
    assert second.output_text == "Tool results: get_weather: 21C"


def test_scripted_two_parallel_calls_then_one_on_responses(client: openai.OpenAI) -> None:
    tools = [{"type": "function", "name": "get_weather", "parameters": WEATHER}]
    r1 = client.responses.create(
        model="gpt-4o-mini", input="go", tools=tools, metadata={"sandbox_script": SCRIPT}
    )
    calls = [o for o in r1.output if o.type == "function_call"]
    assert [json.loads(c.arguments)["city"] for c in calls] == ["Paris", "Rome"]
    r2 = client.responses.create(
        model="gpt-4o-mini",
        previous_response_id=r1.id,
        tools=tools,
        metadata={"sandbox_script": SCRIPT},
        input=[
            {"type": "function_call_output", "call_id": c.call_id, "output": c.call_id[-4:]}
            for c in calls
        ],
    )
    assert [json.loads(o.arguments)["city"] for o in r2.output] == ["Oslo"]
    r3 = client.responses.create(
        model="gpt-4o-mini",
        previous_response_id=r2.id,
        tools=tools,
        metadata={"sandbox_script": SCRIPT},
        input=[{"type": "function_call_output", "call_id": r2.output[0].call_id, "output": "4C"}],
    )
    assert r3.output_text.startswith("Tool results: get_weather:")
    assert r3.output_text.endswith("get_weather: 4C")


def test_scripted_rounds_on_chat_completions(client: openai.OpenAI) -> None:
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": WEATHER}}]
    messages: list = [
        {"role": "system", "content": f"sandbox_script: {SCRIPT}"},
        {"role": "user", "content": "go"},
    ]
    first = client.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=tools)
    assert first.choices[0].finish_reason == "tool_calls"
    calls = first.choices[0].message.tool_calls
    assert [json.loads(c.function.arguments)["city"] for c in calls] == ["Paris", "Rome"]
    messages.append(first.choices[0].message.model_dump(exclude_none=True))
    messages += [{"role": "tool", "tool_call_id": c.id, "content": "ok"} for c in calls]
    second = client.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=tools)
    assert [
        json.loads(c.function.arguments)["city"] for c in second.choices[0].message.tool_calls
    ] == ["Oslo"]


def test_chat_stream_ends_with_usage(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "hello stream"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Echo: hello stream"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


def test_background_stream_resumed_after_dropped_connection(client: openai.OpenAI) -> None:
    stream = client.responses.create(
        model="gpt-4o-mini", input="resume me please", background=True, stream=True
    )
    seen = []
    for event in stream:
        seen.append(event)
        if event.type == "response.output_text.delta":
            break
    stream.close()  # the connection drops mid-stream
    last = seen[-1].sequence_number
    resumed = list(client.responses.retrieve(seen[0].response.id, stream=True, starting_after=last))
    assert resumed[0].sequence_number == last + 1
    assert resumed[-1].type == "response.completed"
    numbers = [e.sequence_number for e in seen + resumed]
    assert numbers == list(range(len(numbers)))
    deltas = "".join(e.delta for e in seen + resumed if e.type == "response.output_text.delta")
    assert deltas == "Echo: resume me please"


def test_assistants_flow_with_tool_outputs(client: openai.OpenAI) -> None:
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": WEATHER}}]
    assistant = client.beta.assistants.create(
        model="gpt-4o-mini", tools=tools, metadata={"sandbox_script": SCRIPT}
    )
    thread = client.beta.threads.create()
    client.beta.threads.messages.create(thread.id, role="user", content="forecast please")
    run = client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id)
    with pytest.raises(openai.BadRequestError, match="while a run"):
        client.beta.threads.messages.create(thread.id, role="user", content="again")
    for expected in (2, 1):
        run = wait_until(
            lambda r=run: client.beta.threads.runs.retrieve(r.id, thread_id=thread.id),
            lambda r: r.status not in ("queued", "in_progress"),
        )
        assert run.status == "requires_action"
        calls = run.required_action.submit_tool_outputs.tool_calls
        assert len(calls) == expected
        run = client.beta.threads.runs.submit_tool_outputs(
            run_id=run.id,
            thread_id=thread.id,
            tool_outputs=[{"tool_call_id": c.id, "output": "mild"} for c in calls],
        )
    run = wait_until(
        lambda: client.beta.threads.runs.retrieve(run.id, thread_id=thread.id),
        lambda r: r.status not in ("queued", "in_progress"),
    )
    assert run.status == "completed"
    messages = client.beta.threads.messages.list(thread.id, order="asc")
    assert [m.role for m in messages] == ["user", "assistant"]
    assert messages.data[1].content[0].text.value.count("get_weather: mild") == 3
    steps = client.beta.threads.runs.steps.list(run.id, thread_id=thread.id, order="asc")
    assert [s.type for s in steps] == ["tool_calls", "tool_calls", "message_creation"]


def test_vector_store_of_three_files_answers_with_citation(client: openai.OpenAI) -> None:
    ids = {
        name: client.files.create(file=(name, data), purpose="assistants").id
        for name, data in DOCS.items()
    }
    store = client.vector_stores.create(name="home", file_ids=list(ids.values()))
    wait_until(lambda: client.vector_stores.retrieve(store.id), lambda s: s.status == "completed")
    assert client.vector_stores.retrieve(store.id).file_counts.completed == 3
    answer = client.responses.create(
        model="gpt-4o-mini",
        input="How often must the air filters be replaced?",
        tools=[{"type": "file_search", "vector_store_ids": [store.id]}],
    )
    assert answer.output[0].type == "file_search_call"
    assert "every three months" in answer.output_text
    citations = answer.output[1].content[0].annotations
    assert {(c.file_id, c.filename) for c in citations} == {(ids["filters.html"], "filters.html")}
    miss = client.responses.create(
        model="gpt-4o-mini",
        input="What is the capital of Mars colony?",
        tools=[{"type": "file_search", "vector_store_ids": [store.id]}],
    )
    assert miss.output_text.startswith("I could not find")
    # the same store through Assistants: citations in the Assistants format
    assistant = client.beta.assistants.create(
        model="gpt-4o-mini",
        tools=[{"type": "file_search"}],
        tool_resources={"file_search": {"vector_store_ids": [store.id]}},
    )
    run = client.beta.threads.create_and_run(
        assistant_id=assistant.id,
        thread={"messages": [{"role": "user", "content": "How long is the thermostat warranty?"}]},
    )
    wait_until(
        lambda: client.beta.threads.runs.retrieve(run.id, thread_id=run.thread_id), is_terminal_run
    )
    message = client.beta.threads.messages.list(run.thread_id).data[0]
    text = message.content[0].text
    assert "five years" in text.value
    ann = text.annotations[0]
    assert ann.file_citation.file_id == ids["thermostat.md"]
    assert text.value[ann.start_index : ann.end_index] == ann.text


def is_terminal_run(run: object) -> bool:
    return getattr(run, "status", None) not in ("queued", "in_progress", "cancelling")


def test_background_poll_reaches_terminal(client: openai.OpenAI) -> None:
    created = client.responses.create(model="gpt-4o-mini", input="x", background=True)
    assert is_terminal(wait_until(lambda: client.responses.retrieve(created.id), is_terminal))


def test_text_files_ingest_in_the_encodings_file_search_reads(client: openai.OpenAI) -> None:
    """utf-8 (with or without BOM) and utf-16 are read; other bytes fail ingestion, named."""
    sentence = "The boiler pressure must stay near 1.5 bar."
    files = {
        "utf8.txt": sentence.encode("utf-8"),
        "bom.md": sentence.encode("utf-8-sig"),
        "wide.txt": sentence.encode("utf-16"),
        "latin.txt": "Résumé of the pressure rules: 1.5 bar.".encode("latin-1"),
    }
    ids = {n: client.files.create(file=(n, d), purpose="assistants").id for n, d in files.items()}
    store = client.vector_stores.create(name="encodings", file_ids=list(ids.values()))
    wait_until(lambda: client.vector_stores.retrieve(store.id), lambda s: s.status == "completed")
    counts = client.vector_stores.retrieve(store.id).file_counts
    assert (counts.completed, counts.failed) == (3, 1)
    failed = list(client.vector_stores.files.list(store.id, filter="failed"))
    assert [f.id for f in failed] == [ids["latin.txt"]]
    assert failed[0].last_error is not None
    assert "utf-8, utf-16 or ascii" in failed[0].last_error.message
    hits = client.vector_stores.search(store.id, query="boiler pressure bar")
    found = {h.filename: h.content[0].text for h in hits}
    assert set(found) == {"utf8.txt", "bom.md", "wide.txt"}
    assert all(text.strip() == sentence for text in found.values()), found
