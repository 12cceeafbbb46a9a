"""`POST /v1/jobs` takes an output schema and model settings, checked like the Python
API's; the tenant's hashed `safety_identifier` is sent only when the setting asks."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from runq.config.settings import load_settings
from runq.producers.client.sync import Client
from runq.producers.gateway import create_app
from runq.runs import model_settings

A = {"Authorization": "Bearer ta"}
SCHEMA = {"type": "object", "properties": {"city": {"type": "string", "default": None}},
          "required": ["city"]}  # fmt: skip


def _http(redis_url: str, **settings: Any) -> Iterator[tuple[TestClient, Client]]:
    url = redis_url.rsplit("/", 1)[0] + "/6"  # a database no worker reads
    loaded = load_settings(redis_url=url, **settings)
    app = create_app({"ta": "alice"}, redis_url=url, settings=loaded)
    with TestClient(app) as client:
        yield client, Client(url, loaded)


@pytest.fixture
def http(redis_url: str) -> Iterator[tuple[TestClient, Client]]:
    yield from _http(redis_url)


@pytest.fixture
def hashing(redis_url: str) -> Iterator[tuple[TestClient, Client]]:
    yield from _http(redis_url, safety_identifier_from_tenant=True)


def _spec(pair: tuple[TestClient, Client], body: dict[str, Any]) -> Any:
    http, client = pair
    resp = http.post("/v1/jobs", json=body, headers=A)
    assert resp.status_code == 201, resp.text
    return client.store.get(resp.json()["job_id"]).spec


def test_the_schema_and_settings_reach_the_record(http) -> None:
    spec = _spec(http, {"input": "hi", "output_schema": SCHEMA, "output_name": "Place",
                        "temperature": 0.5, "reasoning": {"effort": "low"},
                        "service_tier": "flex", "tool_choice": "none"})  # fmt: skip
    assert spec.output_schema == SCHEMA  # as sent, its nulls included
    assert (spec.output_name, spec.temperature, spec.service_tier) == ("Place", 0.5, "flex")
    assert spec.reasoning == {"effort": "low"} and spec.tool_choice == "none"
    assert spec.safety_identifier is None  # not derived unless the setting asks


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"temperature": 3}, "temperature"),
        ({"service_tier": "gold"}, "service_tier"),
        ({"reasoning": {"effort": "lots"}}, "reasoning"),
        ({"output_schema": {"type": 5}}, "output_schema"),
        ({"backend": "chat", "truncation": "auto"}, "truncation"),
        ({"backend": "assistants", "prompt_cache_key": "k"}, "prompt_cache_key"),
    ],
)
def test_bad_options_are_422_naming_the_field(http, body: dict[str, Any], field: str) -> None:
    resp = http[0].post("/v1/jobs", json={"input": "hi", **body}, headers=A)
    assert resp.status_code == 422, resp.text
    assert field in resp.json()["detail"][0]["loc"], resp.text


def test_the_tenant_hash_is_the_default_safety_identifier(hashing) -> None:
    spec = _spec(hashing, {"input": "hi"})
    assert spec.safety_identifier == model_settings.tenant_safety_identifier("alice")
    assert _spec(hashing, {"input": "hi", "safety_identifier": "u1"}).safety_identifier == "u1"
    # Assistants have no such field: nothing is derived, the job is not refused.
    assert _spec(hashing, {"input": "hi", "backend": "assistants"}).safety_identifier is None
