"""What a producer is told when it cancels: the sync and async APIs and `runq cancel`.

A job still going is asked to stop; one already cancelled is left as it is, without an
error; one that succeeded or failed first is reported as ended (its result stands).
"""

from __future__ import annotations

import asyncio

import pytest

from runq.config.settings import get_settings, load_settings
from runq.errors import JobAlreadyEndedError, JobNotFoundError
from runq.producers.cli.entry import main
from runq.producers.client.aio import AsyncClient
from runq.producers.client.sync import Client
from runq.runs import keys
from runq.runs.job import JobStatus


@pytest.fixture
def url(redis_url: str) -> str:
    return redis_url.rsplit("/", 1)[0] + "/6"  # a database no worker reads


@pytest.fixture
def client(url: str) -> Client:
    return Client(url, load_settings(redis_url=url))


def _end(client: Client, job_id: str, status: JobStatus) -> None:
    claim = client.store.claim(job_id, 5)
    assert claim.job is not None
    claim.job.move(JobStatus.RUNNING)
    claim.job.move(status)
    assert client.store.commit(claim.job, owner=claim.owner)


def test_a_running_job_is_asked_to_stop(client: Client) -> None:
    handle = client.submit("hello")
    assert handle.cancel() == "queued"
    assert client.redis.exists(keys.cancel(handle.id))


@pytest.mark.parametrize("status", [JobStatus.SUCCEEDED, JobStatus.FAILED])
def test_a_job_that_ended_first_is_reported(client: Client, status: JobStatus) -> None:
    handle = client.submit("hello")
    _end(client, handle.id, status)
    with pytest.raises(JobAlreadyEndedError) as ended:
        handle.cancel()
    assert (ended.value.job_id, ended.value.status) == (handle.id, status)
    assert not client.redis.exists(keys.cancel(handle.id))


def test_cancelling_a_cancelled_job_again_is_no_error(client: Client) -> None:
    handle = client.submit("hello")
    _end(client, handle.id, JobStatus.CANCELLED)
    assert client.cancel(handle.id) == "cancelled"


def test_cancelling_a_job_that_does_not_exist(client: Client) -> None:
    with pytest.raises(JobNotFoundError):
        client.cancel("job_nope")


def test_the_async_api_says_the_same(client: Client, url: str) -> None:
    running = client.submit("one")
    done = client.submit("two")
    _end(client, done.id, JobStatus.SUCCEEDED)

    async def cancel_both() -> tuple[str, str]:
        async with AsyncClient(url, client.settings) as aio:
            asked = await (await aio.get_job(running.id)).cancel()
            with pytest.raises(JobAlreadyEndedError) as ended:
                await (await aio.get_job(done.id)).cancel()
            return asked, ended.value.status

    assert asyncio.run(cancel_both()) == ("queued", "succeeded")
    assert client.redis.exists(keys.cancel(running.id))


def test_runq_cancel_exits_1_for_a_job_that_had_ended(
    client: Client, url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("REDIS_URL", url)
    get_settings.cache_clear()
    try:
        done = client.submit("two")
        _end(client, done.id, JobStatus.SUCCEEDED)
        assert main(["cancel", done.id]) == 1
        assert capsys.readouterr().out.strip() == f"job {done.id} had already ended (succeeded)"
        running = client.submit("one")
        assert main(["cancel", running.id]) == 0
        said = capsys.readouterr().out.strip()
        assert said == f"cancel requested for {running.id} (it was queued)"
        _end(client, running.id, JobStatus.CANCELLED)
        assert main(["cancel", running.id]) == 0
        assert capsys.readouterr().out.strip() == f"job {running.id} was already cancelled"
    finally:
        get_settings.cache_clear()
