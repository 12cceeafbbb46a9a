"""Long waits in Redis (runs.delays), and the scheduler that routes them there."""

from __future__ import annotations

import time

import fakeredis
from celery import Celery

from runq.runs.delays import DelayedSteps, DueStep
from runq.worker.runtime import CeleryScheduler


def test_only_waits_past_the_threshold_are_kept_in_redis() -> None:
    delays = DelayedSteps(fakeredis.FakeRedis(), threshold=5.0)
    assert not delays.wants(0.25)
    assert not delays.wants(5.0)
    assert delays.wants(5.01)


def test_due_steps_are_popped_once_and_in_time() -> None:
    delays = DelayedSteps(fakeredis.FakeRedis())
    now = time.time()
    delays.add("job_a", "poll", 3, countdown=10)
    delays.add("job_b", "start", 1, countdown=60)
    delays.add("job_a", "poll", 3, countdown=12)  # the same step again: one entry
    assert delays.pending() == 2
    assert delays.pop_due(now + 5) == []
    assert delays.pop_due(now + 13) == [DueStep("job_a", "poll", 3)]
    assert delays.pop_due(now + 13) == []  # taken: no other pump sends it again
    assert delays.pop_due(now + 61) == [DueStep("job_b", "start", 1)]
    assert delays.pending() == 0


class _Recording(CeleryScheduler):
    def __init__(self, delays: DelayedSteps) -> None:
        super().__init__(Celery(set_as_current=False), delays)
        self.sent: list[tuple[str, str, int, float]] = []

    def send(self, step: str, job_id: str, token: int, countdown: float = 0.0) -> None:
        self.sent.append((step, job_id, token, countdown))


def test_a_job_id_with_the_separator_survives() -> None:
    delays = DelayedSteps(fakeredis.FakeRedis())
    delays.add("ask|odd", "poll", 7, countdown=6)
    assert delays.pop_due(time.time() + 7) == [DueStep("ask|odd", "poll", 7)]


def test_the_scheduler_sends_short_waits_and_parks_long_ones() -> None:
    delays = DelayedSteps(fakeredis.FakeRedis(), threshold=5.0)
    scheduler = _Recording(delays)
    scheduler.schedule("poll", "job_a", 2, 0.4)
    scheduler.schedule("start", "job_b", 1, 30.0)
    assert scheduler.sent == [("poll", "job_a", 2, 0.4)]
    assert delays.pop_due(time.time() + 31) == [DueStep("job_b", "start", 1)]
