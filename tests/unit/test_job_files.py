"""Job files: input files read, capped and staged per tenant for the worker; produced
files kept in Redis or a directory within per-file and per-job caps, and read back only
from where their job id, name and hash say (never from a location a record names)."""

from __future__ import annotations

import base64
import hashlib
import time
from pathlib import Path
from typing import Any

import fakeredis
import pytest
from pydantic import ValidationError

from runq.config.settings import Settings
from runq.errors import BackendError, InvalidJobError
from runq.producers.gateway.models import JobRequest
from runq.runs import keys
from runq.runs.backends.base import RunOutputs, RunState
from runq.runs.files import inputs
from runq.runs.files.produced import FileGoneError, FileKeeper, FileLimits, load, load_one
from runq.runs.files.storage import DirectoryFiles, RedisFiles
from runq.runs.job import Job, JobSpec
from runq.runs.links import LinkServices
from runq.runs.retry import RetryPolicies
from runq.runs.steps import Steps
from runq.runs.store import JobStore
from tests.unit.conftest import ScriptedBackend

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 100


def test_prepare_reads_paths_and_bytes_with_safe_names(tmp_path: Path) -> None:
    csv = tmp_path / "sales.csv"
    csv.write_bytes(b"month,revenue\n")
    got = inputs.prepare([csv, ("../../etc/chart one.png", PNG)], 1000, 10_000)
    assert [f.name for f in got] == ["sales.csv", "chart_one.png"]
    assert got[0].meta() == {"name": "sales.csv", "bytes": 14, "content_type": "text/csv",
                             "sha256": hashlib.sha256(b"month,revenue\n").hexdigest()}  # fmt: skip
    assert got[1].content_type == "image/png"


def test_prepare_refuses_what_is_too_large_or_missing(tmp_path: Path) -> None:
    with pytest.raises(InvalidJobError, match="limit is 10"):
        inputs.prepare([("a.csv", b"x" * 11)], 10, 100)
    with pytest.raises(InvalidJobError, match="in all"):
        inputs.prepare([("a.csv", b"x" * 8), ("b.csv", b"y" * 8)], 10, 12)
    with pytest.raises(InvalidJobError, match="cannot read"):
        inputs.prepare([tmp_path / "nope.csv"], 10, 100)
    with pytest.raises(InvalidJobError, match="at most 20"):
        inputs.prepare([("a.csv", b"")] * 21, 10, 100)


def test_staged_files_are_read_back_by_their_tenant_only() -> None:
    redis = fakeredis.FakeRedis()
    (f,) = inputs.prepare([("sales.csv", b"a,b\n")], 100, 100)
    inputs.stage(redis, "acme", [f], deadline=60)
    assert 3600 < redis.ttl(keys.input_file("acme", f.sha256)) <= 3660
    worker = inputs.InputFiles(redis)
    assert worker.read("acme", f.meta()) == b"a,b\n"
    with pytest.raises(InvalidJobError, match="gone"):
        worker.read("globex", f.meta())  # another tenant's job names the same hash
    with pytest.raises(InvalidJobError, match="not a hash"):
        worker.read("acme", {**f.meta(), "sha256": "../x"})


def _reader(files: dict[str, bytes]) -> Any:
    def read(ref: dict[str, Any], limit: int) -> bytes | None:
        content = files[ref["file_id"]]
        return None if len(content) > limit else content

    return read


def test_the_keeper_stores_files_within_the_caps() -> None:
    redis = fakeredis.FakeRedis()
    keeper = FileKeeper(RedisFiles(redis, ttl=600), FileLimits(per_file=200, per_job=250))
    refs = [
        {"name": "chart.png", "file_id": "f1", "container_id": "cntr_1"},
        {"name": "chart.png", "file_id": "f2"},  # the same name twice: made unique
        {"name": "huge.bin", "file_id": "f3", "bytes": 10_000},  # known too large: not read
        {"name": "rest.csv", "file_id": "f4"},  # over what the job has left
    ]
    files = {"f1": PNG, "f2": PNG + b"2", "f3": b"", "f4": b"z" * 100}
    entries = keeper.keep("job_1", refs, _reader(files))
    assert [e["name"] for e in entries] == ["chart.png", "chart-f2.png", "huge.bin", "rest.csv"]
    first = entries[0]
    assert first == {"name": "chart.png", "bytes": len(PNG), "content_type": "image/png",
                     "sha256": hashlib.sha256(PNG).hexdigest(), "stored": True,
                     "storage": "redis", "ref": keys.job_file("job_1", first["sha256"]),
                     "file_id": "f1", "container_id": "cntr_1"}  # fmt: skip
    assert redis.ttl(first["ref"]) > 0
    assert entries[2]["stored"] is False and "per-file cap of 200" in entries[2]["reason"]
    assert entries[3]["stored"] is False and "per-job cap of 250" in entries[3]["reason"]
    loaded = load("job_1", entries, redis=redis, settings=Settings())
    assert [f.content for f in loaded] == [PNG, PNG + b"2"]


def test_a_directory_store_writes_under_the_job(tmp_path: Path) -> None:
    keeper = FileKeeper(DirectoryFiles(tmp_path))
    (entry,) = keeper.keep("job_2", [{"name": "../../x.png", "file_id": "f"}], _reader({"f": PNG}))
    assert entry["name"] == "x.png" and entry["ref"] == "job_2/x.png"
    assert (tmp_path / "job_2" / "x.png").read_bytes() == PNG
    (found,) = load("job_2", [entry], redis=None, settings=Settings(files_dir=tmp_path))
    assert found.save(tmp_path / "out").read_bytes() == PNG
    with pytest.raises(FileGoneError, match="RUNQ_FILES_DIR"):
        load("job_2", [entry], redis=None, settings=Settings())


@pytest.mark.parametrize(
    "tampered",
    [
        {"name": "../../../etc/passwd"},
        {"sha256": "0" * 64},
        {"storage": "s3"},
    ],
)
def test_a_tampered_entry_reads_nothing_else(tmp_path: Path, tampered: dict[str, Any]) -> None:
    redis = fakeredis.FakeRedis()
    keeper = FileKeeper(RedisFiles(redis, ttl=600))
    (entry,) = keeper.keep("job_3", [{"name": "a.png", "file_id": "f"}], _reader({"f": PNG}))
    with pytest.raises(FileGoneError):
        load_one("job_3", {**entry, **tampered}, redis=redis, settings=Settings(files_dir=tmp_path))
    with pytest.raises(FileGoneError):
        load_one("../job_3", entry, redis=redis, settings=Settings(files_dir=tmp_path))


def test_the_gateway_body_takes_files_in_base64() -> None:
    body = JobRequest.model_validate({
        "input": "Plot", "tools": ["code_interpreter", {"type": "web_search"}],
        "files": [{"name": "sales.csv", "content_base64": base64.b64encode(b"a,b").decode()}],
    })  # fmt: skip
    assert body.files is not None and body.files[0].decoded() == ("sales.csv", b"a,b")
    with pytest.raises(ValidationError, match="base64"):
        JobRequest.model_validate({"input": "x", "files": [{"name": "a", "content_base64": "***"}]})


class FileMakingBackend(ScriptedBackend):
    """A scripted backend whose completed runs made a chart (and one failed download)."""

    def __init__(self, states: list[Any], files: dict[str, bytes | BackendError]) -> None:
        super().__init__(states=states)
        self.files = files

    def run_outputs(self, job: Job, state: RunState) -> RunOutputs:
        calls = [{"type": "code_interpreter_call", "id": "ci_1", "code": "plot()", "outputs": []}]
        return RunOutputs(hosted_calls=calls, file_refs=state.file_refs)

    def read_file(self, ref: dict[str, Any], limit: int) -> bytes | None:
        found = self.files[ref["file_id"]]
        if isinstance(found, BackendError):
            raise found
        return found


def _steps(store: JobStore, backend: Any, scheduler: Any, redis: Any) -> Steps:
    return Steps(store, lambda job, link: backend, scheduler, lambda job_id, rnd: {},
                 retry=RetryPolicies(test_mode=True),
                 services=LinkServices(redis))  # fmt: skip


def _completed() -> RunState:
    ref = {"name": "chart.png", "file_id": "cfile_1", "container_id": "cntr_1"}
    return RunState("completed", handle={"response_id": "resp_1"}, output_text="Here.",
                    file_refs=[ref])  # fmt: skip


def test_the_ending_step_keeps_the_runs_files_and_calls(store, scheduler, fake_redis) -> None:
    backend = FileMakingBackend([_completed()], {"cfile_1": PNG})
    job = Job.new(JobSpec(input="Plot", hosted_tools=[{"type": "code_interpreter"}]).validate())
    store.create(job, [], lease_until=time.time() + 60)
    assert _steps(store, backend, scheduler, fake_redis).run("start", job.id, 0) == "succeeded"
    result = store.get(job.id).result()
    assert result["hosted_tool_calls"][0]["code"] == "plot()"
    (entry,) = result["files"]
    assert entry["name"] == "chart.png" and entry["stored"] and entry["storage"] == "redis"
    (found,) = load(job.id, result["files"], redis=fake_redis, settings=Settings())
    assert found.content == PNG


def test_a_failed_download_looks_at_the_run_again(store, scheduler, fake_redis) -> None:
    lost = BackendError("connection reset", code="connection_error", retryable=True)
    backend = FileMakingBackend([_completed(), _completed()], {"cfile_1": lost})
    job = Job.new(JobSpec(input="Plot", hosted_tools=[{"type": "code_interpreter"}]).validate())
    store.create(job, [], lease_until=time.time() + 60)
    steps = _steps(store, backend, scheduler, fake_redis)
    assert steps.run("start", job.id, 0) == "retrying"
    step, job_id, token, _ = scheduler.last()
    assert step == "poll" and store.get(job.id).handle == {"response_id": "resp_1"}
    backend.files["cfile_1"] = PNG
    assert steps.run(step, job_id, token) == "succeeded"
    assert store.get(job.id).files[0]["stored"] is True
