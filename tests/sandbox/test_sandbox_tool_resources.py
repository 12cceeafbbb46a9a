"""Stores that Assistants create from file ids: ``vector_stores`` helpers and attachments.

These are engine functions (:mod:`runq.sandbox.engine.tool_resources`) that the
Assistants routes call; here they run on a state of their own, with real ingestion.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from runq.sandbox.engine.config import SandboxConfig
from runq.sandbox.engine.errors import SandboxError
from runq.sandbox.engine.file_objects import FileRecord
from runq.sandbox.engine.state import SandboxState
from runq.sandbox.engine.thread_objects import ThreadRecord
from runq.sandbox.engine.tool_resources import attach_files, create_stores
from runq.sandbox.engine.vector_store_objects import search_stores
from tests.conftest import wait_for


@pytest.fixture
def state() -> Iterator[SandboxState]:
    state = SandboxState(SandboxConfig(latency_ms=0))
    for name, text in (("a.txt", "The vault code is 4417."), ("b.txt", "Owls hunt at night.")):
        file_id = f"file-{name[0]}"
        state.store.files[file_id] = FileRecord(file_id, name, "assistants", 0, text.encode())
    yield state
    state.ingestor.shutdown()


def ingested(state: SandboxState, store_id: str) -> None:
    store = state.store.vector_stores[store_id]
    wait_for(lambda: store.counts()["in_progress"] == 0, what="ingestion")


def test_a_vector_stores_helper_creates_a_store(state: SandboxState) -> None:
    resources = {
        "file_search": {
            "vector_store_ids": ["vs_given"],
            "vector_stores": [
                {
                    "file_ids": ["file-a"],
                    "metadata": {"from": "helper"},
                    "chunking_strategy": {
                        "type": "static",
                        "static": {"max_chunk_size_tokens": 200, "chunk_overlap_tokens": 100},
                    },
                }
            ],
        },
        "code_interpreter": {"file_ids": []},
    }
    out = create_stores(state, resources)
    given, made = out["file_search"]["vector_store_ids"]
    assert given == "vs_given" and set(out["file_search"]) == {"vector_store_ids"}
    assert out["code_interpreter"] == {"file_ids": []}
    store = state.store.vector_stores[made]
    assert store.metadata == {"from": "helper"}
    assert store.files["file-a"].chunk_size == 200
    ingested(state, made)
    hits = search_stores(state, [made], "vault code")
    assert [h["file_id"] for h in hits] == ["file-a"]


def test_resources_without_helpers_are_left_alone(state: SandboxState) -> None:
    plain = {"file_search": {"vector_store_ids": ["vs_1"]}}
    assert create_stores(state, plain) is plain
    assert create_stores(state, None) is None
    assert state.store.vector_stores == {}


def test_a_helper_with_an_unknown_file_creates_nothing(state: SandboxState) -> None:
    bad = {"file_search": {"vector_stores": [{"file_ids": ["file-a", "file-zzz"]}]}}
    with pytest.raises(SandboxError) as refused:
        create_stores(state, bad)
    assert refused.value.status == 404
    assert refused.value.param == "tool_resources.file_search.vector_stores[0].file_ids"
    assert state.store.vector_stores == {}


def test_attachments_fill_the_thread_store(state: SandboxState) -> None:
    thread = ThreadRecord("thread_1", int(time.time()), {}, None)
    shown = attach_files(
        state,
        thread,
        [
            {"file_id": "file-a", "tools": [{"type": "file_search"}]},
            {"file_id": "file-b", "tools": [{"type": "code_interpreter"}]},
        ],
    )
    assert shown == [
        {"file_id": "file-a", "tools": [{"type": "file_search"}]},
        {"file_id": "file-b", "tools": [{"type": "code_interpreter"}]},
    ]
    assert thread.tool_resources is not None
    (store_id,) = thread.tool_resources["file_search"]["vector_store_ids"]
    assert set(state.store.vector_stores[store_id].files) == {"file-a"}
    attach_files(state, thread, [{"file_id": "file-b", "tools": [{"type": "file_search"}]}])
    assert thread.tool_resources["file_search"]["vector_store_ids"] == [store_id]
    assert set(state.store.vector_stores[store_id].files) == {"file-a", "file-b"}
    ingested(state, store_id)
    assert [h["file_id"] for h in search_stores(state, [store_id], "owls")] == ["file-b"]
    assert attach_files(state, thread, None) == []
    with pytest.raises(SandboxError, match=r"attachments\[0\]\.tools"):
        attach_files(state, thread, [{"file_id": "file-a", "tools": [{"type": "web"}]}])
