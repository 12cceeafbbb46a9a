"""A key a backend echoes in its error is stored nowhere and shown to no one: real
worker, real Redis, a backend that quotes the key it refuses.

The chain is the worker's own configuration (`RUNQ_CHAINS` in its environment): two
links on a local server that answers 401 `Incorrect API key provided: <key>`, with a
key of no recognisable shape (only the worker's registration of its keys can redact
it). The job fails with both links' errors; its record, events, Celery result meta and
the worker's log must not hold the key.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest
import redis

from runq.config.settings import load_settings
from runq.producers.client.sync import Client
from runq.runs import keys
from runq.worker.launcher import Stack
from tests.conftest import wait_for
from tests.integration.conftest import stack_on, worker_log
from tests.security.servers import KeyEcho

pytestmark = pytest.mark.integration

KEY = "echo-key-" + uuid.uuid4().hex  # no `sk-` prefix: no pattern would catch it


@pytest.fixture(scope="module")
def echo() -> Iterator[KeyEcho]:
    server = KeyEcho().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def chains(echo: KeyEcho) -> dict:
    link = {"model": "gpt-5-mini", "base_url": echo.base_url, "api_key_env": "RUNQ_TEST_ECHO_KEY"}
    return {"echoing": [{"backend": "responses", **link}, {"backend": "chat", **link}]}


@pytest.fixture(scope="module")
def stack(redis_url: str, sandbox, tmp_path_factory, chains: dict) -> Iterator[Stack]:
    env = {"RUNQ_CHAINS": json.dumps(chains), "RUNQ_TEST_ECHO_KEY": KEY}
    with stack_on(redis_url, sandbox, tmp_path_factory.mktemp("echo"), env=env) as running:
        yield running


@pytest.fixture(scope="module")
def client(stack: Stack, chains: dict) -> Client:
    assert stack.redis_url is not None
    return Client(stack.redis_url, load_settings(redis_url=stack.redis_url, chains=chains))


def test_an_echoed_key_is_redacted_everywhere_it_is_stored(
    client: Client, stack: Stack, echo: KeyEcho
) -> None:
    handle = client.submit("hello", chain="echoing")
    result = handle.result(timeout=60)
    # The backend did get the key, and did quote it back: there was something to redact.
    assert [seen.headers.get("authorization") for seen in echo.seen] == [f"Bearer {KEY}"] * 2
    assert result["status"] == "failed"
    assert result["error"]["code"] == "all_links_failed"
    assert [a["code"] for a in result["attempts"]] == ["auth", "auth"]
    assert "Incorrect API key provided: [redacted]" in result["error"]["message"]
    assert all("Incorrect API key provided: [redacted]" in a["error"] for a in result["attempts"])

    assert stack.redis_url is not None
    r = redis.Redis.from_url(stack.redis_url)
    record = r.get(keys.job(handle.id)).decode()
    events = [fields[b"data"].decode() for _, fields in r.xrange(keys.events(handle.id))]
    # The answer reaches producers (job.final) before the publication to the result
    # backend commits; wait for that second commit.
    meta = wait_for(
        lambda: r.get(f"celery-task-meta-{handle.id}"),
        timeout=20,
        what="the result's publication to the result backend",
    )
    assert "job.final" in "".join(events)
    for where, text in [("record", record), ("events", "\n".join(events)),
                        ("result meta", meta.decode()), ("result", json.dumps(result)),
                        ("worker log", worker_log(stack))]:  # fmt: skip
        assert KEY not in text, f"the key is in the job's {where}"
