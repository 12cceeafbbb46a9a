"""Priorities of a job's steps: the steps in flight go before new jobs; a queue's length
counts every priority's list (fakeredis)."""

from __future__ import annotations

import fakeredis
from kombu.transport.redis import PRIORITY_STEPS
from prometheus_client import CollectorRegistry

from runq.config.celery import PRIORITY_IN_FLIGHT, PRIORITY_NEW_JOB
from runq.producers.ops.metrics_server import QueueCollector, priority_lists


def test_steps_in_flight_go_before_new_jobs() -> None:
    # kombu's Redis transport pops the lower number first, in these steps.
    assert PRIORITY_IN_FLIGHT < PRIORITY_NEW_JOB
    assert {PRIORITY_IN_FLIGHT, PRIORITY_NEW_JOB} <= set(PRIORITY_STEPS)


def test_a_queues_length_counts_the_messages_of_every_priority() -> None:
    r = fakeredis.FakeRedis()
    woken, in_flight, _, new = priority_lists("runs")
    r.rpush(woken, "a")
    r.rpush(in_flight, "b", "c")
    r.rpush(new, *[f"start-{n}" for n in range(5)])
    r.rpush(priority_lists("tools")[1], "x")
    registry = CollectorRegistry()
    registry.register(QueueCollector(r))
    assert registry.get_sample_value("runq_queue_length", {"queue": "runs"}) == 8
    assert registry.get_sample_value("runq_queue_length", {"queue": "tools"}) == 1
