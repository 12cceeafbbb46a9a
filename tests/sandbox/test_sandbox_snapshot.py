"""The snapshot file: state saved on shutdown, loaded on startup, timelines intact."""

from __future__ import annotations

import json
import time
from pathlib import Path

import openai
import pytest
from sandbox_helpers import admin, wait_until

from runq.sandbox.engine import snapshot
from runq.sandbox.engine.config import SandboxConfig
from runq.sandbox.engine.file_objects import FileRecord
from runq.sandbox.engine.vector_store_objects import add_file, new_store, search_stores
from runq.sandbox.server.app import create_app
from runq.sandbox.server.serve import SandboxServer

LATENCY_MS = 150
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _server(path: Path, latency_ms: int = LATENCY_MS) -> SandboxServer:
    config = SandboxConfig(
        port=0, latency_ms=latency_ms, snapshot_path=str(path), snapshot_interval_seconds=0
    )
    return SandboxServer(config)


def _client(srv: SandboxServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=srv.base_url, api_key="k", max_retries=0, timeout=10)


def test_objects_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "state" / "sandbox.json"
    with _server(path) as srv, _client(srv) as c:
        first = c.responses.create(model="gpt-4o-mini", input="remember me")
        conv = c.conversations.create(metadata={"k": "v"})
        c.responses.create(model="gpt-4o-mini", input="in a conversation", conversation=conv.id)
        file = c.files.create(file=("notes.txt", b"The vault code is 4417."), purpose="assistants")
        store = c.vector_stores.create(name="notes", file_ids=[file.id])
        assistant = c.beta.assistants.create(model="gpt-4o-mini", name="keeper")
        thread = c.beta.threads.create(messages=[{"role": "user", "content": "hello there"}])
        run = c.beta.threads.runs.create_and_poll(
            thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=20
        )
        assert run.status == "completed"
        wait_until(
            lambda: c.vector_stores.retrieve(store.id),
            lambda s: s.file_counts.completed == 1,
        )
    assert path.exists()
    saved = json.loads(path.read_text())
    assert saved["format"] == snapshot.FORMAT
    assert saved["objects"]["files"][file.id]["data"] == "VGhlIHZhdWx0IGNvZGUgaXMgNDQxNy4="

    with _server(path) as srv, _client(srv) as c:
        again = c.responses.retrieve(first.id)
        assert (again.status, again.output_text) == ("completed", "Echo: remember me")
        assert c.conversations.retrieve(conv.id).metadata == {"k": "v"}
        items = c.conversations.items.list(conv.id, order="asc")
        assert [i.type for i in items.data] == ["message", "message"]
        follow = c.responses.create(
            model="gpt-4o-mini", input="and now", previous_response_id=first.id
        )
        assert follow.output_text == 'Echo: and now (earlier: "remember me")'
        assert c.files.content(file.id).read() == b"The vault code is 4417."
        assert c.files.retrieve(file.id).filename == "notes.txt"
        assert c.vector_stores.retrieve(store.id).file_counts.completed == 1
        hits = c.vector_stores.search(store.id, query="vault code")
        assert hits.data and hits.data[0].file_id == file.id
        assert c.beta.assistants.retrieve(assistant.id).name == "keeper"
        assert c.beta.threads.retrieve(thread.id).id == thread.id
        messages = c.beta.threads.messages.list(thread.id, order="asc")
        assert [m.role for m in messages.data] == ["user", "assistant"]
        assert c.beta.threads.runs.retrieve(run.id, thread_id=thread.id).status == "completed"
        steps = c.beta.threads.runs.steps.list(run.id, thread_id=thread.id)
        assert [s.type for s in steps.data] == ["message_creation"]
        # the restored thread accepts a new run
        second = c.beta.threads.runs.create_and_poll(
            thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=20
        )
        assert second.status == "completed"


def test_background_response_completes_on_schedule_after_restart(tmp_path: Path) -> None:
    path = tmp_path / "sandbox.json"
    latency_ms = 800
    with _server(path, latency_ms) as srv, _client(srv) as c:
        resp = c.responses.create(model="gpt-4o-mini", input="slow", background=True)
        assert resp.status == "queued"
    due = json.loads(path.read_text())["objects"]["responses"][resp.id]["timeline"]["done_at"]
    assert due > time.time()  # the restart happened before the planned end
    with _server(path, latency_ms) as srv, _client(srv) as c:
        seen = c.responses.retrieve(resp.id)
        assert seen.status in ("queued", "in_progress")
        stats = admin(srv.url, "/sandbox/stats")
        assert stats["in_flight_responses"] == 1
        done = wait_until(lambda: c.responses.retrieve(resp.id), lambda r: r.status == "completed")
        assert done.output_text == "Echo: slow"
        assert due <= time.time() < due + 2  # on schedule: not early, not much later


def test_missing_file_starts_empty_and_bad_file_is_refused(tmp_path: Path) -> None:
    app = create_app(SandboxConfig(snapshot_path=str(tmp_path / "absent.json")))
    assert app.state.sandbox.store.counts()["responses"] == 0
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"format": "other", "version": 1}))
    with pytest.raises(snapshot.SnapshotError, match="not a sandbox snapshot"):
        create_app(SandboxConfig(snapshot_path=str(bad)))
    bad.write_text("{not json")
    with pytest.raises(snapshot.SnapshotError, match="cannot read"):
        create_app(SandboxConfig(snapshot_path=str(bad)))
    broken = {"format": snapshot.FORMAT, "version": snapshot.VERSION}
    bad.write_text(json.dumps({**broken, "objects": {"files": {"file_1": {"id": "file_1"}}}}))
    with pytest.raises(snapshot.SnapshotError, match="malformed record"):
        create_app(SandboxConfig(snapshot_path=str(bad)))


def test_periodic_save_is_atomic_and_only_after_changes(tmp_path: Path) -> None:
    path = tmp_path / "sandbox.json"
    config = SandboxConfig(
        port=0, latency_ms=0, snapshot_path=str(path), snapshot_interval_seconds=0.05
    )
    with SandboxServer(config) as srv, _client(srv) as c:
        resp = c.responses.create(model="gpt-4o-mini", input="periodic")
        saved = wait_until(
            lambda: json.loads(path.read_text()) if path.exists() else {},
            lambda d: resp.id in d.get("objects", {}).get("responses", {}),
        )
        assert saved["version"] == snapshot.VERSION
        assert [p.name for p in tmp_path.iterdir()] == ["sandbox.json"]  # no temp file left
        time.sleep(0.3)  # six intervals without a request: nothing to save
        assert json.loads(path.read_text())["saved_at"] == saved["saved_at"]


class _Idle:
    """An ingestor that never gets to parse anything."""

    def submit(self, *args: object) -> None:
        return None


def test_a_file_saved_while_being_parsed_is_parsed_after_a_restart(tmp_path: Path) -> None:
    """Parsing runs in the background: a snapshot can hold a file not yet parsed."""
    path = tmp_path / "sandbox.json"
    first = create_app(SandboxConfig(latency_ms=0, snapshot_path=str(path)))
    state = first.state.sandbox
    state.ingestor = _Idle()  # type: ignore[assignment]  # nothing parsed in this life
    state.store.files["file_1"] = FileRecord("file_1", "a.txt", "assistants", 0, b"Owls hunt.")
    store = new_store(state, "owls")
    add_file(state, store, "file_1", {"kind": "birds"})
    assert store.files["file_1"].status(time.time()) == "in_progress"
    snapshot.save(state, path)
    again = create_app(SandboxConfig(latency_ms=0, snapshot_path=str(path))).state.sandbox
    restored = again.store.vector_stores[store.id].files["file_1"]
    wait_until(lambda: restored.status(time.time()), lambda s: s == "completed")
    assert restored.attributes == {"kind": "birds"}
    hits = search_stores(again, [store.id], "owls")
    assert [(h["file_id"], h["attributes"]) for h in hits] == [("file_1", {"kind": "birds"})]
    again.ingestor.shutdown()
