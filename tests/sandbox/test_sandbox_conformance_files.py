"""Conformance of the vector-store objects added with file_search's options and limits.

The same two checks as :mod:`test_sandbox_conformance` (its helpers, reused): each body
parses as the ``openai`` type and validates against the 200 schema of its operation in
OpenAI's OpenAPI description. Covered here: store update, a store file with attributes
(added, updated, failed with ``last_error``), a store file's content, a batch's file
list, a filtered search, a Responses answer whose ``file_search_call`` includes its
results, and the 413 of an oversized upload (as the spec's ``ErrorResponse``).
"""

from __future__ import annotations

import openai
import pytest
from openai.types import VectorStoreSearchResponse
from openai.types.responses import Response
from openai.types.vector_store import VectorStore
from openai.types.vector_stores import VectorStoreFile
from openai.types.vector_stores.file_content_response import FileContentResponse
from sandbox_helpers import wait_until
from test_sandbox_conformance import check, check_op, raw

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
BASE = "/vector_stores/{vector_store_id}"


def test_store_update_files_content_batches_and_search_conform(client: openai.OpenAI) -> None:
    vs = client.vector_stores
    upload = client.files.create(
        file=("vault.txt", b"The vault code is 4417."), purpose="assistants"
    )
    store = vs.create(name="vault")
    attributes = {"kind": "secret", "level": 3, "public": False}
    added = raw(
        vs.files.with_raw_response.create(store.id, file_id=upload.id, attributes=attributes)
    )
    check_op(added, VectorStoreFile, "post", BASE + "/files")
    assert added["attributes"] == attributes
    updated = raw(
        vs.with_raw_response.update(
            store.id, name="vault 2", expires_after={"anchor": "last_active_at", "days": 3}
        )
    )
    check_op(updated, VectorStore, "post", BASE)
    wait_until(lambda: vs.retrieve(store.id), lambda s: s.status == "completed")
    relabelled = raw(
        vs.files.with_raw_response.update(
            upload.id, vector_store_id=store.id, attributes={"kind": "public"}
        )
    )
    check_op(relabelled, VectorStoreFile, "post", BASE + "/files/{file_id}")
    content = raw(vs.files.with_raw_response.content(upload.id, vector_store_id=store.id))
    check_op(content, dict, "get", BASE + "/files/{file_id}/content")
    for part in content["data"]:
        check(part, FileContentResponse, op_item("get", BASE + "/files/{file_id}/content"))
    other = client.files.create(file=("owls.txt", b"Owls hunt at night."), purpose="assistants")
    batch = vs.file_batches.create(
        vector_store_id=store.id, files=[{"file_id": other.id, "attributes": {"kind": "birds"}}]
    )
    listed = raw(vs.file_batches.with_raw_response.list_files(batch.id, vector_store_id=store.id))
    check_op(listed, dict, "get", BASE + "/file_batches/{batch_id}/files")
    for item in listed["data"]:
        check(item, VectorStoreFile, "VectorStoreFileObject")
    wait_until(lambda: vs.retrieve(store.id), lambda s: s.status == "completed")
    results = raw(
        vs.with_raw_response.search(
            store.id,
            query="vault code",
            filters={"type": "in", "key": "kind", "value": ["public", "birds"]},
            ranking_options={"ranker": "auto", "score_threshold": 0.1},
        )
    )
    check_op(results, dict, "post", BASE + "/search")
    assert [hit["attributes"] for hit in results["data"]] == [{"kind": "public"}]
    for hit in results["data"]:
        check(hit, VectorStoreSearchResponse, "VectorStoreSearchResultItem")


def op_item(method: str, path: str) -> dict[str, object]:
    """The schema of one item of an operation's ``data`` array."""
    from test_sandbox_conformance import op_schema

    return _data_items(op_schema(method, path))


def _data_items(schema: dict[str, object]) -> dict[str, object]:
    from test_sandbox_conformance import components

    if "$ref" in schema:
        comps = components()
        assert comps is not None
        schema = comps["schemas"][str(schema["$ref"]).rsplit("/", 1)[1]]
    properties = schema["properties"]
    assert isinstance(properties, dict)
    items: dict[str, object] = properties["data"]["items"]
    return items


def test_a_failed_store_file_conforms(client: openai.OpenAI) -> None:
    upload = client.files.create(file=("bad.docx", b"not a zip at all"), purpose="assistants")
    store = client.vector_stores.create(name="bad", file_ids=[upload.id])
    wait_until(lambda: client.vector_stores.retrieve(store.id), lambda s: s.status == "completed")
    failed = raw(
        client.vector_stores.files.with_raw_response.retrieve(upload.id, vector_store_id=store.id)
    )
    check_op(failed, VectorStoreFile, "get", BASE + "/files/{file_id}")
    assert failed["status"] == "failed"
    assert failed["last_error"]["code"] == "invalid_file"


def test_a_response_with_file_search_results_conforms(client: openai.OpenAI) -> None:
    upload = client.files.create(
        file=("vault.txt", b"The vault code is 4417."), purpose="assistants"
    )
    store = client.vector_stores.create(name="vault", file_ids=[upload.id])
    wait_until(lambda: client.vector_stores.retrieve(store.id), lambda s: s.status == "completed")
    answer = raw(
        client.responses.with_raw_response.create(
            model="gpt-4o-mini",
            input="What is the vault code?",
            tools=[
                {
                    "type": "file_search",
                    "vector_store_ids": [store.id],
                    "filters": {"type": "ne", "key": "draft", "value": True},
                    "ranking_options": {"ranker": "auto", "score_threshold": 0.0},
                    "max_num_results": 5,
                }
            ],
            include=["file_search_call.results"],
        )
    )
    check_op(answer, Response, "post", "/responses")
    results = answer["output"][0]["results"]
    assert [r["file_id"] for r in results] == [upload.id]


def test_an_oversized_upload_error_conforms(client: openai.OpenAI) -> None:
    """The 413 body is the spec's ``ErrorResponse`` (the default limit: 50 MiB)."""
    size = 50 * 1024 * 1024 + 1
    with pytest.raises(openai.APIStatusError) as refused:
        client.files.create(file=("big.bin", b"\0" * size), purpose="assistants")
    assert refused.value.status_code == 413
    check(refused.value.response.json(), dict, "ErrorResponse")
