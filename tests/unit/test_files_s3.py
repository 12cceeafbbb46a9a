"""S3-compatible storage of produced files: the key layout, and the settings that choose
it refused with a clear error when they contradict each other or boto3 is missing. The
bucket itself is exercised over HTTP in tests/integration/test_files_s3_live.py."""

from __future__ import annotations

import hashlib
from pathlib import Path

import fakeredis
import pytest

from runq.config import extras
from runq.config.settings import Settings, load_settings
from runq.errors import ConfigurationError, MissingExtraError
from runq.runs.files.produced import FileGoneError, load_one
from runq.runs.files.s3 import S3Files, object_key
from runq.runs.files.storage import DirectoryFiles, RedisFiles, configured_storage

SHA = hashlib.sha256(b"chart").hexdigest()


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No `.env`, no RUNQ_CONFIG and no files settings but the ones a test sets."""
    monkeypatch.chdir(tmp_path)
    for name in ("RUNQ_CONFIG", "RUNQ_FILES_DIR", "RUNQ_FILES_S3_BUCKET",
                 "RUNQ_FILES_S3_PREFIX", "RUNQ_FILES_S3_ENDPOINT_URL"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)


def test_a_files_key_is_prefix_job_hash_name() -> None:
    key = object_key("runq/files/", "job_1", "chart.png", SHA)
    assert key == f"runq/files/job_1/{SHA}/chart.png"
    assert object_key("", "job_1", "chart.png", SHA) == f"job_1/{SHA}/chart.png"


@pytest.mark.parametrize(
    ("job_id", "name", "sha256"),
    [("../other", "chart.png", SHA), ("job_1", "../chart.png", SHA),
     ("job_1", "a/b.png", SHA), ("job_1", "chart.png", "0" * 63), ("", "chart.png", SHA)],
)  # fmt: skip
def test_a_key_from_a_tampered_part_is_refused(job_id: str, name: str, sha256: str) -> None:
    with pytest.raises(ValueError, match="not a"):
        object_key("runq/", job_id, name, sha256)


def test_the_bucket_settings_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNQ_FILES_S3_BUCKET", "runq-files")
    monkeypatch.setenv("RUNQ_FILES_S3_PREFIX", "prod/")
    monkeypatch.setenv("RUNQ_FILES_S3_ENDPOINT_URL", "http://127.0.0.1:9000")
    settings = load_settings()
    assert (settings.files_s3_bucket, settings.files_s3_prefix) == ("runq-files", "prod/")
    storage = configured_storage(fakeredis.FakeRedis(), settings)
    assert isinstance(storage, S3Files) and storage.kind == "s3"
    assert (storage.bucket, storage.prefix, storage.endpoint_url) == (
        "runq-files", "prod/", "http://127.0.0.1:9000"
    )  # fmt: skip


def test_a_directory_and_a_bucket_at_once_are_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("RUNQ_FILES_DIR", str(tmp_path / "kept"))
    monkeypatch.setenv("RUNQ_FILES_S3_BUCKET", "runq-files")
    with pytest.raises(ConfigurationError, match="RUNQ_FILES_DIR and RUNQ_FILES_S3_BUCKET"):
        load_settings()
    both = Settings(files_dir=tmp_path, files_s3_bucket="runq-files")  # built without checks
    with pytest.raises(ConfigurationError, match="RUNQ_FILES_DIR and RUNQ_FILES_S3_BUCKET"):
        configured_storage(fakeredis.FakeRedis(), both)


@pytest.mark.parametrize(
    ("variable", "value", "error"),
    [
        ("RUNQ_FILES_S3_PREFIX", "runq/", "RUNQ_FILES_S3_PREFIX is set without"),
        ("RUNQ_FILES_S3_ENDPOINT_URL", "http://127.0.0.1:9000",
         "RUNQ_FILES_S3_ENDPOINT_URL is set without"),
        ("RUNQ_FILES_S3_BUCKET", "Runq_Files", "RUNQ_FILES_S3_BUCKET: must be a bucket name"),
        ("RUNQ_FILES_S3_ENDPOINT_URL", "minio:9000", "RUNQ_FILES_S3_ENDPOINT_URL: must start"),
    ],
)  # fmt: skip
def test_a_bad_bucket_setting_is_named(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, error: str
) -> None:
    if variable == "RUNQ_FILES_S3_ENDPOINT_URL" and "without" not in error:
        monkeypatch.setenv("RUNQ_FILES_S3_BUCKET", "runq-files")
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError, match=error):
        load_settings()


@pytest.mark.parametrize("prefix", ["/runq/", "runq/../other/", "runq files/"])
def test_a_prefix_that_could_escape_is_refused(
    monkeypatch: pytest.MonkeyPatch, prefix: str
) -> None:
    monkeypatch.setenv("RUNQ_FILES_S3_BUCKET", "runq-files")
    monkeypatch.setenv("RUNQ_FILES_S3_PREFIX", prefix)
    with pytest.raises(ConfigurationError, match="RUNQ_FILES_S3_PREFIX: must be plain"):
        load_settings()


def test_without_a_bucket_files_stay_in_redis_or_the_directory(tmp_path: Path) -> None:
    redis = fakeredis.FakeRedis()
    assert isinstance(configured_storage(redis, Settings()), RedisFiles)
    assert isinstance(configured_storage(redis, Settings(files_dir=tmp_path)), DirectoryFiles)


def test_a_bucket_entry_read_where_no_bucket_is_set_names_the_setting() -> None:
    entry = {"name": "chart.png", "sha256": SHA, "storage": "s3", "stored": True}
    with pytest.raises(FileGoneError, match="RUNQ_FILES_S3_BUCKET"):
        load_one("job_1", entry, redis=fakeredis.FakeRedis(), settings=Settings())


def test_a_missing_boto3_names_the_s3_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(extras, "missing", lambda extra: list(extras.EXTRAS[extra]))
    settings = Settings(files_s3_bucket="runq-files")
    with pytest.raises(MissingExtraError) as refused:
        configured_storage(fakeredis.FakeRedis(), settings)
    message = str(refused.value)
    assert "\n" not in message and "no boto3" in message, message
    assert message.endswith("pip install 'runq[s3]'"), message
    assert "RUNQ_FILES_S3_BUCKET" in message
    entry = {"name": "chart.png", "sha256": SHA, "storage": "s3", "stored": True}
    with pytest.raises(MissingExtraError, match=r"runq\[s3\]"):
        load_one("job_1", entry, redis=fakeredis.FakeRedis(), settings=settings)
