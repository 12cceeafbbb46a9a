"""The files a job's run produced: downloaded when the job ends, kept, and read back.

The step that ends a job with hosted tools asks its backend which files the run made
(`Backend.run_outputs`: container files a Responses answer cites or its code wrote;
Assistants `image_file` and `file_path` files) and `FileKeeper.keep` downloads each
through the backend (`read(ref, limit)`, which stops reading past `limit`), under a
per-file and a per-job cap. A file over a cap, or one its storage refused (a bucket
down), is listed with `stored: false` and why; the job still succeeds with its answer.

Each stored entry: `name`, `bytes`, `content_type`, `sha256`, `storage`, `ref`, and
the backend's `file_id` (and `container_id`). `load` reads them back for a producer.
"""

from __future__ import annotations

import builtins
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from runq.runs.files.inputs import content_type, safe_name
from runq.runs.files.storage import FileStorage, FileStorageError, storage_for

if TYPE_CHECKING:
    from runq.config.settings import Settings

log = structlog.get_logger("runq.files")

Reader = Callable[[dict[str, Any], int], "bytes | None"]
"""`read(ref, limit)`: a produced file's bytes, or None when it has more than `limit`."""


@dataclass(frozen=True)
class FileLimits:
    per_file: int = 10 * 1024 * 1024
    per_job: int = 50 * 1024 * 1024


def _unique(name: str, taken: set[str], tag: str) -> str:
    name = safe_name(name)
    if name in taken:
        stem, dot, ext = name.rpartition(".")
        name = f"{stem}-{tag}.{ext}" if dot and stem else f"{name}-{tag}"
    taken.add(name)
    return name


class FileKeeper:
    """Downloads a run's files and keeps them in one storage, within the caps."""

    def __init__(self, storage: FileStorage, limits: FileLimits | None = None) -> None:
        self.storage = storage
        self.limits = limits or FileLimits()

    def keep(self, job_id: str, refs: list[dict[str, Any]], read: Reader) -> list[dict[str, Any]]:
        entries: list[dict[str, Any]] = []
        taken: set[str] = set()
        total = 0
        for ref in refs:
            ids = {k: ref[k] for k in ("file_id", "container_id") if ref.get(k)}
            name = _unique(str(ref.get("name") or ref.get("file_id") or "file"), taken,
                           str(ref.get("file_id", ""))[-8:] or str(len(taken)))  # fmt: skip
            limit = min(self.limits.per_file, self.limits.per_job - total)
            known = ref.get("bytes")
            content = None
            if not (isinstance(known, int) and known > limit):
                content = read(ref, limit)
            if content is None:
                over_file = limit == self.limits.per_file or (
                    isinstance(known, int) and known > self.limits.per_file
                )
                why = (f"larger than the per-file cap of {self.limits.per_file} bytes" if over_file
                       else f"over the per-job cap of {self.limits.per_job} bytes")  # fmt: skip
                entries.append(
                    {"name": name, "bytes": known, "stored": False, "reason": why, **ids}
                )
                log.warning("job.file_skipped", job_id=job_id, file=name, reason=why)
                continue
            sha = hashlib.sha256(content).hexdigest()
            try:
                stored_at = self.storage.put(job_id, name, sha, content)
            except FileStorageError as err:
                why = f"{self.storage.kind} storage refused it: {err}"
                entries.append(
                    {"name": name, "bytes": len(content), "stored": False, "reason": why, **ids}
                )
                log.warning("job.file_not_stored", job_id=job_id, file=name, reason=why)
                continue
            total += len(content)
            entries.append({
                "name": name, "bytes": len(content), "content_type": content_type(name, content),
                "sha256": sha, "stored": True, "storage": self.storage.kind, "ref": stored_at,
                **ids,
            })  # fmt: skip
            log.info("job.file_kept", job_id=job_id, file=name, bytes=len(content))
        return entries


@dataclass(frozen=True)
class JobFile:
    """A file a job produced, as a producer gets it."""

    name: str
    bytes: int
    content_type: str
    sha256: str
    content: builtins.bytes

    def save(self, directory: str | Path) -> Path:
        """Write the file into `directory` under its (safe) name; returns the path."""
        target = Path(directory) / safe_name(self.name)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(self.content)
        return target


class FileGoneError(LookupError):
    """A stored file is not where its storage keeps it (expired, removed, another host)."""


def load(job_id: str, entries: list[dict[str, Any]], *, redis: Any,
         settings: Settings) -> list[JobFile]:  # fmt: skip
    """The stored files of a result's `files`, with their bytes checked against the hash,
    read from where this process's `settings` say (RUNQ_FILES_DIR, RUNQ_FILES_S3_*)."""
    found: list[JobFile] = []
    for entry in entries:
        if not entry.get("stored"):
            continue
        found.append(load_one(job_id, entry, redis=redis, settings=settings))
    return found


def load_one(job_id: str, entry: dict[str, Any], *, redis: Any, settings: Settings) -> JobFile:
    name, sha = str(entry.get("name")), str(entry.get("sha256"))
    storage = storage_for(str(entry.get("storage")), redis=redis, settings=settings)
    if storage is None:
        raise FileGoneError(
            f"{name} is kept in {entry.get('storage')!r} storage, which this process cannot "
            "read (a directory store needs RUNQ_FILES_DIR set to the workers' directory, "
            "a bucket RUNQ_FILES_S3_BUCKET and its endpoint)"
        )
    try:
        content = storage.get(job_id, name, sha)
    except (ValueError, FileStorageError) as err:
        raise FileGoneError(f"{name}: {err}") from None
    if content is None or hashlib.sha256(content).hexdigest() != sha:
        raise FileGoneError(f"{name} of job {job_id} is gone from {storage.kind} storage")
    return JobFile(name, len(content), str(entry.get("content_type")), sha, content)
