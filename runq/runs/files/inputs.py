"""Input files: what a producer attaches to a job for the code interpreter.

The producer holds no backend credential, so it cannot upload to the backend's Files
API itself. It reads each file, checks its size, and stages the bytes in Redis under
the tenant and the content hash (`keys.input_file`), with a TTL a little past the job's
deadline; the job's spec keeps only each file's name, size, type and hash. The worker
that creates the run reads the bytes back and uploads them (`InputFiles.upload`), then
hands the file ids to the code interpreter's container. A retried or fallen-back run
uploads them again: a fresh run, possibly on another endpoint, needs its own ids.
"""

from __future__ import annotations

import hashlib
import math
import mimetypes
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runq.errors import InvalidJobError
from runq.runs import keys

MAX_INPUT_FILES = 20  # the API takes up to 50 file ids per container
STAGE_MARGIN_S = 3600  # staged bytes outlive the job's deadline by this much
SHA256 = re.compile(r"[0-9a-f]{64}")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
MAX_NAME_CHARS = 128


def safe_name(name: str) -> str:
    """A file name with no directory, no leading dot and only plain characters: it is
    used as a path in a directory store and as a file name at the backend."""
    base = re.split(r"[\\/]", str(name))[-1]
    cleaned = _UNSAFE.sub("_", base).lstrip(".")[:MAX_NAME_CHARS]
    return cleaned or "file"


def content_type(name: str, content: bytes = b"") -> str:
    """The media type: from the bytes when they say (PNG, JPEG, GIF, PDF), else the name."""
    for magic, kind in MAGIC:
        if content.startswith(magic):
            return kind
    return mimetypes.guess_type(name)[0] or "application/octet-stream"


MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF8", "image/gif"),
    (b"%PDF-", "application/pdf"),
)


@dataclass(frozen=True)
class InputFile:
    name: str
    content: bytes
    content_type: str
    sha256: str

    def meta(self) -> dict[str, Any]:
        """What the job's spec keeps (never the bytes)."""
        return {"name": self.name, "bytes": len(self.content),
                "content_type": self.content_type, "sha256": self.sha256}  # fmt: skip


def _read(item: Any, n: int, max_bytes: int) -> tuple[str, bytes]:
    where = f"files[{n}]"
    if isinstance(item, str | os.PathLike):
        path = Path(item)
        try:
            size = path.stat().st_size
            if size > max_bytes:
                raise InvalidJobError(where, f"{path} is {size} bytes; the limit is {max_bytes}")
            return path.name, path.read_bytes()
        except OSError as err:
            raise InvalidJobError(where, f"cannot read {path}: {err.strerror or err}") from None
    if isinstance(item, tuple) and len(item) == 2:
        name, content = item
    elif isinstance(item, Mapping) and set(item) == {"name", "content"}:
        name, content = item["name"], item["content"]
    else:
        raise InvalidJobError(where, "must be a path, (name, bytes) or {name, content}")
    if not isinstance(name, str) or not name or not isinstance(content, bytes | bytearray):
        raise InvalidJobError(where, "needs a name and bytes")
    return name, bytes(content)


def prepare(files: Any, max_bytes: int, max_total: int) -> list[InputFile]:
    """Read and hash a job's files, refusing any over `max_bytes` or all over `max_total`."""
    if not isinstance(files, list | tuple):
        raise InvalidJobError("files", "must be a list of paths or (name, bytes) pairs")
    if len(files) > MAX_INPUT_FILES:
        raise InvalidJobError("files", f"at most {MAX_INPUT_FILES} files")
    prepared: list[InputFile] = []
    total = 0
    for n, item in enumerate(files):
        name, content = _read(item, n, max_bytes)
        if len(content) > max_bytes:
            raise InvalidJobError(f"files[{n}]", f"{name} is {len(content)} bytes; the limit is "
                                  f"{max_bytes} (RUNQ_FILE_MAX_BYTES)")  # fmt: skip
        total += len(content)
        if total > max_total:
            raise InvalidJobError("files", f"more than {max_total} bytes in all "
                                  "(RUNQ_JOB_FILES_MAX_BYTES)")  # fmt: skip
        name = safe_name(name)
        prepared.append(InputFile(name, content, content_type(name, content),
                                  hashlib.sha256(content).hexdigest()))  # fmt: skip
    return prepared


def check_meta(files: Any) -> None:
    """A spec's `files`: what `InputFile.meta` gives, nothing a record could abuse."""
    if not isinstance(files, list) or len(files) > MAX_INPUT_FILES:
        raise InvalidJobError("files", f"must be a list of at most {MAX_INPUT_FILES} files")
    for n, meta in enumerate(files):
        ok = (
            isinstance(meta, dict)
            and set(meta) == {"name", "bytes", "content_type", "sha256"}
            and isinstance(meta["name"], str)
            and safe_name(meta["name"]) == meta["name"]
            and isinstance(meta["sha256"], str)
            and SHA256.fullmatch(meta["sha256"]) is not None
            and isinstance(meta["bytes"], int)
            and isinstance(meta["content_type"], str)
        )
        if not ok:
            raise InvalidJobError(
                f"files[{n}]",
                "must be a staged file (name, bytes, content_type, sha256); pass paths or "
                "bytes to submit",
            )


def stage_ttl(deadline: float) -> int:
    return math.ceil(deadline) + STAGE_MARGIN_S


def stage(redis: Any, tenant: str | None, files: list[InputFile], deadline: float) -> None:
    """Write the files' bytes where the worker finds them (one pipeline)."""
    if not files:
        return
    pipe = redis.pipeline(transaction=False)
    for f in files:
        pipe.set(keys.input_file(tenant, f.sha256), f.content, ex=stage_ttl(deadline))
    pipe.execute()


async def astage(redis: Any, tenant: str | None, files: list[InputFile], deadline: float) -> None:
    """`stage` on a `redis.asyncio` connection."""
    if not files:
        return
    pipe = redis.pipeline(transaction=False)
    for f in files:
        pipe.set(keys.input_file(tenant, f.sha256), f.content, ex=stage_ttl(deadline))
    await pipe.execute()


class InputFiles:
    """The worker's side: read the staged bytes and upload them to a backend."""

    def __init__(self, redis: Any) -> None:
        self.redis = redis

    def read(self, tenant: str | None, meta: dict[str, Any]) -> bytes:
        if not SHA256.fullmatch(str(meta.get("sha256", ""))):
            raise InvalidJobError("files", "a file's sha256 is not a hash")
        content = self.redis.get(keys.input_file(tenant, meta["sha256"]))
        if content is None:
            raise InvalidJobError(
                "files", f"the staged bytes of {meta.get('name')!r} are gone (expired past "
                "the job's deadline, or never staged); submit the job again",
            )  # fmt: skip
        return bytes(content)

    def upload(self, client: Any, spec: Any, purpose: str) -> list[str]:
        """Upload the job's files to the backend's Files API; returns their ids in order."""
        ids: list[str] = []
        for meta in spec.files:
            content = self.read(spec.tenant, meta)
            created = client.files.create(
                file=(meta["name"], content, meta["content_type"]), purpose=purpose
            )
            ids.append(created.id)
        return ids
