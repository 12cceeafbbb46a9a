from __future__ import annotations

import time

from runq.runs.events import EventLog
from runq.runs.job import Job, JobSpec, JobStatus
from runq.runs.sweeper import Sweeper
from runq.runs.toolcalls import ToolCalls
from runq.runs.tools import ToolRegistry


def _sweeper(store, scheduler, fake_redis) -> Sweeper:
    return Sweeper(
        store, scheduler, ToolCalls(fake_redis, ToolRegistry(), EventLog(fake_redis)), extension=30
    )


def test_a_job_whose_driver_died_is_redriven_once(store, scheduler, fake_redis) -> None:
    job = Job.new(JobSpec(input="hi").validate())
    store.create(job, [], lease_until=time.time() - 1)  # the producer died after writing
    sweeper = _sweeper(store, scheduler, fake_redis)
    assert sweeper.sweep() == [job.id]
    assert scheduler.scheduled == [("start", job.id, 0, 0)]
    assert sweeper.sweep() == []  # the lease was extended: no second re-drive at once
    assert sweeper.sweep(now=time.time() + 31) == [job.id]


def test_terminal_jobs_are_dropped_from_the_index(store, scheduler, fake_redis) -> None:
    job = Job.new(JobSpec(input="hi").validate())
    store.create(job, [], lease_until=time.time() - 1)
    job.move(JobStatus.RUNNING)
    job.move(JobStatus.SUCCEEDED)
    store.commit(job)
    assert _sweeper(store, scheduler, fake_redis).sweep() == []
    assert scheduler.scheduled == []


def test_an_ended_job_whose_finish_was_lost_is_finished(store, scheduler, fake_redis) -> None:
    job = Job.new(JobSpec(input="hi").validate())
    store.create(job, [], lease_until=time.time() - 1)
    job.move(JobStatus.RUNNING)
    job.move(JobStatus.SUCCEEDED)
    token = job.due("finish")
    store.commit(job, lease_until=time.time() - 1)  # ended, but the finish message was lost
    assert _sweeper(store, scheduler, fake_redis).sweep() == [job.id]
    assert scheduler.scheduled == [("finish", job.id, token, 0)]


def test_an_ended_job_whose_result_went_out_with_its_end_is_finished_too(
    store, scheduler, fake_redis
) -> None:
    # Its worker died after the end (result included) and before the job's place in
    # flight was given back: the lease it kept brings the finish task to do that.
    job = Job.new(JobSpec(input="hi").validate())
    store.create(job, [], lease_until=time.time() - 1)
    job.move(JobStatus.RUNNING)
    job.move(JobStatus.SUCCEEDED)
    token = job.due("finish")
    job.published = True
    store.commit(job, lease_until=time.time() - 1)
    assert _sweeper(store, scheduler, fake_redis).sweep() == [job.id]
    assert scheduler.scheduled == [("finish", job.id, token, 0)]


def test_waiting_tools_redispatches_missing_calls(store, scheduler, fake_redis) -> None:
    job = Job.new(JobSpec(input="hi").validate())
    store.create(job, [], lease_until=time.time() - 1)
    job.move(JobStatus.RUNNING)
    job.move(JobStatus.WAITING_TOOLS)
    job.round = 1
    job.pending_calls = [{"call_id": "c1", "name": "x", "arguments": "{}"}]
    token = job.due("submit_tool_outputs")
    store.commit(job, lease_until=time.time() - 1)
    assert _sweeper(store, scheduler, fake_redis).sweep() == [job.id]
    assert scheduler.dispatched == [(job.id, token, ["c1"])]


def test_only_one_worker_sweeps_per_interval(store, scheduler, fake_redis) -> None:
    sweeper = _sweeper(store, scheduler, fake_redis)
    job = Job.new(JobSpec(input="hi").validate())
    store.create(job, [], lease_until=time.time() - 1)
    assert sweeper.sweep_if_due("w1") == [job.id]
    store.extend_lease(job.id, time.time() - 1)
    assert sweeper.sweep_if_due("w2") == []  # w1 holds this interval
