"""Fair admission's uncontended path (`Admission.enter`, `fair_push.lua`) on fakeredis: a
job is admitted at its push only when the round-robin would take it at its next call,
by the workers' policy, and is then counted as any admitted job is."""

from __future__ import annotations

import time

import fakeredis
import pytest

from runq.runs import keys
from runq.runs.budgets import BudgetBook
from runq.runs.fairness import Admission
from runq.runs.job import Job, JobSpec


def new_job(job_id: str, tenant: str | None = "acme", **spec: object) -> Job:
    return Job.new(JobSpec(input="hi", tenant=tenant, **spec), job_id)  # type: ignore[arg-type]


@pytest.fixture
def producer(fake_redis: fakeredis.FakeRedis) -> Admission:
    """A producer's admission: it configures nothing; the workers' policy decides."""
    return Admission(fake_redis)


def worker(fake_redis: fakeredis.FakeRedis, slots: int = 2, **policy: object) -> Admission:
    """A worker's admission that has said it is alive (its heartbeat publishes its policy)."""
    admission = Admission(fake_redis, admit_at_push=True, **policy)  # type: ignore[arg-type]
    admission.heartbeat("w1", slots)
    return admission


def test_no_worker_seen_lately_means_the_job_waits(producer: Admission) -> None:
    assert producer.enter(new_job("a-0")) is False
    assert producer.is_waiting("a-0")


def test_workers_that_do_not_admit_at_push_publish_nothing(
    fake_redis: fakeredis.FakeRedis,
) -> None:
    Admission(fake_redis).heartbeat("w1", 2)  # the default
    assert fake_redis.get(keys.fair("policy")) is None
    assert Admission(fake_redis).enter(new_job("a-0")) is False


def test_an_uncontended_job_is_admitted_at_once_and_counted_like_any_admitted_job(
    producer: Admission, fake_redis: fakeredis.FakeRedis
) -> None:
    pump = worker(fake_redis, slots=1, window=2)
    assert producer.enter(new_job("a-0")) is True
    assert not producer.is_waiting("a-0")
    assert producer.inflight_by_tenant() == {"acme": 1}
    assert fake_redis.zscore(keys.fair("admitted"), "a-0") is not None  # fills the window
    assert producer.enter(new_job("a-1")) is True
    # The window (2) is full: the next job waits for the pump, in its tenant's list.
    assert producer.enter(new_job("a-2")) is False
    assert producer.waiting_by_tenant() == {"acme": 1}
    # A start that begins frees its place; the pump takes the waiting job, not a newcomer.
    assert pump.admit(started="a-0").admitted == ["a-2"]
    assert producer.enter(new_job("a-3")) is False  # a job waited a moment ago: a turn
    assert pump.admit().admitted == []  # the window is full again (a-1, a-2)
    # An ended job gives its place back once, with nothing to settle.
    assert pump.release("a-0", spent=(0.0, 10)) is True
    assert pump.release("a-0", spent=(0.0, 10)) is False
    assert producer.inflight_by_tenant() == {"acme": 2}


def test_a_job_waiting_in_any_lane_keeps_the_turns(
    producer: Admission, fake_redis: fakeredis.FakeRedis
) -> None:
    pump = worker(fake_redis, window=50)
    assert producer.push(new_job("a-0")) == 1  # waits (say, pushed before the policy)
    # beta's job would find room, but acme's waits: beta takes its turn, not a shortcut.
    assert producer.enter(new_job("b-0", tenant="beta")) is False
    assert pump.admit().admitted == ["a-0", "b-0"]
    assert producer.enter(new_job("b-1", tenant="beta")) is True  # nothing waits now


def test_the_workers_caps_rates_and_budgets_decide_not_the_producers(
    producer: Admission, fake_redis: fakeredis.FakeRedis
) -> None:
    budgets = BudgetBook(fake_redis, {"gamma": {"tokens": 10**6}, "batch:nightly": {"usd": 5}})
    pump = worker(fake_redis, caps={"acme": 1}, rpm={"beta": 60}, budgets=budgets, window=50)
    assert producer.enter(new_job("a-0")) is True
    assert producer.enter(new_job("a-1")) is False  # acme is at its cap: it waits
    assert pump.admit().admitted == []  # ... and the pump skips it too
    assert pump.release("a-0", spent=(0.0, 0)) is True
    assert pump.admit().admitted == ["a-1"]
    # acme is at its cap again with nothing left waiting: its lane is gone at once (a
    # listed lane keeps every push waiting), not at a turn it gets only below its cap.
    assert fake_redis.zcard(keys.fair("lanes")) == 0
    # A tenant with a rate, a tenant with a budget, a job in a batch with a budget: the
    # pump admits them (it takes from the bucket, reserves the estimate).
    assert producer.enter(new_job("b-0", tenant="beta")) is False
    assert pump.admit().admitted == ["b-0"]
    assert producer.enter(new_job("g-0", tenant="gamma")) is False
    assert pump.admit().admitted == ["g-0"]
    assert budgets.state("gamma", time.time())["tokens"]["reserved"] > 0
    assert producer.enter(new_job("d-0", tenant=None, metadata={"batch": "nightly"})) is False
    assert pump.admit().admitted == ["d-0"]
    assert producer.enter(new_job("d-1", tenant=None)) is True  # `default`: no budget


def test_the_policy_lapses_without_heartbeats(fake_redis: fakeredis.FakeRedis) -> None:
    worker(fake_redis)
    ttl = fake_redis.ttl(keys.fair("policy"))
    assert 0 < ttl <= 15
    fake_redis.delete(keys.fair("policy"))  # what its lapse does
    # (a producer reads it at most once a second: this one reads it now)
    assert Admission(fake_redis).enter(new_job("a-0")) is False


def test_only_a_job_that_waits_says_so(
    producer: Admission, fake_redis: fakeredis.FakeRedis
) -> None:
    from runq.runs.events import EventLog

    worker(fake_redis, window=1)
    assert producer.enter(new_job("a-0")) is True
    assert producer.enter(new_job("b-0", tenant=None)) is False
    events = EventLog(fake_redis)
    assert [e.type for e in events.read("a-0")] == []
    [waiting] = events.read("b-0")
    assert {"type": "job.waiting", "reason": "fair_share", "tenant": "default"}.items() <= (
        waiting.data.items()
    )


def test_a_producer_that_dies_before_its_send_leaves_a_job_the_sweeper_starts(
    producer: Admission, fake_redis: fakeredis.FakeRedis, store, scheduler
) -> None:
    from runq.runs.events import EventLog
    from runq.runs.sweeper import Sweeper
    from runq.runs.toolcalls import ToolCalls
    from runq.runs.tools import ToolRegistry

    pump = worker(fake_redis)
    sweeper = Sweeper(
        store,
        scheduler,
        ToolCalls(fake_redis, ToolRegistry(), EventLog(fake_redis)),
        waiting=pump.is_waiting,
        on_gone=pump.release,
    )
    job = new_job("a-0").spec.validate()
    record = Job.new(job, "a-0")
    created_at = time.time()
    store.create(record, [], lease_until=created_at + 60)  # the producer's SUBMIT_LEASE
    assert producer.enter(record) is True
    # ... and the producer died here, before sending the start.
    assert fake_redis.zscore(keys.leases(), "a-0") == pytest.approx(created_at + 60)
    assert sweeper.sweep(now=created_at + 30) == []
    assert sweeper.sweep(now=created_at + 61) == ["a-0"]
    assert scheduler.scheduled == [("start", "a-0", 0, 0)]
    # Its start then begins (the window frees) and its end gives back its place.
    pump.admit(started="a-0")
    assert fake_redis.zcard(keys.fair("admitted")) == 0
    assert pump.release("a-0", spent=(0.0, 0)) is True
    assert pump.inflight_by_tenant() == {}


def test_the_workers_setting_turns_admission_at_the_push_on(
    fake_redis: fakeredis.FakeRedis, producer: Admission, monkeypatch: pytest.MonkeyPatch
) -> None:
    from runq.config.settings import load_settings
    from runq.runs.fairness import admission_from_settings

    assert admission_from_settings(fake_redis, load_settings()).admit_at_push is False
    monkeypatch.setenv("RUNQ_FAIR_ADMIT_AT_PUSH", "true")
    workers = admission_from_settings(fake_redis, load_settings())
    assert workers.admit_at_push is True
    workers.heartbeat("w1", 2)
    assert producer.enter(new_job("a-0")) is True  # nothing waits: admitted at its push
