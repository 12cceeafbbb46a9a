"""The batcher's cuts and its lease (fakeredis), and `tier` at the gateway."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from runq.config.settings import load_settings
from runq.producers.client.sync import Client
from runq.producers.gateway import create_app
from runq.runs import keys
from runq.runs.batcher.driver import Batcher, BatchLimits
from runq.runs.batcher.queue import BatchQueue, Group, custom_id, job_of

GROUP = Group.of("responses:m", "", 0, "responses", "m", "/v1/responses")


def _queue_lines(queue: BatchQueue, count: int, size: int = 10) -> list[str]:
    ids = [custom_id(f"job_{n}", 0, 0) for n in range(count)]
    for line_id in ids:
        queue.enroll(GROUP, line_id, {"custom_id": line_id, "pad": "x" * size})
    return ids


def _batcher(store, scheduler, **limits: Any) -> Batcher:
    def no_client(group: Group) -> Any:
        raise AssertionError("a cut makes no backend call")

    return Batcher(BatchQueue(store.redis), store, scheduler, no_client,
                   limits=BatchLimits(**limits))  # fmt: skip


def _cut_sizes(queue: BatchQueue) -> list[int]:
    return sorted(len(queue.lines(b)) for b in queue.open_batches())


def test_custom_ids_name_the_job_even_with_colons() -> None:
    assert job_of(custom_id("job:a:b", 3, 1)) == "job:a:b"


def test_enrolling_twice_queues_one_line(fake_redis) -> None:
    queue = BatchQueue(fake_redis)
    _queue_lines(queue, 1)
    _queue_lines(queue, 1)
    assert queue.queued(GROUP, 10).ids == ["job_0:0:0"]


def test_a_full_group_is_cut_at_the_line_limit(store, scheduler, fake_redis) -> None:
    _queue_lines(BatchQueue(fake_redis), 5)
    batcher = _batcher(store, scheduler, max_lines=2, max_age=3600)
    assert batcher._cut_due(GROUP) == 2  # two full batches; the fifth line waits
    queue = BatchQueue(fake_redis)
    assert _cut_sizes(queue) == [2, 2]
    assert len(queue.queued(GROUP, 10).ids) == 1
    for batch_id in queue.open_batches():
        assert queue.record(batch_id)["status"] == "cut"


def test_a_group_is_cut_at_the_byte_limit(store, scheduler, fake_redis) -> None:
    ids = _queue_lines(BatchQueue(fake_redis), 3, size=100)
    line = len(json.dumps({"custom_id": ids[0], "pad": "x" * 100})) + 1
    _batcher(store, scheduler, max_bytes=2 * line, max_age=3600)._cut_due(GROUP)
    queue = BatchQueue(fake_redis)
    assert _cut_sizes(queue) == [2]  # the third line would pass the limit
    assert queue.queued(GROUP, 10).ids == [ids[2]]


def test_a_group_is_cut_by_age_and_openai_limits_cap_the_settings(
    store, scheduler, fake_redis
) -> None:
    _queue_lines(BatchQueue(fake_redis), 3)
    young = _batcher(store, scheduler, max_age=3600)
    assert young._cut_due(GROUP) == 0
    fake_redis.zadd(keys.batch_queue(GROUP.id), {"job_0:0:0": time.time() - 7200})
    assert young._cut_due(GROUP) == 1
    assert _cut_sizes(BatchQueue(fake_redis)) == [3]
    capped = BatchLimits(max_lines=10**6, max_bytes=10**12)
    assert (capped.max_lines, capped.max_bytes) == (50_000, 200 * 1024 * 1024)


def test_the_batcher_has_work_only_with_a_waiting_line_or_an_open_batch(
    store, scheduler, fake_redis
) -> None:
    """Asked before the tick's task is sent: a fleet without batch jobs sends none."""
    queue = BatchQueue(fake_redis)
    assert not queue.has_work()
    _queue_lines(queue, 2)
    assert queue.has_work()  # lines wait in a group
    _batcher(store, scheduler, max_lines=2, max_age=3600)._cut_due(GROUP)
    assert queue.queued(GROUP, 10).ids == [] and queue.has_work()  # an open batch
    for batch_id in queue.open_batches():
        queue.close(batch_id)
    assert not queue.has_work()  # the group is known, but nothing waits in it


def test_a_tick_runs_only_under_the_lease(store, scheduler, fake_redis) -> None:
    _queue_lines(BatchQueue(fake_redis), 2)
    batcher = _batcher(store, scheduler, max_lines=2)
    fake_redis.set(keys.batcher_lock(), "another worker", px=60_000)
    assert batcher.tick("me") == {"cut": 0, "moved": 0}
    assert fake_redis.get(keys.batcher_lock()) == b"another worker"  # left alone
    fake_redis.delete(keys.batcher_lock())
    batcher._advance = lambda batch_id, groups: 0  # type: ignore[method-assign]  # no backend
    assert batcher.tick("me")["cut"] == 1
    assert fake_redis.get(keys.batcher_lock()) is None  # given back


def test_a_batch_moves_only_from_the_status_its_mover_read(fake_redis) -> None:
    queue = BatchQueue(fake_redis)
    _queue_lines(queue, 1)
    batch_id = queue.cut(GROUP, ["job_0:0:0"])
    assert batch_id is not None
    assert queue.move(batch_id, "cut", "uploaded", file_id="file_1")
    assert not queue.move(batch_id, "cut", "uploaded", file_id="file_2")
    assert queue.record(batch_id)["file_id"] == "file_1"
    assert queue.cut(GROUP, ["job_0:0:0"]) is None  # a line is in one batch only


def test_outcomes_are_stored_once(fake_redis) -> None:
    queue = BatchQueue(fake_redis)
    queue.store_outcomes({"job_0:0:0": {"kind": "output", "body": {"n": 1}}})
    queue.store_outcomes({"job_0:0:0": {"kind": "output", "body": {"n": 2}}})
    assert queue.outcome("job_0:0:0") == {"kind": "output", "body": {"n": 1}}


@pytest.fixture
def http(redis_url: str) -> Iterator[tuple[TestClient, Client]]:
    url = redis_url.rsplit("/", 1)[0] + "/6"  # a database no worker reads
    loaded = load_settings(redis_url=url)
    with TestClient(create_app({"ta": "alice"}, redis_url=url, settings=loaded)) as client:
        yield client, Client(url, loaded)


def test_the_gateway_takes_a_tier_and_refuses_a_bad_one(http) -> None:
    web, client = http
    headers = {"Authorization": "Bearer ta"}
    made = web.post("/v1/jobs", json={"input": "hi", "tier": "batch"}, headers=headers)
    assert made.status_code == 201, made.text
    assert client.store.get(made.json()["job_id"]).spec.tier == "batch"
    bad = web.post("/v1/jobs", json={"input": "hi", "tier": "cheap"}, headers=headers)
    assert bad.status_code == 422 and "tier" in bad.json()["detail"][0]["loc"]
    refused = web.post("/v1/jobs", json={"input": "hi", "tier": "flex", "backend": "assistants"},
                       headers=headers)  # fmt: skip
    assert refused.status_code == 422, refused.text
    assert "tier" in refused.text
