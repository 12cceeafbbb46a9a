"""Recent jobs (runs.recent) and the workers' tool and chain catalogs (runs.tool_catalog,
runs.chain_catalog), on fakeredis."""

from __future__ import annotations

import time

import fakeredis
import pytest

from runq.runs import chain_catalog, keys, tool_catalog
from runq.runs.job import Job, JobSpec, JobStatus
from runq.runs.recent import input_preview, recent_jobs
from runq.runs.store import JobStore
from runq.runs.tools import ToolRegistry


def _submit(store: JobStore, text: str, *, tenant: str | None = None, at: float = 0.0) -> Job:
    job = Job.new(JobSpec(input=text, tenant=tenant).validate())
    if at:
        job.timings["queued_at"] = at
    assert store.create(job, [], lease_until=time.time() + 60) == job.id
    return job


def test_newest_first_with_status_and_limit(store: JobStore) -> None:
    now = time.time()
    jobs = [_submit(store, f"question {n}", at=now - 10 + n) for n in range(5)]
    done = store.get(jobs[1].id)
    done.move(JobStatus.RUNNING)
    done.move(JobStatus.SUCCEEDED)
    assert store.commit(done, lease_until=None)

    listed = recent_jobs(store.redis, limit=3)
    assert [s.job_id for s in listed] == [jobs[4].id, jobs[3].id, jobs[2].id]
    assert listed[0].input == "question 4" and listed[0].status == "queued"
    assert 5 <= (listed[0].age(now) or 0) <= 7
    succeeded = recent_jobs(store.redis, status="succeeded")
    assert [s.job_id for s in succeeded] == [jobs[1].id]
    with pytest.raises(ValueError, match="unknown status 'done'"):
        recent_jobs(store.redis, status="done")


def test_a_tenant_sees_only_its_own(store: JobStore) -> None:
    mine = _submit(store, "mine", tenant="acme")
    _submit(store, "theirs", tenant="globex")
    _submit(store, "nobody's")
    assert [s.job_id for s in recent_jobs(store.redis, tenant="acme")] == [mine.id]
    assert len(recent_jobs(store.redis)) == 3


def test_expired_records_are_skipped_and_pruned(
    store: JobStore, fake_redis: fakeredis.FakeRedis
) -> None:
    kept = [_submit(store, f"kept {n}", tenant="acme") for n in range(3)]
    gone = [_submit(store, f"gone {n}", tenant="acme") for n in range(4)]
    fake_redis.delete(*[keys.job(job.id) for job in gone])  # their records expired
    listed = recent_jobs(store.redis, limit=2, tenant="acme")
    assert [s.job_id for s in listed] == [kept[2].id, kept[1].id]
    assert fake_redis.zcard(keys.tenant_jobs("acme")) == 3  # the gone ones were removed


def test_the_preview_is_the_first_words_on_one_line() -> None:
    assert input_preview("  What is\n the   refund policy? ") == "What is the refund policy?"
    long = "word " * 40
    preview = input_preview(long, width=30)
    assert len(preview) <= 30 and preview.endswith("…") and not preview.endswith(" …")
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "input_text", "text": "Summarise this"}]},
    ]
    assert input_preview(messages) == "Summarise this"


def test_workers_publish_the_union_of_their_tools(fake_redis: fakeredis.FakeRedis) -> None:
    assert tool_catalog.published_names(fake_redis) is None  # no worker yet
    first, second = ToolRegistry(), ToolRegistry()

    @first.tool
    def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    @second.tool
    def shout(text: str) -> str:
        """Say it louder."""
        return text.upper()

    tool_catalog.publish(fake_redis, first)
    tool_catalog.publish(fake_redis, second)
    assert tool_catalog.published_names(fake_redis) == {"add", "shout"}
    described = tool_catalog.published(fake_redis)
    assert [d["name"] for d in described] == ["add", "shout"]
    assert described[0]["parameters"]["properties"]["a"]["type"] == "integer"


def test_a_tool_no_worker_refreshes_leaves_the_catalog(fake_redis: fakeredis.FakeRedis) -> None:
    old, current = ToolRegistry(), ToolRegistry()

    @old.tool
    def retired(text: str) -> str:
        """A tool the new deployment dropped."""
        return text

    @current.tool
    def kept(text: str) -> str:
        """A tool every worker still has."""
        return text

    t0 = 1_000_000.0
    tool_catalog.publish(fake_redis, old, now=t0)
    tool_catalog.publish(fake_redis, current, now=t0)
    # The old workers are gone; the new ones refresh every minute.
    for minute in range(1, 6):
        tool_catalog.publish(fake_redis, current, now=t0 + 60 * minute)
    later = t0 + tool_catalog.STALE_AFTER + 1
    assert tool_catalog.published_names(fake_redis, now=later) == {"kept"}
    assert [d["name"] for d in tool_catalog.published(fake_redis, now=later)] == ["kept"]
    tool_catalog.publish(fake_redis, current, now=later)  # a refresh deletes the rest
    assert set(fake_redis.hkeys(keys.tool_catalog())) == {b"kept"}
    assert set(fake_redis.hkeys(keys.tool_catalog_seen())) == {b"kept"}
    # No worker seen lately at all: producers check nothing, as before any worker.
    assert tool_catalog.published_names(fake_redis, now=later + 3600) is None


def test_tools_listed_before_the_catalog_kept_times_are_dropped(
    fake_redis: fakeredis.FakeRedis,
) -> None:
    fake_redis.hset(keys.tool_catalog(), "ancient", '{"name": "ancient"}')
    registry = ToolRegistry()

    @registry.tool
    def fresh(text: str) -> str:
        """Published now."""
        return text

    assert tool_catalog.published_names(fake_redis) is None  # no time: not listed
    tool_catalog.publish(fake_redis, registry)
    assert tool_catalog.published_names(fake_redis) == {"fresh"}
    assert set(fake_redis.hkeys(keys.tool_catalog())) == {b"fresh"}


def test_chains_no_worker_refreshes_leave_the_catalog(fake_redis: fakeredis.FakeRedis) -> None:
    fake_redis.sadd(keys.legacy_chain_catalog(), "from-an-earlier-release")
    t0 = 1_000_000.0
    chain_catalog.publish(fake_redis, ["cheap", "retired"], now=t0)
    assert not fake_redis.exists(keys.legacy_chain_catalog())  # a set nobody refreshes
    chain_catalog.publish(fake_redis, ["cheap"], now=t0 + 200)
    assert chain_catalog.published_names(fake_redis, now=t0 + 250) == {"cheap", "retired"}
    later = t0 + tool_catalog.STALE_AFTER + 1
    assert chain_catalog.published_names(fake_redis, now=later) == {"cheap"}
    chain_catalog.publish(fake_redis, ["cheap"], now=later)
    assert set(fake_redis.hkeys(keys.chain_catalog())) == {b"cheap"}
