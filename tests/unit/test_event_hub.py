"""The gateway's EventHub on a real Redis: one reader, many subscriptions, no lost event."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
import redis.asyncio as aioredis

from runq.producers.gateway import event_hub
from runq.producers.gateway.event_hub import EventHub
from runq.runs import keys


@pytest.fixture
def url(redis_url: str) -> str:
    return redis_url.rsplit("/", 1)[0] + "/4"  # a database no worker reads


async def _add(redis: aioredis.Redis, job_id: str, n: int) -> None:
    for i in range(n):
        await redis.xadd(keys.events(job_id), {"data": json.dumps({"type": "x", "n": i})})


def test_a_new_subscription_does_not_wait_for_the_block_to_end(url: str) -> None:
    async def main() -> float:
        waker = aioredis.Redis.from_url(url)
        hub = EventHub(url, waker, block_ms=30_000)  # a block far longer than the test
        try:
            await _add(waker, "hub-a", 1)
            first = hub.subscribe("hub-a", "0-0")
            assert [e.data["n"] for e in await first.next(5) or []] == [0]
            await asyncio.sleep(0.2)  # let the reader block on hub-a alone
            await _add(waker, "hub-b", 2)
            began = time.monotonic()
            second = hub.subscribe("hub-b", "0-0")
            got = await second.next(5)
            assert [e.data["n"] for e in got or []] == [0, 1]
            return time.monotonic() - began
        finally:
            await hub.aclose()
            await waker.aclose()

    assert asyncio.run(main()) < 2.0  # unblocked, not the 30 s block


def test_a_slow_subscription_is_paused_and_loses_nothing(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(event_hub, "QUEUE_BATCHES", 2)
    monkeypatch.setattr(event_hub, "COUNT", 3)

    async def main() -> tuple[list[int], list[int]]:
        waker = aioredis.Redis.from_url(url)
        hub = EventHub(url, waker, block_ms=1000)
        try:
            await _add(waker, "hub-slow", 20)
            slow = hub.subscribe("hub-slow", "0-0")
            fast = hub.subscribe("hub-slow", "0-0")
            seen: dict[str, list[int]] = {"slow": [], "fast": []}
            for name, sub in (("fast", fast), ("slow", slow)):
                while len(seen[name]) < 20:
                    batch = await sub.next(5)
                    assert batch is not None, f"{name} stalled at {seen[name][-1:]}"
                    seen[name] += [e.data["n"] for e in batch]
            return seen["slow"], seen["fast"]
        finally:
            await hub.aclose()
            await waker.aclose()

    slow, fast = asyncio.run(main())
    assert slow == fast == list(range(20))
