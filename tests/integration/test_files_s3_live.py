"""Produced files kept in an S3-compatible bucket (RUNQ_FILES_S3_BUCKET) and read back by
`runq files`, `JobHandle.files()` and the gateway: real Redis, real workers, the sandbox's code
interpreter over HTTP, and boto3 over HTTP to an S3-compatible server.

The server is moto's `ThreadedMotoServer`, a standalone S3-compatible HTTP server in a
thread of this process: it stands in for S3 (or MinIO) the way the sandbox stands in
for OpenAI. The workers reach it through RUNQ_FILES_S3_ENDPOINT_URL, with credentials
from boto3's own chain (AWS_ACCESS_KEY_ID...), as a deployment against MinIO would. A
module of its own: its workers must be the only ones taking jobs while it runs.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from moto.server import ThreadedMotoServer

from runq.config.settings import load_settings
from runq.producers.client.sync import Client
from runq.runs.files.produced import FileKeeper
from runq.runs.files.s3 import S3Files
from runq.worker.launcher import SandboxProcess, Stack
from tests.conftest import wait_for
from tests.integration.conftest import stack_on
from tests.integration.gateway_process import start_gateway, stop

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
SALES = ROOT / "examples" / "data" / "sales.csv"
PNG = b"\x89PNG\r\n\x1a\n"
A, B = {"Authorization": "Bearer token-a"}, {"Authorization": "Bearer token-b"}
BUCKET, PREFIX = "runq-files", "runq/charts/"
# Test credentials for the stand-in server; boto3 reads them from the environment.
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """The S3-compatible server on a free port of 127.0.0.1, with the bucket created."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        with pytest.MonkeyPatch.context() as patch:
            for name, value in AWS_ENV.items():
                patch.setenv(name, value)
            boto3.session.Session().client("s3", endpoint_url=endpoint).create_bucket(Bucket=BUCKET)
            yield endpoint
    finally:
        server.stop()


def _s3_env(endpoint: str) -> dict[str, str]:
    return {
        **AWS_ENV,
        "RUNQ_FILES_S3_BUCKET": BUCKET,
        "RUNQ_FILES_S3_PREFIX": PREFIX,
        "RUNQ_FILES_S3_ENDPOINT_URL": endpoint,
    }


@pytest.fixture(scope="module")
def stack(
    redis_url: str,
    sandbox: SandboxProcess,
    s3_endpoint: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    home = tmp_path_factory.mktemp("files_s3")
    with stack_on(redis_url, sandbox, home, env=_s3_env(s3_endpoint)) as running:
        yield running


@pytest.fixture(scope="module")
def gateway(
    stack: Stack, s3_endpoint: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """`runq gateway` reading the same bucket; tokens `token-a` (alice), `token-b` (bob)."""
    tmp = tmp_path_factory.mktemp("gateway_s3")
    proc, base = start_gateway(str(stack.redis_url), tmp, tokens="token-a:alice,token-b:bob",
                               env=_s3_env(s3_endpoint))  # fmt: skip
    try:
        yield base
    finally:
        stop(proc)


def _cli(stack: Stack, endpoint: str, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **_s3_env(endpoint), "REDIS_URL": str(stack.redis_url),
           "PYTHONPATH": str(ROOT)}  # fmt: skip
    env.pop("RUNQ_TOOL_MODULES", None)
    return subprocess.run([sys.executable, "-m", "runq.producers.cli", *args],
                          capture_output=True, text=True, env=env, cwd=cwd,
                          timeout=120)  # fmt: skip


def _object(endpoint: str, key: str) -> bytes:
    client = boto3.session.Session().client("s3", endpoint_url=endpoint)
    return bytes(client.get_object(Bucket=BUCKET, Key=key)["Body"].read())


def test_the_chart_is_kept_in_the_bucket_and_read_back(
    stack: Stack, s3_endpoint: str, tmp_path: Path
) -> None:
    done = _cli(stack, s3_endpoint, tmp_path, "submit", "Plot monthly sales",
                "--tool", "code_interpreter", "--file", str(SALES), "--wait", "--json")  # fmt: skip
    assert done.returncode == 0, done.stderr + done.stdout
    result: dict[str, Any] = json.loads(done.stdout)
    assert result["status"] == "succeeded", result["error"]
    (png,) = [f for f in result["files"] if f.get("content_type") == "image/png"]
    key = f"{PREFIX}{result['job_id']}/{png['sha256']}/{png['name']}"
    assert png["stored"] and png["storage"] == "s3" and png["ref"] == f"s3://{BUCKET}/{key}"
    kept = _object(s3_endpoint, key)
    assert kept.startswith(PNG) and hashlib.sha256(kept).hexdigest() == png["sha256"]

    out = tmp_path / "out"
    written = _cli(stack, s3_endpoint, tmp_path, "files", result["job_id"], "--out", str(out))
    assert written.returncode == 0, written.stderr
    assert written.stdout.strip().splitlines() == [str(out / png["name"])]
    assert (out / png["name"]).read_bytes() == kept

    settings = load_settings(
        redis_url=stack.redis_url,
        files_s3_bucket=BUCKET,
        files_s3_prefix=PREFIX,
        files_s3_endpoint_url=s3_endpoint,
    )
    files = Client(str(stack.redis_url), settings).get_job(result["job_id"]).files()
    (chart,) = [f for f in files if f.name == png["name"]]
    assert chart.content == kept and chart.content_type == "image/png"

    # Bytes changed in the bucket no longer match the result's hash: nothing is written.
    boto3.session.Session().client("s3", endpoint_url=s3_endpoint).put_object(
        Bucket=BUCKET, Key=key, Body=b"not the chart"
    )
    again = _cli(stack, s3_endpoint, tmp_path, "files", result["job_id"], "--out",
                 str(tmp_path / "again"))  # fmt: skip
    assert again.returncode == 1 and "gone from s3 storage" in again.stderr, again.stderr
    assert not (tmp_path / "again" / png["name"]).exists()


def _ended(gateway: str, job_id: str) -> dict[str, Any] | None:
    view = httpx.get(f"{gateway}/v1/jobs/{job_id}", headers=A, timeout=10).json()
    return view if view["status"] in ("succeeded", "failed", "cancelled") else None


def test_the_gateway_serves_a_bucket_file_to_its_tenant_only(gateway: str) -> None:
    upload = {"name": "sales.csv", "content_base64": base64.b64encode(SALES.read_bytes()).decode()}
    body = {"input": "Plot monthly sales", "tools": ["code_interpreter"], "files": [upload]}
    reply = httpx.post(f"{gateway}/v1/jobs", json=body, headers=A, timeout=30)
    assert reply.status_code == 201, reply.text
    job_id = str(reply.json()["job_id"])
    view = wait_for(lambda: _ended(gateway, job_id), timeout=90, what="the job to end")
    assert view["status"] == "succeeded", view["error"]
    (png,) = [f for f in view["files"] if f.get("content_type") == "image/png"]
    assert png["storage"] == "s3"
    url = f"{gateway}/v1/jobs/{job_id}/files/{png['name']}"
    got = httpx.get(url, headers=A, timeout=10)
    assert got.status_code == 200 and got.content.startswith(PNG)
    assert hashlib.sha256(got.content).hexdigest() == png["sha256"]
    assert httpx.get(url, headers=B, timeout=10).status_code == 404


def test_a_bucket_that_refuses_the_file_lists_it_as_not_kept(s3_endpoint: str) -> None:
    """A missing bucket (or one that refuses the credentials) costs the file, not the
    job: the entry says why, naming the bucket and S3's error code."""
    keeper = FileKeeper(S3Files("no-such-bucket", PREFIX, s3_endpoint))
    (entry,) = keeper.keep("job_s3_1", [{"name": "chart.png", "file_id": "f1"}],
                           lambda ref, limit: PNG)  # fmt: skip
    assert entry["stored"] is False and entry["bytes"] == len(PNG)
    assert "'no-such-bucket'" in entry["reason"] and "NoSuchBucket" in entry["reason"]
