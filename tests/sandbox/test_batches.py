"""The sandbox's Batch API through the real ``openai`` client: create, results, list.

A batch here runs on a compressed clock (``batch_time_scale``), so it ends in a few
milliseconds; its statuses and result files are those OpenAI documents.
"""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest
from batch_helpers import client_of, create, line, question, results, serve, upload, wait_ended
from sandbox_helpers import admin

from runq.sandbox.server.serve import SandboxServer


@pytest.fixture(scope="module")
def fast() -> Iterator[SandboxServer]:
    with serve(batch_time_scale=0.001, latency_ms=50) as srv:
        yield srv


@pytest.fixture
def client(fast: SandboxServer) -> openai.OpenAI:
    admin(fast.url, "/sandbox/reset", "POST")
    return client_of(fast)


def test_a_responses_batch_completes_with_one_answer_per_line_and_usage(
    fast: SandboxServer, client: openai.OpenAI
) -> None:
    questions = {"q1": "What is 2+2?", "q2": "What is 3+5?", "q3": "Name a colour."}
    lines = [question(cid, text) for cid, text in questions.items()]
    batch = create(client, lines, metadata={"run": "nightly"})
    assert batch.status == "validating"
    assert (batch.endpoint, batch.completion_window, batch.metadata) == (
        "/v1/responses", "24h", {"run": "nightly"},
    )  # fmt: skip

    done = wait_ended(client, batch.id)

    assert done.status == "completed"
    assert done.model == "gpt-4o-mini"
    assert done.request_counts is not None
    assert (done.request_counts.total, done.request_counts.completed) == (3, 3)
    assert done.request_counts.failed == 0
    assert done.error_file_id is None and done.errors is None
    assert done.in_progress_at is not None and done.finalizing_at is not None
    assert done.created_at <= done.in_progress_at <= done.finalizing_at
    assert done.completed_at is not None and done.finalizing_at <= done.completed_at
    outputs = results(client, done.output_file_id)
    assert set(outputs) == set(questions)
    input_tokens = output_tokens = 0
    for cid, text in questions.items():
        row = outputs[cid]
        assert row["id"].startswith("batch_req_") and row["error"] is None
        assert row["response"]["status_code"] == 200
        assert row["response"]["request_id"].startswith("req_")
        body = row["response"]["body"]
        assert (body["object"], body["status"]) == ("response", "completed")
        live = client.responses.create(model="gpt-4o-mini", input=text)  # the same engine
        assert body["output"][-1]["content"][0]["text"] == live.output_text
        input_tokens += body["usage"]["input_tokens"]
        output_tokens += body["usage"]["output_tokens"]
    assert done.usage is not None
    assert (done.usage.input_tokens, done.usage.output_tokens) == (input_tokens, output_tokens)
    assert done.usage.total_tokens == input_tokens + output_tokens


def test_stats_show_exactly_one_batch_and_no_per_question_response(
    fast: SandboxServer, client: openai.OpenAI
) -> None:
    batch = create(client, [question(f"q{i}", f"What is {i}+1?") for i in range(4)])
    assert wait_ended(client, batch.id).status == "completed"
    stats = admin(fast.url, "/sandbox/stats")
    assert (stats["batches_created"], stats["batches_completed"]) == (1, 1)
    assert stats["batch_lines"] == {"total": 4, "completed": 4, "failed": 0}
    assert stats["responses_created"] == 0
    assert stats["requests"].get("POST /v1/batches 200") == 1
    assert not any(key.startswith("POST /v1/responses") for key in stats["requests"])


def test_a_batch_result_continues_as_a_normal_response(client: openai.OpenAI) -> None:
    """A tool round after a batched answer goes on with ``previous_response_id``."""
    batch = create(client, [question("only", "What is 2+2?")])
    done = wait_ended(client, batch.id)
    body = results(client, done.output_file_id)["only"]["response"]["body"]
    follow_up = client.responses.create(
        model="gpt-4o-mini", input="And 3+3?", previous_response_id=body["id"]
    )
    assert follow_up.previous_response_id == body["id"]
    assert follow_up.status == "completed"


def test_bad_lines_land_in_the_error_file_and_the_batch_still_completes(
    client: openai.OpenAI,
) -> None:
    url = "/v1/chat/completions"
    good = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "What is 2+2?"}]}
    lines = [
        line("good", good, url),
        line("unknown-model", {**good, "model": "gpt-nonexistent"}, url),
        line("too-hot", {**good, "temperature": 5}, url),
    ]
    done = wait_ended(client, create(client, lines, endpoint=url).id)

    assert done.status == "completed"
    assert done.request_counts is not None
    assert (done.request_counts.total, done.request_counts.completed) == (3, 1)
    assert done.request_counts.failed == 2
    outputs = results(client, done.output_file_id)
    assert set(outputs) == {"good"}
    completion = outputs["good"]["response"]["body"]
    assert completion["object"] == "chat.completion"
    assert completion["usage"]["total_tokens"] > 0
    errors = results(client, done.error_file_id)
    assert set(errors) == {"unknown-model", "too-hot"}
    missing = errors["unknown-model"]["response"]
    assert missing["status_code"] == 404
    assert missing["body"]["error"]["code"] == "model_not_found"
    assert errors["too-hot"]["response"]["status_code"] == 400
    assert errors["too-hot"]["response"]["body"]["error"]["param"] == "temperature"
    assert all(row["error"] is None for row in errors.values())  # HTTP errors: in response


def test_file_level_problems_fail_the_batch_naming_each_line(client: openai.OpenAI) -> None:
    lines = [
        question("a", "Hi"),
        "{not json",
        line("b", {"model": "gpt-4o-mini", "input": "x"}, url="/v1/chat/completions"),
        question("a", "Hi again"),
        question("c", "Hi", model="gpt-4o"),
        {"custom_id": "d", "method": "GET", "url": "/v1/responses", "body": {}},
    ]
    done = wait_ended(client, create(client, lines).id)

    assert done.status == "failed"
    assert done.failed_at is not None and done.in_progress_at is None
    assert done.errors is not None and done.errors.data is not None
    found = [(e.line, e.code) for e in done.errors.data]
    assert found == [
        (2, "invalid_json_line"),
        (3, "url_mismatch"),
        (4, "duplicate_custom_id"),
        (5, "model_mismatch"),
        (6, "invalid_request"),
    ]
    assert all(e.message for e in done.errors.data)
    assert done.output_file_id is None and done.error_file_id is None


def test_an_empty_file_fails_the_batch(client: openai.OpenAI) -> None:
    done = wait_ended(client, create(client, []).id)
    assert done.status == "failed"
    assert done.errors is not None and done.errors.data is not None
    assert [e.code for e in done.errors.data] == ["empty_file"]


def test_create_refuses_what_openai_refuses_at_once(client: openai.OpenAI) -> None:
    assistants_file = upload(client, [question("a", "Hi")], purpose="assistants")
    batch_file = upload(client, [question("a", "Hi")])
    with pytest.raises(openai.BadRequestError, match="purpose 'batch'"):
        client.batches.create(
            input_file_id=assistants_file, endpoint="/v1/responses", completion_window="24h"
        )
    with pytest.raises(openai.NotFoundError, match="file_nope"):
        client.batches.create(
            input_file_id="file_nope", endpoint="/v1/responses", completion_window="24h"
        )
    with pytest.raises(openai.BadRequestError, match="endpoint"):
        client.batches.create(
            input_file_id=batch_file, endpoint="/v1/embeddings", completion_window="24h"
        )
    with pytest.raises(openai.BadRequestError, match="'24h'") as refused:
        client.batches.create(
            input_file_id=batch_file,
            endpoint="/v1/responses",
            completion_window="1h",  # type: ignore[arg-type]
        )
    assert refused.value.param == "completion_window"
    with pytest.raises(openai.NotFoundError):
        client.batches.retrieve("batch_nope")


def test_list_pages_with_a_cursor_newest_first(client: openai.OpenAI) -> None:
    created = [create(client, [question("a", "Hi")]).id for _ in range(3)]
    first = client.batches.list(limit=2)
    assert [b.id for b in first.data] == created[::-1][:2]
    assert first.has_more
    assert [b.id for b in client.batches.list(limit=2, after=first.data[-1].id).data] == [
        created[0]
    ]
    assert [b.id for b in client.batches.list(limit=2)] == created[::-1]  # auto-paging


def test_result_files_are_batch_output_files(client: openai.OpenAI) -> None:
    done = wait_ended(client, create(client, [question("a", "Hi")]).id)
    assert done.output_file_id is not None
    info = client.files.retrieve(done.output_file_id)
    assert info.purpose == "batch_output"
    assert info.filename == f"{done.id}_output.jsonl"
