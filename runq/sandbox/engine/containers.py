"""Code-interpreter containers: a directory per container, its files, its idle expiry.

A container is what the Containers API shows (``cntr_...``) and where the code
interpreter's code runs (:mod:`.code_runner`): a fresh directory under the server's
own temporary root, standing for the container's ``/mnt/data``. Its files are
``container.file`` objects (``cfile_...``): uploaded or copied from the Files API
(``source: "user"``) or written by the code (``source: "assistant"``).

A container expires once it has been idle (no execution, no file added) for its
``expires_after.minutes`` (20 by default, ``container_idle_minutes``): it then shows
``status: "expired"``, its directory and files are gone, and the code interpreter
refuses it. The check is lazy, like every other lifecycle in the sandbox: whoever
reads the pool sweeps it first. Containers are not saved in snapshots.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runq.sandbox.engine.errors import SandboxError, bad_request, not_found
from runq.sandbox.engine.ids import new_id

MOUNT = "/mnt/data"
MEMORY_LIMITS = ("1g", "4g", "16g", "64g")


@dataclass
class ContainerFile:
    id: str
    container_id: str
    name: str  # relative to the container's directory
    created_at: int
    size: int
    source: str  # user | assistant

    @property
    def path(self) -> str:
        return f"{MOUNT}/{self.name}"

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "container.file",
            "created_at": self.created_at,
            "bytes": self.size,
            "container_id": self.container_id,
            "path": self.path,
            "source": self.source,
        }


@dataclass
class ContainerRecord:
    id: str
    name: str
    created_at: int
    last_active_at: float
    idle_minutes: int
    memory_limit: str
    workdir: Path
    files: dict[str, ContainerFile] = field(default_factory=dict)  # by id, oldest first
    expired: bool = False

    def due(self, now: float) -> bool:
        return now >= self.last_active_at + self.idle_minutes * 60

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "container",
            "name": self.name,
            "created_at": self.created_at,
            "status": "expired" if self.expired else "running",
            "last_active_at": int(self.last_active_at),
            "expires_after": {"anchor": "last_active_at", "minutes": self.idle_minutes},
            "memory_limit": self.memory_limit,
            "network_policy": {"type": "disabled"},
        }

    def by_name(self, name: str) -> ContainerFile | None:
        return next((f for f in self.files.values() if f.name == name), None)


def _safe_name(filename: str) -> str:
    """A file name that stays inside the directory (no separators, no dot-files)."""
    base = os.path.basename(filename.replace("\\", "/")).strip() or "file"
    return base.lstrip(".") or "file"


class ContainerPool:
    """Every container of one server, and the directory that holds them."""

    def __init__(self, idle_minutes: int = 20) -> None:
        self.idle_minutes = idle_minutes
        self.containers: dict[str, ContainerRecord] = {}
        self.thread_containers: dict[str, str] = {}  # Assistants thread -> its container
        self.execution_slots: Any = None  # the API's semaphore of executions at once
        self._root: Path | None = None

    @property
    def root(self) -> Path:
        if self._root is None:
            self._root = Path(tempfile.mkdtemp(prefix="runq-sandbox-containers-"))
        return self._root

    @property
    def matplotlib_dir(self) -> str:
        """Matplotlib's cache, outside every container (they may only read it)."""
        return str(self.root / ".matplotlib")

    def sweep(self, now: float | None = None) -> None:
        """Expire the containers idle for longer than their ``expires_after``."""
        now = time.time() if now is None else now
        for rec in self.containers.values():
            if not rec.expired and rec.due(now):
                rec.expired = True
                rec.files.clear()
                shutil.rmtree(rec.workdir, ignore_errors=True)

    def create(
        self, name: str, idle_minutes: int | None = None, memory_limit: str = "1g"
    ) -> ContainerRecord:
        now = time.time()
        cid = new_id("cntr")
        workdir = self.root / cid
        workdir.mkdir()
        rec = ContainerRecord(
            cid,
            name,
            int(now),
            now,
            idle_minutes or self.idle_minutes,
            memory_limit,
            workdir,
        )
        self.containers[cid] = rec
        return rec

    def get(self, container_id: str, param: str | None = None) -> ContainerRecord:
        """The container, expired or not (a 404 when unknown)."""
        self.sweep()
        rec = self.containers.get(container_id)
        if rec is None:
            raise not_found("container", container_id, param)
        return rec

    def running(self, container_id: str, param: str | None = None) -> ContainerRecord:
        """The container, or the API's 400 when it has expired."""
        rec = self.get(container_id, param)
        if rec.expired:
            raise bad_request(
                f"Container {container_id} has expired and cannot be used.",
                param,
                "container_expired",
            )
        return rec

    def touch(self, rec: ContainerRecord) -> None:
        rec.last_active_at = time.time()

    def add_file(
        self, rec: ContainerRecord, filename: str, data: bytes, source: str = "user"
    ) -> ContainerFile:
        """Write ``data`` into the container as ``filename`` (replacing a same-named file)."""
        name = _safe_name(filename)
        (rec.workdir / name).write_bytes(data)
        old = rec.by_name(name)
        if old is not None:
            del rec.files[old.id]
        cfile = ContainerFile(new_id("cfile"), rec.id, name, int(time.time()), len(data), source)
        rec.files[cfile.id] = cfile
        self.touch(rec)
        return cfile

    def record_outputs(self, rec: ContainerRecord, names: list[str]) -> list[ContainerFile]:
        """The files the code created or changed, as ``source: "assistant"`` files."""
        out = []
        for name in names:
            full = rec.workdir / name
            if not full.is_file() or full.is_symlink():
                continue
            old = rec.by_name(name)
            if old is not None:
                del rec.files[old.id]
            size = full.stat().st_size
            cfile = ContainerFile(
                new_id("cfile"), rec.id, name, int(time.time()), size, "assistant"
            )
            rec.files[cfile.id] = cfile
            out.append(cfile)
        self.touch(rec)
        return out

    def file(self, rec: ContainerRecord, file_id: str) -> ContainerFile:
        cfile = rec.files.get(file_id)
        if cfile is None:
            raise not_found("container file", file_id)
        return cfile

    def read(self, rec: ContainerRecord, cfile: ContainerFile) -> bytes:
        """A file's bytes, read without following a link the code may have made."""
        try:
            fd = os.open(rec.workdir / cfile.name, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError as exc:
            raise SandboxError(404, f"Container file {cfile.id} is gone: {exc.strerror}.") from exc
        with os.fdopen(fd, "rb") as handle:
            return handle.read()

    def delete_file(self, rec: ContainerRecord, file_id: str) -> None:
        cfile = self.file(rec, file_id)
        del rec.files[file_id]
        (rec.workdir / cfile.name).unlink(missing_ok=True)

    def delete(self, container_id: str) -> None:
        rec = self.get(container_id)
        del self.containers[container_id]
        shutil.rmtree(rec.workdir, ignore_errors=True)

    def reset(self) -> None:
        """Forget every container and remove their directories."""
        self.containers.clear()
        self.thread_containers.clear()
        if self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)
            self._root = None
