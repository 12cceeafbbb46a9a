"""Produced files in an S3-compatible bucket (AWS S3, MinIO, Ceph, ...).

Each file is one object under `<prefix><job id>/<sha256>/<name>`, a key derived and
checked the way the other storages derive theirs: a reader never takes a key from a
job's record, and the hash in the key means two files of a job never share an object.

The bucket, the prefix and the endpoint come from settings only (`RUNQ_FILES_S3_*`),
never from a job or a request; the credentials come from boto3's own chain
(`AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY`, a profile, an instance role), so runq
neither reads nor logs them. boto3 is the `s3` extra, imported only when a bucket is
used. The bucket keeps objects until its lifecycle rules remove them.
"""

from __future__ import annotations

import threading
from typing import Any

from runq.config.extras import require
from runq.runs.files.storage import S3, FileStorageError, checked_location

FEATURE = "S3 file storage (RUNQ_FILES_S3_BUCKET)"
_clients: dict[str | None, Any] = {}
_clients_lock = threading.Lock()


def _client(endpoint_url: str | None) -> Any:
    """One boto3 client per endpoint per process (clients are thread-safe; building one
    costs tens of milliseconds, too much for each file the gateway serves)."""
    with _clients_lock:
        if endpoint_url not in _clients:
            import boto3  # the s3 extra: only a process that uses a bucket pays for it

            # A session of its own: boto3's default session is not thread-safe.
            _clients[endpoint_url] = boto3.session.Session().client("s3", endpoint_url=endpoint_url)
        return _clients[endpoint_url]


def object_key(prefix: str, job_id: str, name: str, sha256: str) -> str:
    """The key of a job's file: `<prefix><job id>/<sha256>/<name>`, each part checked."""
    checked_location(job_id, name, sha256)
    return f"{prefix}{job_id}/{sha256}/{name}"


class S3Files:
    """Files as objects in one bucket, written whole by a single PUT."""

    kind = S3

    def __init__(self, bucket: str, prefix: str = "", endpoint_url: str | None = None) -> None:
        require("s3", FEATURE)  # at the worker's start, not at the first file it keeps
        self.bucket = bucket
        self.prefix = prefix
        self.endpoint_url = endpoint_url

    def put(self, job_id: str, name: str, sha256: str, content: bytes) -> str:
        key = object_key(self.prefix, job_id, name, sha256)
        client = _client(self.endpoint_url)
        try:
            client.put_object(Bucket=self.bucket, Key=key, Body=content)
        except Exception as err:  # botocore's errors: ClientError, EndpointConnectionError...
            raise FileStorageError(self._why(err)) from None
        return f"s3://{self.bucket}/{key}"

    def get(self, job_id: str, name: str, sha256: str) -> bytes | None:
        key = object_key(self.prefix, job_id, name, sha256)
        client = _client(self.endpoint_url)
        try:
            found = client.get_object(Bucket=self.bucket, Key=key)
            return bytes(found["Body"].read())
        except client.exceptions.NoSuchKey:
            return None
        except Exception as err:
            raise FileStorageError(self._why(err)) from None

    def _why(self, err: Exception) -> str:
        """The error in one line, naming the bucket (never a credential: botocore's
        messages carry the operation and the error code, not the keys)."""
        code = getattr(err, "response", {}).get("Error", {}).get("Code")
        detail = f"{code}: {err}" if code else f"{type(err).__name__}: {err}"
        return f"S3 bucket {self.bucket!r}: {detail}"
