"""Fair admission's Lua (`fair_admit.lua`) on fakeredis: order, weights, a lone tenant,
caps, the window, release and the lease an admitted job gets."""

from __future__ import annotations

import time
from collections import Counter

import fakeredis
import pytest

from runq.runs import keys
from runq.runs.fairness import Admission
from runq.runs.job import Job, JobSpec


def submit(admission: Admission, tenant: str | None, n: int, prefix: str = "") -> list[Job]:
    jobs = []
    for i in range(n):
        job = Job.new(JobSpec(input="hi", tenant=tenant), f"{prefix or tenant}-{i}")
        assert admission.push(job) == i + 1
        jobs.append(job)
    return jobs


def drain(admission: Admission, per_call: int) -> list[str]:
    """Admit everything, `per_call` at a time, marking each admitted job started."""
    order: list[str] = []
    while True:
        got = admission.admit(window=per_call).admitted
        if not got:
            return order
        for job_id in got:
            admission.started(job_id)
        order.extend(got)


@pytest.fixture
def admission(fake_redis: fakeredis.FakeRedis) -> Admission:
    return Admission(fake_redis)


def test_a_late_tenant_is_served_before_the_backlog_of_another(admission: Admission) -> None:
    submit(admission, "acme", 50)
    first = admission.admit(window=4).admitted
    assert first == ["acme-0", "acme-1", "acme-2", "acme-3"]
    for job_id in first:
        admission.started(job_id)
    submit(admission, "beta", 3)
    order = drain(admission, per_call=4)
    # beta's three jobs are among the next six admitted, one every other job.
    assert [job_id for job_id in order[:6] if job_id.startswith("beta")] == [
        "beta-0",
        "beta-1",
        "beta-2",
    ]
    assert len(order) == 49  # every job admitted once
    assert len(set(order)) == 49


def test_weights_share_the_admissions(fake_redis: fakeredis.FakeRedis) -> None:
    admission = Admission(fake_redis, weights={"acme": 3})
    submit(admission, "acme", 30)
    submit(admission, "beta", 30)
    order = drain(admission, per_call=5)[:40]
    counts = Counter(job_id.split("-")[0] for job_id in order)
    assert counts == {"acme": 30, "beta": 10}
    # within each tenant, oldest first
    assert [j for j in order if j.startswith("acme")] == [f"acme-{i}" for i in range(30)]


def test_a_lone_tenant_gets_the_whole_window(admission: Admission) -> None:
    submit(admission, None, 20, prefix="solo")
    assert len(admission.admit(window=16).admitted) == 16
    assert admission.admit(window=16).admitted == []  # the window is full
    for i in range(5):
        admission.started(f"solo-{i}")
    assert admission.admit(window=16).admitted == ["solo-16", "solo-17", "solo-18", "solo-19"]


def test_a_capped_tenant_is_skipped_not_waited_for(fake_redis: fakeredis.FakeRedis) -> None:
    admission = Admission(fake_redis, caps={"acme": 2})
    submit(admission, "acme", 10)
    submit(admission, "beta", 10)
    order = drain(admission, per_call=50)
    assert [j for j in order if j.startswith("acme")] == ["acme-0", "acme-1"]
    assert len([j for j in order if j.startswith("beta")]) == 10
    assert admission.inflight_by_tenant() == {"acme": 2, "beta": 10}
    # One of acme's jobs ends: its place in flight goes to its next job.
    assert admission.release("acme-0") is True
    assert admission.release("acme-0") is False  # once only
    assert admission.admit(window=50).admitted == ["acme-2"]


def test_an_admitted_job_gets_a_lease_and_a_waiting_one_is_known(
    admission: Admission, fake_redis: fakeredis.FakeRedis
) -> None:
    submit(admission, "acme", 2)
    assert admission.is_waiting("acme-1")
    admission.admit(now=1000.0, window=1)
    assert fake_redis.zscore(keys.leases(), "acme-0") == pytest.approx(1060.0)
    assert not admission.is_waiting("acme-0")
    assert admission.is_waiting("acme-1")


def test_a_job_cancelled_while_waiting_leaves_its_list(admission: Admission) -> None:
    submit(admission, "acme", 3)
    assert admission.release("acme-1") is True
    assert admission.waiting_by_tenant() == {"acme": 2}
    assert drain(admission, per_call=10) == ["acme-0", "acme-2"]
    assert admission.waiting_by_tenant() == {}


def test_a_duplicate_push_is_ignored(admission: Admission) -> None:
    job = submit(admission, "acme", 1)[0]
    assert admission.push(job) == 0
    assert admission.waiting_by_tenant() == {"acme": 1}


def test_stale_admissions_stop_filling_the_window(admission: Admission) -> None:
    submit(admission, "acme", 4)
    assert len(admission.admit(now=1000.0, window=2).admitted) == 2
    assert admission.admit(now=1001.0, window=2).admitted == []
    # never started (a lost message; the sweeper starts them): after a while they no
    # longer count, and the next jobs are admitted.
    assert admission.admit(now=1200.0, window=2).admitted == ["acme-2", "acme-3"]


def test_the_derived_window_is_twice_the_live_slots(
    admission: Admission, fake_redis: fakeredis.FakeRedis
) -> None:
    assert admission.current_window(now=100.0) == 8  # no worker seen: the minimum
    admission.heartbeat("w1", 8, now=100.0)
    admission.heartbeat("w2", 4, now=60.0)  # gone quiet
    assert admission.current_window(now=100.0) == 16
    admission.heartbeat("w2", 4, now=99.0)
    assert admission.current_window(now=100.0) == 24
    assert admission.current_window(now=5000.0) == 8  # both long quiet: forgotten
    assert fake_redis.hlen(keys.fair("slots")) == 0


def test_a_tenant_over_its_rate_is_skipped_until_its_bucket_refills(
    fake_redis: fakeredis.FakeRedis,
) -> None:
    admission = Admission(fake_redis, rpm={"acme": 2})
    submit(admission, "acme", 5)
    submit(admission, "beta", 3)
    first = admission.admit(now=1000.0, window=50).admitted
    assert sorted(first) == ["acme-0", "acme-1", "beta-0", "beta-1", "beta-2"]
    assert admission.admit(now=1010.0, window=50).admitted == []  # 2 a minute: not yet
    assert admission.admit(now=1031.0, window=50).admitted == ["acme-2"]


def test_a_token_rate_counts_each_jobs_estimate(fake_redis: fakeredis.FakeRedis) -> None:
    # each job estimates 1 input token + 1024 output tokens
    admission = Admission(fake_redis, tpm={"acme": 3000})
    submit(admission, "acme", 4)
    assert admission.admit(now=1000.0, window=50).admitted == ["acme-0", "acme-1"]
    assert admission.admit(now=1010.0, window=50).admitted == ["acme-2"]  # 950 + 500 left
    assert admission.admit(now=1011.0, window=50).admitted == []


def test_the_sweeper_keeps_a_waiting_job_waiting_and_starts_a_lost_admitted_one(
    admission: Admission, fake_redis: fakeredis.FakeRedis, store, scheduler
) -> None:
    from runq.runs.events import EventLog
    from runq.runs.sweeper import Sweeper
    from runq.runs.toolcalls import ToolCalls
    from runq.runs.tools import ToolRegistry

    sweeper = Sweeper(
        store,
        scheduler,
        ToolCalls(fake_redis, ToolRegistry(), EventLog(fake_redis)),
        waiting=admission.is_waiting,
        on_gone=admission.release,
    )
    jobs = [Job.new(JobSpec(input="hi", tenant="acme").validate(), f"acme-{i}") for i in range(2)]
    for job in jobs:
        store.create(job, [], lease_until=1000.0)
        admission.push(job)
    assert (fake_redis.zscore(keys.leases(), "acme-0") or 0) > time.time() + 3000  # a long lease
    # Admitted, then the worker died before sending its start: the lease brings it back.
    assert admission.admit(now=2000.0, window=1).admitted == ["acme-0"]
    assert sweeper.sweep(now=time.time() + 7000) == ["acme-0"]
    assert scheduler.scheduled == [("start", "acme-0", 0, 0)]
    assert (fake_redis.zscore(keys.leases(), "acme-1") or 0) > time.time() + 7000  # pushed on
    # A record that is gone gives back its place.
    fake_redis.delete(keys.job("acme-1"))
    assert sweeper.sweep(now=time.time() + 20000) == ["acme-0"]  # acme-1: dropped
    assert admission.waiting_by_tenant() == {}


def test_a_start_that_began_frees_its_place_in_the_same_call(admission: Admission) -> None:
    submit(admission, "acme", 3)
    assert admission.admit(window=1).admitted == ["acme-0"]
    assert admission.admit(window=1).admitted == []
    assert admission.admit(window=1, started="acme-0").admitted == ["acme-1"]


def test_the_derived_window_is_reused_briefly_and_read_again_after_a_heartbeat(
    admission: Admission, fake_redis: fakeredis.FakeRedis
) -> None:
    submit(admission, "acme", 40)
    assert len(admission.admit().admitted) == 8  # no worker seen: the minimum
    # Another worker's heartbeat is not read again within the second...
    Admission(fake_redis).heartbeat("w2", 6)
    assert admission.admit().admitted == []
    # ... this process's own heartbeat is (and so is any after WINDOW_REUSE).
    admission.heartbeat("w1", 4)
    assert len(admission.admit().admitted) == 2 * (6 + 4) - 8


def test_a_lane_whose_list_ran_out_is_dropped_at_its_next_turn(
    admission: Admission, fake_redis: fakeredis.FakeRedis
) -> None:
    submit(admission, "acme", 2)
    assert admission.admit(window=2).admitted == ["acme-0", "acme-1"]
    assert admission.waiting_by_tenant() == {}
    for job_id in ("acme-0", "acme-1"):
        admission.started(job_id)
    assert admission.admit(window=2).admitted == []
    assert fake_redis.zcard(keys.fair("lanes")) == 0
    submit(admission, "acme", 1, prefix="again")
    assert admission.admit(window=2).admitted == ["again-0"]


@pytest.mark.parametrize("capped", [False, True])
def test_a_turn_left_to_a_lane_that_emptied_since_goes_to_the_next_lane(
    fake_redis: fakeredis.FakeRedis, capped: bool
) -> None:
    # acme's turn (weight 2) is left after one job; its other job is then cancelled
    # while it waits, so its lane leaves the set while the round-robin still names it.
    admission = Admission(fake_redis, weights={"acme": 2}, caps={"acme": 1} if capped else {})
    submit(admission, "acme", 2)
    submit(admission, "beta", 2)
    assert admission.admit(window=1).admitted == ["acme-0"]
    assert admission.release("acme-1") is True  # cancelled while it waited
    assert fake_redis.hget(keys.fair("state"), "lane") == b"acme"
    # Capped (acme-0 in flight) or not, beta is served, not passed over for a lane gone.
    assert admission.admit(window=10).admitted == ["beta-0", "beta-1"]
    assert admission.waiting_by_tenant() == {}
