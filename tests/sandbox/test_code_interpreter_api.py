"""The sandbox's code interpreter through the official ``openai`` client over HTTP.

Responses with the ``code_interpreter`` tool over an uploaded CSV (the chart comes
back as a container file whose bytes are a PNG), the Containers API, container reuse,
and the Assistants tool with its run steps and ``image_file`` content. Objects are
checked against the client's types and OpenAI's OpenAPI description.
"""

from __future__ import annotations

import json
from pathlib import Path

import openai
import pytest
from openai.types import FileObject
from openai.types.beta.threads import Message
from openai.types.beta.threads.runs import RunStep
from openai.types.responses import Response
from test_sandbox_conformance import (
    check,
    check_assistant_events,
    check_op,
    check_response_events,
    raw,
    sse,
)

from runq.sandbox.engine.containers import ContainerPool
from runq.sandbox.server.serve import SandboxServer

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

SALES = Path(__file__).resolve().parents[2] / "examples" / "data" / "sales.csv"
PNG = b"\x89PNG\r\n\x1a\n"
TINY_PLOT = "import matplotlib.pyplot as plt\nplt.plot([1, 2])\nplt.savefig('l.png')"


def upload_sales(client: openai.OpenAI, purpose: str = "user_data") -> str:
    return client.files.create(file=("sales.csv", SALES.read_bytes()), purpose=purpose).id


def test_plot_monthly_sales_gives_a_png_container_file(client: openai.OpenAI) -> None:
    file_id = upload_sales(client)
    body = raw(
        client.responses.with_raw_response.create(
            model="gpt-4o-mini",
            input="Plot monthly sales",
            tools=[
                {"type": "code_interpreter", "container": {"type": "auto", "file_ids": [file_id]}}
            ],
            include=["code_interpreter_call.outputs"],
        )
    )
    response = check(body, Response, "Response")
    call, message = response.output
    assert call.type == "code_interpreter_call" and call.status == "completed"
    assert "fig.savefig('revenue_by_month.png'" in (call.code or "")
    kinds = [o.type for o in call.outputs or []]
    assert kinds == ["logs", "image"]
    assert call.outputs[1].url.startswith("data:image/png;base64,")  # type: ignore[union-attr]
    text = response.output_text
    assert "I plotted revenue by month from sales.csv." in text
    assert "highest: 2025-12 (12,342.5)" in text and "total: 107,345" in text
    assert message.type == "message"
    (citation,) = message.content[0].annotations  # type: ignore[union-attr]
    assert citation.type == "container_file_citation"
    assert citation.filename == "revenue_by_month.png"
    assert citation.container_id == call.container_id
    cited = text[citation.start_index : citation.end_index]
    assert cited == "[revenue_by_month.png](sandbox:/mnt/data/revenue_by_month.png)"
    content = client.containers.files.content.retrieve(
        citation.file_id, container_id=citation.container_id
    )
    assert content.read().startswith(PNG)
    listed = {f.path: f.source for f in client.containers.files.list(call.container_id).data}
    assert listed == {"/mnt/data/sales.csv": "user", "/mnt/data/revenue_by_month.png": "assistant"}


def test_an_explicit_container_without_include_has_null_outputs(client: openai.OpenAI) -> None:
    container = client.containers.create(name="sales", file_ids=[upload_sales(client)])
    response = client.responses.create(
        model="gpt-4o-mini",
        input="What is the average revenue by region?",
        tools=[{"type": "code_interpreter", "container": container.id}],
    )
    call = response.output[0]
    assert call.type == "code_interpreter_call"
    assert call.container_id == container.id and call.outputs is None
    assert "mean of revenue for North: 4,687.5 (12 rows)" in response.output_text
    assert "mean of revenue for South: 4,257.92 (12 rows)" in response.output_text


def test_describe_and_sum_templates_state_their_results(client: openai.OpenAI) -> None:
    tools = [
        {
            "type": "code_interpreter",
            "container": {"type": "auto", "file_ids": [upload_sales(client)]},
        }
    ]
    described = client.responses.create(
        model="gpt-4o-mini", input="Describe this data", tools=tools
    )
    assert "24 rows, 4 columns: month, region, units, revenue" in described.output_text
    assert "units: count 24, mean 171.17, min 100, max 255, sum 4,108" in described.output_text
    summed = client.responses.create(
        model="gpt-4o-mini", input="What are the total units per region?", tools=tools
    )
    assert "sum of units for North: 2,250 (12 rows)" in summed.output_text


def test_a_session_keeps_its_container(client: openai.OpenAI) -> None:
    tools = [{"type": "code_interpreter", "container": {"type": "auto"}}]
    first = client.responses.create(
        model="gpt-4o-mini",
        input="```python\nopen('note.txt', 'w').write('kept')\n```",
        tools=tools,
    )
    second = client.responses.create(
        model="gpt-4o-mini",
        input="```python\nprint(open('note.txt').read())\n```",
        tools=tools,
        previous_response_id=first.id,
        include=["code_interpreter_call.outputs"],
    )
    assert first.output[0].container_id == second.output[0].container_id  # type: ignore[union-attr]
    assert second.output[0].outputs[0].logs == "kept\n"  # type: ignore[union-attr,index]


def test_output_items_can_be_sent_back_as_input(client: openai.OpenAI) -> None:
    tools = [{"type": "code_interpreter", "container": {"type": "auto"}}]
    first = client.responses.create(
        model="gpt-4o-mini", input="```python\nprint('first')\n```", tools=tools, store=False
    )
    history = [{"role": "user", "content": "```python\nprint('first')\n```"}]
    history += [item.model_dump(exclude_none=True) for item in first.output]
    history.append({"role": "user", "content": "```python\nprint('second')\n```"})
    second = client.responses.create(model="gpt-4o-mini", input=history, tools=tools)  # type: ignore[arg-type]
    assert second.output_text == "I ran the code.\n\nsecond"


def test_a_cut_answer_cites_only_the_files_it_kept(client: openai.OpenAI) -> None:
    response = client.responses.create(
        model="gpt-4o-mini",
        input="Plot monthly sales",
        tools=[
            {
                "type": "code_interpreter",
                "container": {"type": "auto", "file_ids": [upload_sales(client)]},
            }
        ],
        max_output_tokens=16,
    )
    assert response.status == "incomplete"
    assert response.output[0].type == "code_interpreter_call"
    assert response.output[1].content[0].annotations == []  # type: ignore[union-attr]


def test_the_script_channel_writes_the_code(client: openai.OpenAI) -> None:
    script = '[[{"name": "code_interpreter", "arguments": {"code": "print(sum(range(10)))"}}]]'
    response = client.responses.create(
        model="gpt-4o-mini",
        input="Add the numbers below ten",
        tools=[{"type": "code_interpreter", "container": {"type": "auto"}}],
        metadata={"sandbox_script": script},
    )
    assert response.output[0].code == "print(sum(range(10)))"  # type: ignore[union-attr]
    assert response.output_text == "I ran the code.\n\n45"


def test_without_code_to_run_the_usual_policy_answers(client: openai.OpenAI) -> None:
    response = client.responses.create(
        model="gpt-4o-mini",
        input="hello there",
        tools=[{"type": "code_interpreter", "container": {"type": "auto"}}],
    )
    assert [item.type for item in response.output] == ["message"]
    assert response.output_text == "Echo: hello there"


def test_a_bad_tool_is_refused_naming_the_parameter(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as missing:
        client.responses.create(
            model="gpt-4o-mini",
            input="x",
            tools=[{"type": "code_interpreter"}],  # type: ignore[list-item]
        )
    assert missing.value.body["param"] == "tools[0].container"  # type: ignore[index]
    with pytest.raises(openai.NotFoundError) as unknown:
        client.responses.create(
            model="gpt-4o-mini",
            input="x",
            tools=[{"type": "code_interpreter", "container": "cntr_nope"}],
        )
    assert "cntr_nope" in str(unknown.value)
    with pytest.raises(openai.NotFoundError) as no_file:
        client.responses.create(
            model="gpt-4o-mini",
            input="x",
            tools=[
                {"type": "code_interpreter", "container": {"type": "auto", "file_ids": ["file-x"]}}
            ],
        )
    assert no_file.value.body["param"] == "tools[0].container.file_ids"  # type: ignore[index]


def test_containers_crud(client: openai.OpenAI) -> None:
    file_id = upload_sales(client)
    created = raw(
        client.containers.with_raw_response.create(
            name="analysis",
            file_ids=[file_id],
            expires_after={"anchor": "last_active_at", "minutes": 5},
            memory_limit="4g",
        )
    )
    check_op(created, dict, "post", "/containers")
    cid = created["id"]
    assert cid.startswith("cntr_") and created["status"] == "running"
    assert created["expires_after"] == {"anchor": "last_active_at", "minutes": 5}
    assert created["memory_limit"] == "4g"
    check_op(
        raw(client.containers.with_raw_response.retrieve(cid)),
        dict,
        "get",
        "/containers/{container_id}",
    )
    client.containers.create(name="other")
    listed = raw(client.containers.with_raw_response.list(extra_query={"name": "analysis"}))
    check_op(listed, dict, "get", "/containers")
    assert [c["id"] for c in listed["data"]] == [cid]

    uploaded = raw(
        client.containers.files.with_raw_response.create(cid, file=("notes.txt", b"hello"))
    )
    check_op(uploaded, dict, "post", "/containers/{container_id}/files")
    assert uploaded["path"] == "/mnt/data/notes.txt" and uploaded["bytes"] == 5
    from_file = client.containers.files.create(cid, file_id=file_id)
    assert from_file.path == "/mnt/data/sales.csv" and from_file.source == "user"
    files = raw(client.containers.files.with_raw_response.list(cid))
    check_op(files, dict, "get", "/containers/{container_id}/files")
    assert sorted(f["path"] for f in files["data"]) == [
        "/mnt/data/notes.txt",
        "/mnt/data/sales.csv",
    ]
    one = raw(client.containers.files.with_raw_response.retrieve(uploaded["id"], container_id=cid))
    check_op(one, dict, "get", "/containers/{container_id}/files/{file_id}")
    body = client.containers.files.content.retrieve(uploaded["id"], container_id=cid).read()
    assert body == b"hello"

    client.containers.files.delete(uploaded["id"], container_id=cid)
    assert [f.path for f in client.containers.files.list(cid).data] == ["/mnt/data/sales.csv"]
    with pytest.raises(openai.NotFoundError):
        client.containers.files.retrieve(uploaded["id"], container_id=cid)
    client.containers.delete(cid)
    with pytest.raises(openai.NotFoundError):
        client.containers.retrieve(cid)


def test_an_idle_container_expires(server: SandboxServer, client: openai.OpenAI) -> None:
    container = client.containers.create(name="short", file_ids=[upload_sales(client)])
    pool: ContainerPool = server.app.state.sandbox.containers
    record = pool.containers[container.id]
    record.last_active_at -= 21 * 60  # idle for longer than its 20 minutes
    expired = client.containers.retrieve(container.id)
    assert expired.status == "expired"
    assert client.containers.files.list(container.id).data == []
    assert not record.workdir.exists()
    with pytest.raises(openai.BadRequestError) as refused:
        client.responses.create(
            model="gpt-4o-mini",
            input="Describe the data",
            tools=[{"type": "code_interpreter", "container": container.id}],
        )
    assert refused.value.code == "container_expired"


def test_an_assistants_run_draws_an_image_file(client: openai.OpenAI) -> None:
    file_id = upload_sales(client, "assistants")
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
    steps = raw(
        client.beta.threads.runs.steps.with_raw_response.list(
            run.id, thread_id=thread.id, order="asc"
        )
    )
    code_step = check(steps["data"][0], RunStep, "RunStepObject")
    assert code_step.step_details.type == "tool_calls"
    (tool_call,) = code_step.step_details.tool_calls  # type: ignore[union-attr]
    assert tool_call.type == "code_interpreter"
    assert "ax.bar(labels, values)" in tool_call.code_interpreter.input  # type: ignore[union-attr]
    outputs = tool_call.code_interpreter.outputs  # type: ignore[union-attr]
    assert [o.type for o in outputs] == ["logs", "image"]
    image_id = outputs[1].image.file_id  # type: ignore[union-attr]
    assert steps["data"][1]["type"] == "message_creation"

    messages = raw(client.beta.threads.messages.with_raw_response.list(thread.id))
    answer = check(messages["data"][0], Message, "MessageObject")
    image, text = answer.content
    assert image.type == "image_file" and image.image_file.file_id == image_id  # type: ignore[union-attr]
    assert text.type == "text"
    (annotation,) = text.text.annotations  # type: ignore[union-attr]
    assert annotation.type == "file_path" and annotation.file_path.file_id == image_id  # type: ignore[union-attr]
    assert annotation.text == "sandbox:/mnt/data/revenue_by_month.png"
    assert text.text.value[annotation.start_index : annotation.end_index] == annotation.text  # type: ignore[union-attr]
    check(raw(client.files.with_raw_response.retrieve(image_id)), FileObject, "OpenAIFile")
    assert client.files.content(image_id).read().startswith(PNG)


def test_a_streamed_code_interpreter_response_conforms(client: openai.OpenAI) -> None:
    body = {
        "model": "gpt-4o-mini",
        "input": f"```python\n{TINY_PLOT}\n```",
        "tools": [{"type": "code_interpreter", "container": {"type": "auto"}}],
        "include": ["code_interpreter_call.outputs"],
        "stream": True,
    }
    events = check_response_events(sse(client, "POST", "/responses", body))
    kinds = [e["type"] for e in events]
    assert (
        kinds.index("response.code_interpreter_call.in_progress")
        < kinds.index("response.code_interpreter_call_code.done")
        < kinds.index("response.code_interpreter_call.completed")
        < kinds.index("response.output_text.annotation.added")
    )
    done = next(e for e in events if e["type"] == "response.code_interpreter_call_code.done")
    deltas = "".join(e["delta"] for e in events if e["type"].endswith("_code.delta"))
    assert deltas == done["code"] and "savefig" in done["code"]
    with client.responses.stream(**{k: v for k, v in body.items() if k != "stream"}) as stream:
        final = stream.get_final_response()
    call = final.output[0]
    assert call.type == "code_interpreter_call" and call.outputs is not None
    assert final.output[1].content[0].annotations[0].type == "container_file_citation"  # type: ignore[union-attr]


def test_a_streamed_assistants_run_shows_the_code_step_and_the_image(
    client: openai.OpenAI,
) -> None:
    assistant = client.beta.assistants.create(
        model="gpt-4o-mini", tools=[{"type": "code_interpreter"}]
    )
    question = f"```python\n{TINY_PLOT}\n```"
    body = {
        "assistant_id": assistant.id,
        "thread": {"messages": [{"role": "user", "content": question}]},
        "stream": True,
    }
    events = sse(client, "POST", "/threads/runs", body)
    names = check_assistant_events(events)
    assert names[-2] == "thread.run.completed"
    created = [json.loads(data) for name, data in events if name == "thread.run.step.created"]
    assert [step["type"] for step in created] == ["tool_calls", "message_creation"]
    thread = client.beta.threads.create(messages=[{"role": "user", "content": question}])
    with client.beta.threads.runs.stream(thread_id=thread.id, assistant_id=assistant.id) as stream:
        final = stream.get_final_messages()
    image, text = final[0].content
    assert image.type == "image_file"
    assert text.type == "text" and "[l.png](sandbox:/mnt/data/l.png)" in text.text.value
