"""`POST /v1/jobs/{id}/cancel` in-process on a real Redis (no worker runs the jobs): a job
still going is asked to stop, a cancelled one is accepted again, an ended one is 409."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from runq.config.settings import load_settings
from runq.producers.client.sync import Client
from runq.producers.gateway import create_app
from runq.runs.job import JobStatus

A, B = {"Authorization": "Bearer ta"}, {"Authorization": "Bearer tb"}


@pytest.fixture
def url(redis_url: str) -> str:
    return redis_url.rsplit("/", 1)[0] + "/6"  # a database no worker reads


@pytest.fixture
def http(url: str) -> Iterator[TestClient]:
    app = create_app({"ta": "alice", "tb": "bob"}, redis_url=url,
                     settings=load_settings(redis_url=url))  # fmt: skip
    with TestClient(app) as client:
        yield client


def _end(url: str, job_id: str, status: JobStatus) -> None:
    store = Client(url, load_settings(redis_url=url)).store
    claim = store.claim(job_id, 5)
    assert claim.job is not None
    claim.job.move(JobStatus.RUNNING)
    claim.job.move(status)
    assert store.commit(claim.job, owner=claim.owner)


def _submit(http: TestClient) -> str:
    resp = http.post("/v1/jobs", json={"input": "cancel me"}, headers=A)
    assert resp.status_code == 201
    return str(resp.json()["job_id"])


def test_a_job_still_going_is_asked_to_stop(http: TestClient) -> None:
    job_id = _submit(http)
    resp = http.post(f"/v1/jobs/{job_id}/cancel", headers=A)
    assert resp.status_code == 202
    assert resp.json() == {"job_id": job_id, "status": "queued", "cancel_requested": True}
    assert http.post(f"/v1/jobs/{job_id}/cancel", headers=B).status_code == 404


@pytest.mark.parametrize("status", ["succeeded", "failed"])
def test_a_job_that_had_ended_is_409_with_the_reason(http: TestClient, url: str, status) -> None:
    job_id = _submit(http)
    _end(url, job_id, JobStatus(status))
    resp = http.post(f"/v1/jobs/{job_id}/cancel", headers=A)
    assert resp.status_code == 409
    assert resp.json() == {"detail": f"job {job_id} had already ended ({status})"}


def test_cancelling_a_cancelled_job_again_is_accepted(http: TestClient, url: str) -> None:
    job_id = _submit(http)
    _end(url, job_id, JobStatus.CANCELLED)
    resp = http.post(f"/v1/jobs/{job_id}/cancel", headers=A)
    assert resp.status_code == 202
    assert resp.json() == {"job_id": job_id, "status": "cancelled", "cancel_requested": False}


def test_the_409_is_in_the_openapi_description(http: TestClient) -> None:
    spec = http.get("/openapi.json").json()
    answers = spec["paths"]["/v1/jobs/{job_id}/cancel"]["post"]["responses"]
    assert {"202", "404", "409"} <= set(answers)
