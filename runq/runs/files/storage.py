"""Where the files a job's run produced are kept: Redis (the default), a directory, or
an S3-compatible bucket (`runq.runs.files.s3`).

A result lists each file with `storage` (`redis`, `dir` or `s3`) and a `ref` to show; reading
a file back never follows a location from the record. The key or path is derived from
the job id, the file's hash and its name, each checked, so a record someone wrote cannot
point a reader (the gateway, `runq files`) at another key or outside the directory.

Redis keeps files as long as job records (`RUNQ_RESULT_EXPIRES`); a directory
(`RUNQ_FILES_DIR`) keeps them until removed, and producers that read them must see the
same directory as the workers (a shared volume). A bucket (`RUNQ_FILES_S3_BUCKET`) keeps
them as its lifecycle rules say, and producers reach it with their own credentials.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from runq.errors import ConfigurationError
from runq.runs import keys
from runq.runs.files.inputs import SHA256, safe_name

if TYPE_CHECKING:
    from runq.config.settings import Settings

JOB_ID = re.compile(r"[A-Za-z0-9_.:-]{1,200}")
REDIS = "redis"
DIRECTORY = "dir"
S3 = "s3"


class FileStorageError(Exception):
    """A storage could not keep or read a file (a bucket refused, an endpoint is down):
    the message says why in one line and carries no credential."""


class FileStorage(Protocol):
    kind: str

    def put(self, job_id: str, name: str, sha256: str, content: bytes) -> str:
        """Keep the bytes; returns the reference a result shows."""

    def get(self, job_id: str, name: str, sha256: str) -> bytes | None:
        """The bytes, or None when they are gone."""


def checked_location(job_id: str, name: str, sha256: str) -> None:
    """Refuse a job id, name or hash that could make a key or path point elsewhere."""
    if not JOB_ID.fullmatch(job_id) or ".." in job_id:
        raise ValueError(f"not a job id: {job_id!r}")
    if safe_name(name) != name:
        raise ValueError(f"not a stored file name: {name!r}")
    if not SHA256.fullmatch(sha256):
        raise ValueError("not a sha256 hash")


class RedisFiles:
    """Files as Redis strings, expiring with the job's record."""

    kind = REDIS

    def __init__(self, redis: Any, ttl: int) -> None:
        self.redis = redis
        self.ttl = ttl

    def put(self, job_id: str, name: str, sha256: str, content: bytes) -> str:
        checked_location(job_id, name, sha256)
        key = keys.job_file(job_id, sha256)
        self.redis.set(key, content, ex=self.ttl)
        return key

    def get(self, job_id: str, name: str, sha256: str) -> bytes | None:
        checked_location(job_id, name, sha256)
        found = self.redis.get(keys.job_file(job_id, sha256))
        return None if found is None else bytes(found)


class DirectoryFiles:
    """Files under `root/<job id>/<name>`, written whole (a temporary file renamed)."""

    kind = DIRECTORY

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _path(self, job_id: str, name: str, sha256: str) -> Path:
        checked_location(job_id, name, sha256)
        return self.root / job_id / name

    def put(self, job_id: str, name: str, sha256: str, content: bytes) -> str:
        path = self._path(job_id, name, sha256)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".part-")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(content)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return f"{job_id}/{name}"

    def get(self, job_id: str, name: str, sha256: str) -> bytes | None:
        try:
            return self._path(job_id, name, sha256).read_bytes()
        except FileNotFoundError:
            return None


def storage_for(kind: str, *, redis: Any, settings: Settings, ttl: int = 0) -> FileStorage | None:
    """The storage a result's entry names, as this process's settings reach it (None:
    not from here). The location is the settings', never the entry's."""
    if kind == REDIS:
        return RedisFiles(redis, ttl)
    if kind == DIRECTORY and settings.files_dir is not None:
        return DirectoryFiles(settings.files_dir)
    if kind == S3 and settings.files_s3_bucket is not None:
        from runq.runs.files.s3 import S3Files  # boto3 only where a bucket is configured

        return S3Files(
            settings.files_s3_bucket, settings.files_s3_prefix, settings.files_s3_endpoint_url
        )
    return None


def configured_storage(redis: Any, settings: Settings) -> FileStorage:
    """Where a worker keeps the files runs produce: RUNQ_FILES_DIR, RUNQ_FILES_S3_BUCKET,
    else Redis for as long as job records (`RUNQ_RESULT_EXPIRES`)."""
    if settings.files_dir is not None and settings.files_s3_bucket is not None:
        raise ConfigurationError(
            "invalid configuration:\n  RUNQ_FILES_DIR and RUNQ_FILES_S3_BUCKET are both set; "
            "produced files go to one place: unset one of them"
        )
    if settings.files_dir is not None:
        return DirectoryFiles(settings.files_dir)
    if settings.files_s3_bucket is not None:
        from runq.runs.files.s3 import S3Files

        return S3Files(
            settings.files_s3_bucket, settings.files_s3_prefix, settings.files_s3_endpoint_url
        )
    return RedisFiles(redis, settings.result_expires)
