"""Save the sandbox's objects to a JSON file and load them back (``--snapshot FILE``).

Every stored record is a dataclass (or a plain dict for assistants), so the snapshot is
a generic walk driven by the records' type hints: dataclasses become objects, ``bytes``
(file contents) become base64 strings, tuples become lists, and loading rebuilds the
same types from the same hints. Timelines are wall-clock timestamps, so the lazy
lifecycle survives a restart: a background response created before it reaches its end
at the planned time after it.

Writes are atomic: the JSON goes to a temporary file beside the target, is flushed to
disk, then renamed over it. Counters (``/sandbox/stats``) are not saved, except that
restored background responses still in flight count as in flight again.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import tempfile
import time
import types
import typing
from pathlib import Path
from typing import Any, Union

from runq.sandbox.engine.batches import BatchRecord
from runq.sandbox.engine.conversation_objects import ConversationRecord
from runq.sandbox.engine.file_objects import FileRecord
from runq.sandbox.engine.response_objects import ResponseRecord
from runq.sandbox.engine.run_objects import RunRecord
from runq.sandbox.engine.state import SandboxState
from runq.sandbox.engine.thread_objects import ThreadRecord
from runq.sandbox.engine.vector_store_objects import VectorStoreRecord, resume_ingestion

FORMAT = "runq-sandbox-snapshot"
VERSION = 1

# The record type of each kind in the store (``dict`` = stored as plain JSON already).
RECORD_TYPES: dict[str, Any] = {
    "responses": ResponseRecord,
    "conversations": ConversationRecord,
    "files": FileRecord,
    "vector_stores": VectorStoreRecord,
    "assistants": dict,
    "threads": ThreadRecord,
    "runs": RunRecord,
    "chat_completions": dict,
    "batches": BatchRecord,  # resumed where it stopped at its next retrieve or list
}


class SnapshotError(ValueError):
    """The snapshot file is not one this sandbox can load."""


def encode(value: Any) -> Any:
    """A JSON-ready copy of ``value`` (dataclasses, bytes, tuples, dicts, lists)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, dict):
        return {str(k): encode(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [encode(v) for v in value]
    return value


def decode(hint: Any, value: Any) -> Any:
    """Rebuild a value of type ``hint`` from its :func:`encode` form."""
    if value is None:
        return None
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        return decode(options[0], value) if len(options) == 1 else value
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        hints = typing.get_type_hints(hint)
        kwargs = {
            f.name: decode(hints[f.name], value[f.name])
            for f in dataclasses.fields(hint)
            if f.name in value
        }
        return hint(**kwargs)
    if hint is bytes:
        return base64.b64decode(value)
    args = typing.get_args(hint)
    if origin is list and args:
        return [decode(args[0], v) for v in value]
    if origin is tuple and args:
        return tuple(decode(a, v) for a, v in zip(args, value, strict=True))
    if origin is dict and args:
        return {k: decode(args[1], v) for k, v in value.items()}
    return value


def dump_state(state: SandboxState) -> dict[str, Any]:
    store = state.store
    return {
        "format": FORMAT,
        "version": VERSION,
        "saved_at": time.time(),
        "objects": {kind: encode(getattr(store, kind)) for kind in RECORD_TYPES},
    }


def load_state(state: SandboxState, data: dict[str, Any]) -> None:
    """Replace the store's objects with those of ``data`` (a :func:`dump_state` result)."""
    if data.get("format") != FORMAT or data.get("version") != VERSION:
        raise SnapshotError(
            f"not a sandbox snapshot of version {VERSION} "
            f"(format {data.get('format')!r}, version {data.get('version')!r})"
        )
    objects = data.get("objects") or {}
    tables: dict[str, dict[str, Any]] = {}
    try:
        for kind, record_type in RECORD_TYPES.items():
            items = (objects.get(kind) or {}).items()
            tables[kind] = {object_id: decode(record_type, value) for object_id, value in items}
    except (TypeError, KeyError, ValueError, AttributeError) as exc:
        raise SnapshotError(f"snapshot has a malformed record: {exc!r}") from exc
    state.store.reset()
    for kind, table in tables.items():
        getattr(state.store, kind).update(table)
    now = time.time()
    for rec in state.store.responses.values():
        if rec.background and rec.cancelled_at is None and rec.timeline.done_at > now:
            state.stats.response_started(rec.id, rec.timeline.done_at)
            state.webhooks.response_created(rec)
    resume_ingestion(state)  # files saved while being parsed are parsed again


def serialize(state: SandboxState) -> str:
    """The snapshot as JSON text; call it on the event loop, so the store is consistent."""
    return json.dumps(dump_state(state), separators=(",", ":"))


def save(state: SandboxState, path: str | os.PathLike[str]) -> None:
    """Serialize and write the snapshot atomically."""
    write_atomic(path, serialize(state))


def write_atomic(path: str | os.PathLike[str], payload: str) -> None:
    """Write to a temporary file in the same directory, fsync, then rename over ``path``."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load(state: SandboxState, path: str | os.PathLike[str]) -> bool:
    """Load the snapshot at ``path`` if it exists; ``False`` when there is none."""
    target = Path(path)
    if not target.exists():
        return False
    try:
        data = json.loads(target.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SnapshotError(f"cannot read snapshot {target}: {exc}") from exc
    if not isinstance(data, dict):
        raise SnapshotError(f"snapshot {target} is not a JSON object")
    load_state(state, data)
    return True
