"""The gateway app in-process (FastAPI's TestClient) on a real Redis; no worker runs the jobs."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from runq.config.settings import load_settings
from runq.producers.gateway import create_app
from runq.runs.job import MAX_INPUT_CHARS

A, B = {"Authorization": "Bearer ta"}, {"Authorization": "Bearer tb"}


@pytest.fixture
def http(redis_url: str) -> Iterator[TestClient]:
    url = redis_url.rsplit("/", 1)[0] + "/6"  # a database no worker reads
    app = create_app({"ta": "alice", "tb": "bob"}, redis_url=url,
                     settings=load_settings(redis_url=url), demo=True)  # fmt: skip
    with TestClient(app) as client:
        yield client


def test_submit_view_and_tenants(http: TestClient) -> None:
    resp = http.post("/v1/jobs", json={"input": "hi", "metadata": {"k": "v"}}, headers=A)
    assert resp.status_code == 201
    job_id = resp.json()["job_id"]
    view = http.get(f"/v1/jobs/{job_id}", headers=A).json()
    assert view["status"] == "queued" and view["metadata"] == {"k": "v"}
    assert http.get(f"/v1/jobs/{job_id}", headers=B).status_code == 404
    assert http.get(f"/v1/jobs/{job_id}").status_code == 401
    assert http.get(f"/v1/jobs/{job_id}", headers={"Authorization": "Bearer x"}).status_code == 401
    assert http.post(f"/v1/jobs/{job_id}/cancel", headers=A).json()["cancel_requested"]


def test_422_names_the_field(http: TestClient) -> None:
    cases = {
        "input": {"input": "x" * (MAX_INPUT_CHARS + 1)},
        "backend": {"input": "x", "backend": "y"},
        "tools": {"input": "x", "tools": ["nope"]},
        "extra": {"input": "x", "extra": 1},
    }
    for field, body in cases.items():
        resp = http.post("/v1/jobs", json=body, headers=A)
        assert resp.status_code == 422 and field in resp.json()["detail"][0]["loc"], resp.text
    resp = http.get("/v1/jobs/x/events", headers={**A, "Last-Event-ID": "nope"})
    assert resp.status_code == 422 and "Last-Event-ID" in resp.json()["detail"][0]["loc"]


def test_jobs_are_listed_newest_first_for_their_tenant_only(http: TestClient) -> None:
    ids = [http.post("/v1/jobs", json={"input": f"list me {n}"}, headers=A).json()["job_id"]
           for n in range(3)]  # fmt: skip
    theirs = http.post("/v1/jobs", json={"input": "not yours"}, headers=B).json()["job_id"]
    listed = http.get("/v1/jobs", params={"limit": 2}, headers=A)
    assert listed.status_code == 200, listed.text
    jobs = listed.json()["jobs"]
    assert [j["job_id"] for j in jobs] == ids[::-1][:2]
    assert jobs[0]["input"] == "list me 2" and jobs[0]["status"] == "queued"
    assert jobs[0]["links"]["events"] == f"/v1/jobs/{ids[2]}/events"
    mine = http.get("/v1/jobs", params={"status": "queued", "limit": 200}, headers=A).json()
    assert theirs not in {j["job_id"] for j in mine["jobs"]}
    assert http.get("/v1/jobs", params={"status": "done"}, headers=A).status_code == 422
    assert http.get("/v1/jobs", params={"limit": 0}, headers=A).status_code == 422
    assert http.get("/v1/jobs").status_code == 401


def test_an_idempotency_key_reused_for_another_body_is_409(http: TestClient) -> None:
    key = {**A, "Idempotency-Key": "unit-409"}
    first = http.post("/v1/jobs", json={"input": "the first"}, headers=key)
    same = http.post("/v1/jobs", json={"input": "the first"}, headers=key)
    other = http.post("/v1/jobs", json={"input": "another"}, headers=key)
    assert (first.status_code, same.status_code, other.status_code) == (201, 200, 409)
    assert same.json()["job_id"] == first.json()["job_id"]
    detail = other.json()["detail"]
    assert "'unit-409'" in detail and first.json()["job_id"] in detail


def test_health_page_and_openapi(http: TestClient) -> None:
    assert http.get("/healthz").json() == {"status": "ok", "redis": True}
    page = http.get("/")
    assert page.status_code == 200 and 'value="demo"' in page.text
    assert 'src="http' not in page.text and 'href="http' not in page.text
    spec = http.get("/openapi.json").json()
    tools = spec["components"]["schemas"]["JobRequest"]["properties"]["tools"]
    names, hosted = tools["anyOf"][0]["items"]["anyOf"]
    assert {"calculator", "code_interpreter", "web_search"} <= set(names["enum"])
    assert hosted["type"] == "object"  # {"type": "mcp", ...}
    assert "bearer" in str(spec["components"]["securitySchemes"]).lower()


def test_an_unreachable_redis_is_a_503_with_retry_after() -> None:
    from runq.worker.launcher import free_port

    url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    app = create_app({"ta": "alice"}, redis_url=url, settings=load_settings(redis_url=url))
    with TestClient(app, raise_server_exceptions=False) as client:
        calls = [
            client.post("/v1/jobs", json={"input": "hi"}, headers=A),
            client.get("/v1/jobs/job_x", headers=A),
            client.post("/v1/jobs/job_x/cancel", headers=A),
        ]
        for resp in calls:
            assert resp.status_code == 503, resp.text
            assert resp.headers["Retry-After"] == "5"
            assert "Redis" in resp.json()["detail"]
        assert client.get("/healthz").status_code == 503
        spec = client.get("/openapi.json").json()
    assert "503" in spec["paths"]["/v1/jobs"]["post"]["responses"]
