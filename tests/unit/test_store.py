from __future__ import annotations

import time

import fakeredis
import pytest

from runq.errors import IdempotencyConflictError, JobNotFoundError
from runq.runs import keys
from runq.runs.cancellation import CancelRequested
from runq.runs.events import EventLog
from runq.runs.job import Job, JobSpec, JobStatus
from runq.runs.store import (
    INDEX_LIFETIMES,
    INDEX_TENDING,
    EndingWrites,
    JobStore,
    spec_fingerprint,
)


def _new(store: JobStore, **kw) -> Job:
    job = Job.new(JobSpec(input="hi").validate())
    assert (
        store.create(
            job, [{"type": "job.status", "status": "queued"}], lease_until=time.time() + 60, **kw
        )
        == job.id
    )
    return job


def test_create_and_get(store: JobStore) -> None:
    job = _new(store)
    assert store.get(job.id) == job
    with pytest.raises(JobNotFoundError):
        store.get("job_missing")


def test_create_twice_with_the_same_id_writes_once(store: JobStore) -> None:
    job = _new(store)
    assert store.create(job, [], lease_until=time.time()) is None


def test_idempotency_key_returns_the_first_job_asked_the_same(store: JobStore) -> None:
    first = _new(store, idempotency_key="k1")
    second = Job.new(JobSpec(input="hi", deadline=600).validate())  # 600 == 600.0
    assert store.create(second, [], lease_until=time.time(), idempotency_key="k1") == first.id
    assert not store.exists(second.id)
    assert store.find_by_idempotency_key(None, "k1") == first.id


def test_idempotency_key_reused_for_another_spec_is_refused(store: JobStore) -> None:
    first = _new(store, idempotency_key="k2")
    other = Job.new(JobSpec(input="something else").validate())
    with pytest.raises(IdempotencyConflictError) as info:
        store.create(other, [], lease_until=time.time(), idempotency_key="k2")
    assert info.value.key == "k2" and info.value.job_id == first.id
    assert "'k2'" in str(info.value) and first.id in str(info.value)
    assert not store.exists(other.id)


def test_idempotency_keys_are_scoped_by_tenant(store: JobStore) -> None:
    mine = Job.new(JobSpec(input="hi", tenant="a").validate())
    theirs = Job.new(JobSpec(input="other", tenant="b").validate())
    assert store.create(mine, [], lease_until=time.time(), idempotency_key="k") == mine.id
    assert store.create(theirs, [], lease_until=time.time(), idempotency_key="k") == theirs.id


def test_a_mapping_written_before_fingerprints_still_names_its_job(
    store: JobStore, fake_redis: fakeredis.FakeRedis
) -> None:
    fake_redis.set(keys.idempotency(None, "old"), "job_earlier")
    job = Job.new(JobSpec(input="hi").validate())
    assert store.create(job, [], lease_until=time.time(), idempotency_key="old") == "job_earlier"
    assert store.find_by_idempotency_key(None, "old") == "job_earlier"


def test_the_fingerprint_ignores_the_tenant_and_number_spelling() -> None:
    a = JobSpec(input="hi", deadline=60, tenant="a")
    assert spec_fingerprint(a) == spec_fingerprint(JobSpec(input="hi", deadline=60.0))
    assert spec_fingerprint(a) != spec_fingerprint(JobSpec(input="hi", model="other"))


def test_create_indexes_the_job_for_everyone_and_its_tenant(
    store: JobStore, fake_redis: fakeredis.FakeRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = Job.new(JobSpec(input="hi", tenant="acme").validate())
    store.create(job, [], lease_until=time.time())
    for index in (keys.jobs_index(), keys.tenant_jobs("acme")):
        assert fake_redis.zscore(index, job.id) == pytest.approx(job.timings["queued_at"])
        assert 0 < fake_redis.ttl(index) <= 900 * INDEX_LIFETIMES
    # A job without a tenant is indexed once (its tenant's index is the same key).
    plain = _new(store)
    assert fake_redis.zscore(keys.jobs_index(), plain.id) is not None
    # An entry older than the index keeps them is trimmed by a later create: not by
    # every one, but once every INDEX_TENDING seconds (its TTL is set again then too).
    fake_redis.zadd(keys.jobs_index(), {"job_ancient": time.time() - 900 * INDEX_LIFETIMES - 5})
    fake_redis.persist(keys.jobs_index())
    _new(store)
    assert fake_redis.zscore(keys.jobs_index(), "job_ancient") is not None
    assert fake_redis.ttl(keys.jobs_index()) == -1
    later = time.monotonic() + INDEX_TENDING + 1
    monkeypatch.setattr(time, "monotonic", lambda: later)
    _new(store)
    assert fake_redis.zscore(keys.jobs_index(), "job_ancient") is None
    assert 0 < fake_redis.ttl(keys.jobs_index()) <= 900 * INDEX_LIFETIMES


def test_claim_is_exclusive_until_released(store: JobStore) -> None:
    job = _new(store)
    first = store.claim(job.id, lock_seconds=30)
    assert first.acquired
    second = store.claim(job.id, lock_seconds=30)
    assert not second.acquired
    assert 29 < second.busy_for <= 30
    store.release(job.id, first.owner)
    assert store.claim(job.id, lock_seconds=30).acquired


def test_commit_is_compare_and_set(store: JobStore) -> None:
    job = _new(store)
    a = store.get(job.id)
    b = store.get(job.id)
    a.move(JobStatus.RUNNING)
    assert store.commit(a, [{"type": "x"}], lease_until=time.time() + 10)
    b.move(JobStatus.RUNNING)
    assert not store.commit(b, [], lease_until=time.time() + 10)
    assert b.version == 0  # a failed commit leaves the caller's version alone
    assert store.get(job.id).version == 1


def test_commit_releases_the_lock_and_appends_events(store: JobStore, fake_redis) -> None:
    job = _new(store)
    claim = store.claim(job.id, lock_seconds=30)
    got = claim.job
    got.move(JobStatus.RUNNING)
    assert store.commit(
        got, [{"type": "a"}, {"type": "b"}], owner=claim.owner, lease_until=time.time() + 5
    )
    assert store.claim(job.id, lock_seconds=30).acquired
    events = EventLog(fake_redis).read(job.id)
    assert [e.type for e in events] == ["job.status", "a", "b"]
    # The stream's TTL is the one the create set (the TTL after the end, plus the
    # deadline): a step's commit does not set it again.
    assert 600 < fake_redis.ttl(keys.events(job.id)) <= 600 + 600


def test_a_commit_leaves_a_lock_another_step_took_over(store: JobStore, fake_redis) -> None:
    # The first step's lock ran out and a second step holds the job now: the first
    # step's commit must not free the second's lock (a third step would run alongside).
    job = _new(store)
    first = store.claim(job.id, lock_seconds=30)
    fake_redis.delete(keys.job_lock(job.id))
    second = store.claim(job.id, lock_seconds=30)
    assert second.acquired
    got = first.job
    got.move(JobStatus.RUNNING)
    assert store.commit(got, [], owner=first.owner, lease_until=time.time() + 5)
    assert fake_redis.get(keys.job_lock(job.id)) == second.owner.encode()
    assert not store.claim(job.id, lock_seconds=30).acquired


def test_the_ending_commit_sets_the_streams_ttl_from_the_end(store: JobStore, fake_redis) -> None:
    job = _new(store)
    job.move(JobStatus.RUNNING)
    assert store.commit(job, [{"type": "job.status"}], lease_until=time.time() + 30)
    assert fake_redis.ttl(keys.events(job.id)) > 600
    job.move(JobStatus.SUCCEEDED)
    assert store.commit(job, [{"type": "job.final"}], lease_until=time.time() + 30)
    assert 0 < fake_redis.ttl(keys.events(job.id)) <= 600


def test_a_stream_started_again_mid_job_gets_its_ttl_at_the_end(
    store: JobStore, fake_redis
) -> None:
    job = _new(store)
    fake_redis.delete(keys.events(job.id))  # expired while the job waited its turn
    job.move(JobStatus.RUNNING)
    assert store.commit(job, [{"type": "job.status"}], lease_until=time.time() + 30)
    assert fake_redis.ttl(keys.events(job.id)) == -1
    job.move(JobStatus.FAILED)
    assert store.commit(job, [{"type": "job.final"}], lease_until=time.time() + 30)
    assert 0 < fake_redis.ttl(keys.events(job.id)) <= 600


def test_a_claimer_may_take_its_own_lock_again(store: JobStore) -> None:
    job = _new(store)
    first = store.claim(job.id, lock_seconds=1)
    again = store.claim(job.id, lock_seconds=30, owner=first.owner)
    assert again.acquired and again.owner == first.owner
    assert not store.claim(job.id, lock_seconds=30).acquired
    assert store.redis.pttl(keys.job_lock(job.id)) > 1000  # the lock time is the new one


def test_terminal_commit_sets_ttl_and_keeps_the_lease_until_published(
    store: JobStore, fake_redis
) -> None:
    job = _new(store)
    assert fake_redis.zscore(keys.leases(), job.id) is not None
    job.move(JobStatus.RUNNING)
    job.move(JobStatus.SUCCEEDED)
    assert store.commit(job, [], lease_until=time.time() + 30)
    assert 0 < fake_redis.ttl(keys.job(job.id)) <= 900
    assert fake_redis.zscore(keys.leases(), job.id) is not None  # the finish is still due
    job.published = True
    assert store.commit(job, [])
    assert fake_redis.zscore(keys.leases(), job.id) is None


def test_expired_leases_lists_stuck_jobs(store: JobStore) -> None:
    job = _new(store)
    assert store.expired_leases(time.time()) == []
    assert store.expired_leases(time.time() + 120) == [job.id]


def test_cancel_flag_is_seen_by_claim(store: JobStore) -> None:
    job = _new(store)
    store.request_cancel(job.id)
    assert store.claim(job.id, lock_seconds=1).cancel_requested


def test_event_stream_is_bounded(fake_redis: fakeredis.FakeRedis) -> None:
    log = EventLog(fake_redis, maxlen=10, ttl=60)
    for i in range(200):
        log.append("j", {"type": "text.delta", "delta": str(i)})
    assert fake_redis.xlen(keys.events("j")) < 200
    assert fake_redis.ttl(keys.events("j")) > 0


def test_follow_resumes_after_an_id(fake_redis: fakeredis.FakeRedis) -> None:
    log = EventLog(fake_redis)
    first = log.append("j", {"type": "a"})
    log.append("j", {"type": "b"})
    log.append("j", {"type": "job.final"})
    assert [e.type for e in log.follow("j", after=first, timeout=1)] == ["b", "job.final"]


def test_wait_many_returns_only_what_is_new_per_job(fake_redis: fakeredis.FakeRedis) -> None:
    log = EventLog(fake_redis, maxlen=50, ttl=60)
    first_a = log.append("a", {"type": "job.status", "status": "queued"})
    log.append("b", {"type": "job.status", "status": "queued"})
    everything = log.wait_many({"a": "0-0", "b": "0-0", "never-written": "0-0"}, block_ms=1)
    assert {job: [e.type for e in evs] for job, evs in everything.items()} == {
        "a": ["job.status"],
        "b": ["job.status"],
    }
    log.append("a", {"type": "job.final", "status": "succeeded", "result": {"job_id": "a"}})
    newer = log.wait_many({"a": first_a, "b": everything["b"][-1].id}, block_ms=1)
    assert list(newer) == ["a"]
    assert newer["a"][0].final and newer["a"][0].data["result"] == {"job_id": "a"}
    assert log.wait_many({}, block_ms=1) == {}


def test_a_forwarded_delta_and_its_position_are_written_together(
    store: JobStore, fake_redis
) -> None:
    job = _new(store)
    ttl_before = fake_redis.ttl(keys.events(job.id))
    store.forward_delta(job.id, "resp_1", 7, "Hel")
    store.forward_delta(job.id, "resp_1", 8, "lo")
    assert store.stream_position(job.id, "resp_1") == 8
    assert store.stream_position(job.id, "resp_other") is None
    deltas = [e for e in EventLog(fake_redis).read(job.id) if e.type == "text.delta"]
    assert [(e.data["seq"], e.data["delta"]) for e in deltas] == [(7, "Hel"), (8, "lo")]
    assert 0 < fake_redis.ttl(keys.stream_seq(job.id)) <= 600
    # The event stream keeps the TTL its creation set (the end sets it again).
    assert ttl_before - 2 <= fake_redis.ttl(keys.events(job.id)) <= ttl_before


def _on_conversation(store: JobStore, at: float, conversation: str = "talk-1") -> Job:
    job = Job.new(JobSpec(input="turn", conversation=conversation))
    job.timings["queued_at"] = at
    store.create(job, [], lease_until=time.time() + 60)
    return job


def test_the_turn_goes_in_submission_order_whoever_asks_first(store: JobStore) -> None:
    # The starts reach the conversation in another order than the jobs were submitted.
    a, b, c = (_on_conversation(store, at) for at in (100.0, 101.0, 102.0))
    assert store.take_conversation(c, "talk-1").holder == a.id
    assert store.take_conversation(b, "talk-1").holder == a.id
    assert store.take_conversation(a, "talk-1").holder == a.id
    assert store.take_conversation(c, "talk-1").holder == a.id  # a holds it now
    store.give_back_conversation("talk-1", a.id)
    assert store.take_conversation(c, "talk-1").holder == b.id
    assert store.take_conversation(b, "talk-1").holder == b.id
    store.give_back_conversation("talk-1", b.id)
    assert store.take_conversation(c, "talk-1").holder == c.id


def test_a_job_that_ended_before_its_turn_is_passed_over(store: JobStore) -> None:
    a, b = _on_conversation(store, 100.0), _on_conversation(store, 101.0)
    cancelled = store.get(a.id)
    cancelled.move(JobStatus.CANCELLED)
    assert store.commit(cancelled, [], lease_until=None)
    assert store.take_conversation(b, "talk-1").holder == b.id
    assert store.redis.zcard(keys.conversation_queue("talk-1", None)) == 0


def test_a_job_missing_from_the_queue_joins_at_its_submission_time(
    store: JobStore, fake_redis
) -> None:
    # A continuation learns its conversation at its start; a record written before the
    # queue existed was never in it. Either takes its place by when it was submitted.
    early, late = _on_conversation(store, 100.0), _on_conversation(store, 105.0)
    fake_redis.delete(keys.conversation_queue("talk-1", None))
    assert store.take_conversation(late, "talk-1").holder == late.id  # alone in the queue
    store.give_back_conversation("talk-1", late.id)
    third = _on_conversation(store, 110.0)
    assert store.take_conversation(third, "talk-1").holder == third.id
    store.give_back_conversation("talk-1", third.id)
    newest = _on_conversation(store, 120.0)
    assert store.take_conversation(early, "talk-1").holder == early.id
    assert store.take_conversation(newest, "talk-1").holder == early.id


def test_only_jobs_that_take_turns_join_a_queue(store: JobStore, fake_redis) -> None:
    alone = Job.new(JobSpec(input="alone"))
    store.create(alone, [], lease_until=time.time() + 60)
    assert not fake_redis.keys("runq:convq:*")
    threaded = Job.new(JobSpec(input="x", backend="assistants", thread_id="thread_9"))
    store.create(threaded, [], lease_until=time.time() + 60)
    queue = keys.conversation_queue("thread_9", None)
    assert fake_redis.zrange(queue, 0, -1) == [threaded.id.encode()]
    assert fake_redis.ttl(queue) > 24 * 3600


def test_another_tenants_job_holds_no_place_in_the_owners_line(store: JobStore) -> None:
    # A job of another tenant naming the conversation fails at its history, which is not
    # its own; until then it must not keep the owner's later turns waiting behind it.
    stranger = Job.new(JobSpec(input="x", conversation="talk-1", tenant="other"))
    stranger.timings["queued_at"] = 50.0
    store.create(stranger, [], lease_until=time.time() + 60)
    mine = _on_conversation(store, 100.0)
    assert store.take_conversation(mine, "talk-1").holder == mine.id


def test_a_job_missing_from_the_queue_keeps_its_place_while_the_turn_is_held(
    store: JobStore, fake_redis
) -> None:
    holder = _on_conversation(store, 100.0)
    continuation = _on_conversation(store, 102.0)
    later = _on_conversation(store, 105.0)
    fake_redis.zrem(keys.conversation_queue("talk-1", None), continuation.id)
    assert store.take_conversation(holder, "talk-1").holder == holder.id
    assert store.take_conversation(continuation, "talk-1").holder == holder.id  # it joins the line
    store.give_back_conversation("talk-1", holder.id)
    assert store.take_conversation(later, "talk-1").holder == continuation.id


def _end(store: JobStore, job: Job, conversation: str) -> EndingWrites:
    ended = store.get(job.id)
    ended.move(JobStatus.CANCELLED)
    writes = EndingWrites(conversation_lock=conversation)
    with store.ending(job.id, writes):
        assert store.commit(ended, [], lease_until=None)
    return writes


def test_the_end_of_a_turn_names_the_start_waiting_first_in_line(
    store: JobStore, fake_redis
) -> None:
    holder, first, second = (_on_conversation(store, at) for at in (100.0, 101.0, 102.0))
    first.token = 3  # the token of its start step, which waits for the turn
    assert store.take_conversation(holder, "talk-1").holder == holder.id
    behind = store.take_conversation(second, "talk-1")
    assert (behind.holder, behind.after, behind.first_in_line) == (holder.id, first.id, False)
    waiting = store.take_conversation(first, "talk-1")
    assert (waiting.holder, waiting.after, waiting.first_in_line) == (holder.id, holder.id, True)
    store.wait_for_end(holder.id, first)
    writes = _end(store, holder, "talk-1")
    assert writes.next_turns == [(first.id, 3)]
    assert not fake_redis.exists(keys.turn_next(holder.id)), "taken by the end that read it"
    assert fake_redis.get(keys.conversation_lock("talk-1")) is None
    assert store.take_conversation(first, "talk-1").holder == first.id


def test_every_start_waiting_for_one_end_is_named_once(store: JobStore) -> None:
    # The next in the conversation's line and a continuation of the holder both wait for
    # its end; a job that asks again replaces its own mark (its start's newer token).
    holder, first, other = (_on_conversation(store, at) for at in (100.0, 101.0, 102.0))
    store.take_conversation(holder, "talk-1")
    store.wait_for_end(holder.id, first)
    other.token = 2
    store.wait_for_end(holder.id, other)
    other.token = 5
    store.wait_for_end(holder.id, other)
    assert sorted(_end(store, holder, "talk-1").next_turns) == sorted(
        [(first.id, 0), (other.id, 5)]
    )


def test_a_job_further_back_waits_for_the_end_of_the_job_before_it(store: JobStore) -> None:
    holder, first, second, third = (
        _on_conversation(store, at) for at in (100.0, 101.0, 102.0, 103.0)
    )
    store.take_conversation(holder, "talk-1")
    for job in (first, second, third):
        store.take_conversation(job, "talk-1")
    assert store.take_conversation(third, "talk-1").after == second.id
    # The job before it ended before its turn (cancelled): it is passed over, so the end
    # that will start `third` is one still to come.
    _end(store, second, "talk-1")
    assert store.take_conversation(third, "talk-1").after == first.id
    assert store.ahead_in_line(third, "talk-1") == first.id
    assert store.ahead_in_line(first, "talk-1") == ""
    assert store.ahead_in_line(holder, "talk-1") is None  # it holds the turn: out of line


def test_an_end_nobody_waits_for_names_no_start(store: JobStore) -> None:
    alone = _on_conversation(store, 100.0)
    assert store.take_conversation(alone, "talk-1").holder == alone.id
    assert _end(store, alone, "talk-1").next_turns == []


def test_an_end_refused_by_a_cancel_leaves_the_waiting_start_for_the_real_end(
    store: JobStore, fake_redis
) -> None:
    holder, waiting = _on_conversation(store, 100.0), _on_conversation(store, 101.0)
    store.take_conversation(holder, "talk-1")
    store.wait_for_end(holder.id, waiting)
    running = store.get(holder.id)
    store.request_cancel(holder.id)
    running.move(JobStatus.FAILED)
    writes = EndingWrites(conversation_lock="talk-1")
    with pytest.raises(CancelRequested), store.ending(holder.id, writes):
        store.commit(running, [], lease_until=None, unless_cancelled=True)
    assert writes.next_turns == []
    assert fake_redis.exists(keys.turn_next(holder.id))
