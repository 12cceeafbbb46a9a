"""Vector stores as file_search uses them: attributes and filters, ranking options,
static chunking, the routes around files and batches, and the tool's results.

All through the official client over HTTP, as an application would call the API.
"""

from __future__ import annotations

from typing import Any

import openai
import pytest
from sandbox_helpers import wait_until

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

MANUALS = {
    "t3.txt": (
        b"The T3 thermostat pairs with six room sensors.",
        {"product": "t3", "year": 2024, "public": True},
    ),
    "t2.txt": (
        b"The T2 thermostat pairs with two room sensors.",
        {"product": "t2", "year": 2021, "public": True},
    ),
    "draft.txt": (b"The T4 thermostat pairs with ten room sensors.", {"product": "t4"}),
}


def completed(client: openai.OpenAI, store_id: str) -> None:
    wait_until(
        lambda: client.vector_stores.retrieve(store_id),
        lambda s: s.status == "completed",
    )


def manuals_store(client: openai.OpenAI) -> tuple[str, dict[str, str]]:
    """A store of the three manuals, each with its attributes: ``(store_id, ids)``."""
    store = client.vector_stores.create(name="manuals")
    ids = {}
    for name, (data, attributes) in MANUALS.items():
        upload = client.files.create(file=(name, data), purpose="assistants")
        added = client.vector_stores.files.create(
            vector_store_id=store.id, file_id=upload.id, attributes=attributes
        )
        assert added.attributes == attributes
        ids[name] = upload.id
    completed(client, store.id)
    return store.id, ids


def found(client: openai.OpenAI, store_id: str, **options: Any) -> list[str]:
    page = client.vector_stores.search(store_id, query="thermostat sensors", **options)
    return sorted(hit.filename for hit in page)


@pytest.mark.parametrize(
    ("filters", "names"),
    [
        ({"type": "eq", "key": "product", "value": "t3"}, ["t3.txt"]),
        ({"type": "ne", "key": "product", "value": "t3"}, ["draft.txt", "t2.txt"]),
        ({"type": "gt", "key": "year", "value": 2021}, ["t3.txt"]),
        ({"type": "gte", "key": "year", "value": 2021}, ["t2.txt", "t3.txt"]),
        ({"type": "lt", "key": "year", "value": 2024}, ["t2.txt"]),
        ({"type": "lte", "key": "year", "value": 2024}, ["t2.txt", "t3.txt"]),
        ({"type": "in", "key": "product", "value": ["t2", "t4"]}, ["draft.txt", "t2.txt"]),
        ({"type": "nin", "key": "product", "value": ["t2", "t4"]}, ["t3.txt"]),
        ({"type": "eq", "key": "public", "value": True}, ["t2.txt", "t3.txt"]),
        (
            {
                "type": "and",
                "filters": [
                    {"type": "eq", "key": "public", "value": True},
                    {"type": "lt", "key": "year", "value": 2024},
                ],
            },
            ["t2.txt"],
        ),
        (
            {
                "type": "or",
                "filters": [
                    {"type": "eq", "key": "product", "value": "t4"},
                    {"type": "gte", "key": "year", "value": 2024},
                ],
            },
            ["draft.txt", "t3.txt"],
        ),
    ],
)
def test_search_filters_on_attributes(
    client: openai.OpenAI, filters: dict[str, Any], names: list[str]
) -> None:
    store_id, _ = manuals_store(client)
    assert found(client, store_id) == ["draft.txt", "t2.txt", "t3.txt"]
    assert found(client, store_id, filters=filters) == names


def test_hits_carry_attributes_and_an_update_is_searched_at_once(client: openai.OpenAI) -> None:
    store_id, ids = manuals_store(client)
    hits = {h.filename: h.attributes for h in client.vector_stores.search(store_id, query="T2")}
    assert hits["t2.txt"] == MANUALS["t2.txt"][1]
    updated = client.vector_stores.files.update(
        ids["draft.txt"], vector_store_id=store_id, attributes={"product": "t3"}
    )
    assert updated.attributes == {"product": "t3"}
    t3 = {"type": "eq", "key": "product", "value": "t3"}
    assert found(client, store_id, filters=t3) == ["draft.txt", "t3.txt"]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"filters": {"type": "like", "key": "a", "value": "b"}}, "filters.type"),
        ({"filters": {"type": "in", "key": "a", "value": "b"}}, "filters.value"),
        ({"filters": {"type": "and", "filters": [{"type": "eq", "value": 1}]}}, "key"),
        ({"ranking_options": {"ranker": "best"}}, "ranking_options.ranker"),
        ({"ranking_options": {"score_threshold": 2}}, "ranking_options.score_threshold"),
        ({"max_num_results": 51}, "max_num_results"),
    ],
)
def test_malformed_search_options_are_400s(
    client: openai.OpenAI, body: dict[str, Any], param: str
) -> None:
    store = client.vector_stores.create(name="empty")
    with pytest.raises(openai.BadRequestError) as refused:
        client.vector_stores.search(store.id, query="q", extra_body=body)
    error = refused.value.body
    assert isinstance(error, dict) and param in str(error["param"])


def test_score_threshold_keeps_only_the_closer_hits(client: openai.OpenAI) -> None:
    store_id, _ = manuals_store(client)
    scores = [h.score for h in client.vector_stores.search(store_id, query="T3 thermostat")]
    assert len(scores) == 3 and scores == sorted(scores, reverse=True)
    assert all(0 < s < 1 for s in scores)
    kept = client.vector_stores.search(
        store_id, query="T3 thermostat", ranking_options={"score_threshold": scores[0]}
    )
    assert [h.score for h in kept] == [scores[0]]
    plain = client.vector_stores.search(
        store_id, query="T3 thermostat", ranking_options={"ranker": "none"}
    )
    assert next(h.filename for h in plain) == "t3.txt"


def test_static_chunking_is_used_and_shown(client: openai.OpenAI) -> None:
    text = " ".join(f"Sentence number {i} is about the boiler." for i in range(120))
    upload = client.files.create(file=("long.txt", text.encode()), purpose="assistants")
    strategy = {
        "type": "static",
        "static": {"max_chunk_size_tokens": 100, "chunk_overlap_tokens": 0},
    }
    store = client.vector_stores.create(
        name="chunks", file_ids=[upload.id], chunking_strategy=strategy
    )
    completed(client, store.id)
    item = client.vector_stores.files.retrieve(upload.id, vector_store_id=store.id)
    assert item.chunking_strategy is not None
    assert item.chunking_strategy.model_dump() == strategy
    hits = list(client.vector_stores.search(store.id, query="boiler", max_num_results=50))
    assert len(hits) > 10  # ~1,300 tokens in chunks of 100
    default = client.vector_stores.create(name="default", file_ids=[upload.id])
    completed(client, default.id)
    shown = client.vector_stores.files.retrieve(upload.id, vector_store_id=default.id)
    assert shown.chunking_strategy is not None
    assert shown.chunking_strategy.model_dump()["static"] == {
        "max_chunk_size_tokens": 800,
        "chunk_overlap_tokens": 400,
    }
    with pytest.raises(openai.BadRequestError, match="chunk_overlap_tokens"):
        client.vector_stores.files.create(
            vector_store_id=store.id,
            file_id=upload.id,
            chunking_strategy={
                "type": "static",
                "static": {"max_chunk_size_tokens": 100, "chunk_overlap_tokens": 60},
            },
        )


def test_a_store_is_updated(client: openai.OpenAI) -> None:
    store = client.vector_stores.create(name="before", metadata={"a": "1"})
    updated = client.vector_stores.update(
        store.id,
        name="after",
        metadata={"b": "2"},
        expires_after={"anchor": "last_active_at", "days": 7},
    )
    assert (updated.name, updated.metadata) == ("after", {"b": "2"})
    assert updated.expires_after is not None and updated.expires_after.days == 7
    assert updated.expires_at == updated.last_active_at + 7 * 86400
    again = client.vector_stores.retrieve(store.id)
    assert (again.name, again.expires_at) == ("after", updated.expires_at)
    cleared = client.vector_stores.update(store.id, expires_after=None)
    assert cleared.expires_at is None


def test_a_store_file_content_is_its_parsed_text(client: openai.OpenAI) -> None:
    upload = client.files.create(
        file=("notes.md", b"# Notes\n\nThe vault code is 4417."), purpose="assistants"
    )
    store = client.vector_stores.create(name="notes", file_ids=[upload.id])
    completed(client, store.id)
    parts = list(client.vector_stores.files.content(upload.id, vector_store_id=store.id))
    assert [(p.type, p.text) for p in parts] == [("text", "# Notes\n\nThe vault code is 4417.")]


def test_a_batch_lists_its_files_with_per_file_attributes(client: openai.OpenAI) -> None:
    store = client.vector_stores.create(name="batch")
    a = client.files.create(file=("a.txt", b"Alpha."), purpose="assistants")
    b = client.files.create(file=("b.txt", b"Beta."), purpose="assistants")
    other = client.files.create(file=("c.txt", b"Gamma."), purpose="assistants")
    client.vector_stores.files.create(vector_store_id=store.id, file_id=other.id)
    batch = client.vector_stores.file_batches.create(
        vector_store_id=store.id,
        files=[
            {"file_id": a.id, "attributes": {"letter": "a"}},
            {"file_id": b.id, "attributes": {"letter": "b"}},
        ],
    )
    assert batch.file_counts.total == 2
    done = wait_until(
        lambda: client.vector_stores.file_batches.retrieve(batch.id, vector_store_id=store.id),
        lambda x: x.status == "completed",
    )
    assert done.file_counts.completed == 2
    listed = client.vector_stores.file_batches.list_files(batch.id, vector_store_id=store.id)
    assert {(f.id, (f.attributes or {}).get("letter")) for f in listed} == {
        (a.id, "a"),
        (b.id, "b"),
    }
    shared = client.vector_stores.file_batches.create(
        vector_store_id=store.id, file_ids=[other.id], attributes={"letter": "c"}
    )
    files = client.vector_stores.file_batches.list_files(shared.id, vector_store_id=store.id)
    assert [(f.id, f.attributes) for f in files] == [(other.id, {"letter": "c"})]


def test_the_file_search_tool_filters_and_includes_its_results(client: openai.OpenAI) -> None:
    store_id, ids = manuals_store(client)
    tool: dict[str, Any] = {
        "type": "file_search",
        "vector_store_ids": [store_id],
        "filters": {"type": "eq", "key": "product", "value": "t2"},
    }
    question = "How many room sensors pair with the thermostat?"
    answer = client.responses.create(
        model="gpt-4o-mini", input=question, tools=[tool], include=["file_search_call.results"]
    )
    call, message = answer.output
    assert call.type == "file_search_call" and call.results is not None
    assert [(r.file_id, r.filename, r.attributes) for r in call.results] == [
        (ids["t2.txt"], "t2.txt", MANUALS["t2.txt"][1])
    ]
    assert call.results[0].text == MANUALS["t2.txt"][0].decode()
    assert call.results[0].score is not None and 0 < call.results[0].score < 1
    assert message.type == "message"
    assert "two room sensors" in message.content[0].text  # type: ignore[union-attr]
    plain = client.responses.create(model="gpt-4o-mini", input=question, tools=[tool])
    assert plain.output[0].results is None  # type: ignore[union-attr]
    strict = {**tool, "ranking_options": {"score_threshold": 1.0}}
    nothing = client.responses.create(model="gpt-4o-mini", input=question, tools=[strict])
    assert nothing.output_text.startswith("I could not find an answer")
    with pytest.raises(openai.BadRequestError) as refused:
        bad = {**tool, "filters": {"type": "eq", "key": "product"}}
        client.responses.create(model="gpt-4o-mini", input=question, tools=[bad])
    assert isinstance(refused.value.body, dict)
    assert refused.value.body["param"] == "tools[0].filters.value"


def test_assistants_file_search_takes_its_ranking_options(client: openai.OpenAI) -> None:
    store_id, _ = manuals_store(client)

    def answer(file_search: dict[str, Any]) -> str:
        assistant = client.beta.assistants.create(
            model="gpt-4o-mini",
            tools=[{"type": "file_search", "file_search": file_search}],  # type: ignore[typeddict-item]
            tool_resources={"file_search": {"vector_store_ids": [store_id]}},
        )
        run = client.beta.threads.create_and_run_poll(
            assistant_id=assistant.id,
            thread={"messages": [{"role": "user", "content": "Which thermostat has 6 sensors?"}]},
            poll_interval_ms=20,
        )
        assert run.status == "completed"
        message = client.beta.threads.messages.list(run.thread_id).data[0]
        return message.content[0].text.value  # type: ignore[union-attr]

    assert "six room sensors" in answer({"max_num_results": 5})
    strict = answer({"ranking_options": {"ranker": "auto", "score_threshold": 1.0}})
    assert strict.startswith("I could not find an answer")
