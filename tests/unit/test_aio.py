"""`producers.aio` on a real Redis: the same records, ids and errors as the sync API."""

from __future__ import annotations

import asyncio
import json

import pytest

from runq.config.settings import load_settings
from runq.errors import (
    IdempotencyConflictError,
    InvalidJobError,
    JobNotFoundError,
    JobTimeoutError,
)
from runq.producers.client.aio import AsyncClient
from runq.producers.client.sync import Client
from runq.runs import keys


@pytest.fixture
def url(redis_url: str) -> str:
    return redis_url.rsplit("/", 1)[0] + "/5"  # a database no worker reads


def test_submit_writes_the_same_record_as_the_sync_client(url: str) -> None:
    settings = load_settings(redis_url=url)

    async def main() -> tuple[str, bool, bool, str]:
        async with AsyncClient(url, settings) as client:
            handle = await client.submit("hello", job_id="aio-1", metadata={"a": "b"})
            again = await client.submit("other", job_id="aio-1")
            events = [e async for e in handle.events(timeout=0.3)]
            return handle.id, handle.created, again.created, events[0].type

    job_id, created, again_created, first_event = asyncio.run(main())
    assert (job_id, created, again_created, first_event) == ("aio-1", True, False, "job.status")
    sync = Client(url, settings)
    job = sync.store.get("aio-1")
    assert job.status == "queued" and job.spec.metadata == {"a": "b"} and job.version == 0
    assert json.loads(sync.redis.get(keys.job("aio-1")))["version"] == 0
    assert sync.redis.zscore(keys.leases(), "aio-1") is not None


def test_idempotency_errors_and_timeouts(url: str) -> None:
    settings = load_settings(redis_url=url)

    async def main() -> None:
        async with AsyncClient(url, settings) as client:
            first = await client.submit("x", idempotency_key="k1", tenant="t")
            second = await client.submit("x", idempotency_key="k1", tenant="t")
            assert first.id == second.id and first.created and not second.created
            with pytest.raises(IdempotencyConflictError) as conflict:
                await client.submit("y", idempotency_key="k1", tenant="t")
            assert conflict.value.key == "k1" and conflict.value.job_id == first.id
            assert [s.job_id for s in await client.jobs(tenant="t")] == [first.id]
            with pytest.raises(InvalidJobError) as err:
                await client.submit("x", mode="turbo")
            assert err.value.option == "mode"
            with pytest.raises(JobNotFoundError):
                await client.get_job("nope")
            handle = await client.get_job(first.id)
            assert await handle.status() == "queued"
            with pytest.raises(JobTimeoutError):
                await handle.result(timeout=0.2)
            await handle.cancel()
            assert await client.redis.exists(keys.cancel(first.id))

    asyncio.run(main())
