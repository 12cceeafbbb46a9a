"""The wake queue and the runner that runs its steps in-process (runs.wakes,
worker.wake_runner): order, one taker per step, bounded threads, a failing step that
does not stop the runner, and the scheduler's choice between a wake and a message."""

from __future__ import annotations

import threading
import time
from typing import Any

import fakeredis
import pytest

from runq.runs.delays import DelayedSteps, DueStep
from runq.runs.wakes import WakeQueue
from runq.worker.runtime import CeleryScheduler
from runq.worker.wake_runner import WakeRunner
from tests.conftest import wait_for


@pytest.fixture
def queue() -> WakeQueue:
    return WakeQueue(fakeredis.FakeRedis())


def test_steps_come_out_oldest_first_each_to_one_taker(queue: WakeQueue) -> None:
    queue.push("job|with|bars", "poll", 3)
    queue.push_many([DueStep("b", "poll", 1), DueStep("c", "poll", 2)])
    assert queue.pending() == 3
    assert queue.take(0.1) == DueStep("job|with|bars", "poll", 3)
    assert queue.take(0.1) == DueStep("b", "poll", 1)
    assert queue.take(0.1) == DueStep("c", "poll", 2)
    assert queue.take(0.1) is None
    assert queue.push_many([]) == 0


def test_the_runner_runs_every_step_and_keeps_going_after_one_raises(queue: WakeQueue) -> None:
    ran: list[tuple[str, str, int]] = []

    def run_step(step: str, job_id: str, token: int) -> str:
        if job_id == "bad":
            raise RuntimeError("an outage, not the job's fault")
        ran.append((step, job_id, token))
        return "succeeded"

    runner = WakeRunner(queue, run_step, threads=2).start()
    try:
        queue.push("bad", "poll", 1)
        for n in range(5):
            queue.push(f"job-{n}", "poll", n)
        wait_for(lambda: len(ran) == 5 or None, timeout=10, what="five steps run")
    finally:
        runner.stop(timeout=5)
    assert sorted(ran) == [("poll", f"job-{n}", n) for n in range(5)]
    assert queue.pending() == 0


def test_the_runner_takes_no_more_steps_than_it_has_threads(queue: WakeQueue) -> None:
    release = threading.Event()
    running: list[str] = []
    lock = threading.Lock()

    def run_step(step: str, job_id: str, token: int) -> str:
        with lock:
            running.append(job_id)
        release.wait(10)
        return "succeeded"

    runner = WakeRunner(queue, run_step, threads=2).start()
    try:
        for n in range(5):
            queue.push(f"job-{n}", "poll", n)
        wait_for(lambda: len(running) == 2 or None, timeout=10, what="two steps running")
        time.sleep(0.3)  # the taker had time to take more, had it a free slot
        assert len(running) == 2
        assert queue.pending() == 3  # the rest wait in Redis, for any worker to take
        release.set()
        wait_for(lambda: len(running) == 5 or None, timeout=10, what="the rest run")
    finally:
        release.set()
        runner.stop(timeout=5)


class RecordingApp:
    """The Celery app's `send_task`, recorded (the scheduler's only use of the app)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, list[Any], dict[str, Any]]] = []

    def send_task(self, name: str, args: list[Any], **options: Any) -> None:
        self.sent.append((name, args, options))


def test_a_poll_due_now_is_a_wake_and_other_steps_stay_messages(queue: WakeQueue) -> None:
    app = RecordingApp()
    delays = DelayedSteps(queue.redis)
    scheduler = CeleryScheduler(app, delays, queue)  # type: ignore[arg-type]
    scheduler.schedule("poll", "now", 1, 0)
    scheduler.schedule("poll", "soon", 2, 1.5)  # a short countdown: a message
    scheduler.schedule("start", "new", 0, 0)
    scheduler.schedule("poll", "later", 3, 60)  # a long wait: runs.delays
    assert queue.take(0.1) == DueStep("now", "poll", 1)
    assert queue.take(0.1) is None
    assert [(name, args) for name, args, _ in app.sent] == [
        ("runq.jobs.poll", ["soon", 2]),
        ("runq.jobs.start", ["new", 0]),
    ]
    assert app.sent[0][2]["countdown"] == 1.5
    assert delays.pending() == 1
