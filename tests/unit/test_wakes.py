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


def test_the_pump_hands_its_own_runner_what_it_can_run_at_once(queue: WakeQueue) -> None:
    """`offer`: the steps a runner has free threads for run in this process; the others
    are given back for the wake queue (where any worker takes them)."""
    release = threading.Event()
    ran: list[str] = []

    def run_step(step: str, job_id: str, token: int) -> str:
        ran.append(job_id)
        release.wait(10)
        return "waiting"

    # Three threads: the taker keeps one for the step it waits for in Redis.
    runner = WakeRunner(queue, run_step, threads=3).start()
    try:
        due = [DueStep(f"job-{n}", "look", 1) for n in range(3)]
        assert runner.offer(due) == due[2:]
        wait_for(lambda: len(ran) == 2 or None, timeout=10, what="two looks running")
        assert runner.offer([DueStep("job-9", "look", 1)]) == [DueStep("job-9", "look", 1)]
        release.set()
        wait_for(lambda: runner.offer([DueStep("job-x", "look", 1)]) == [] or None,
                 timeout=10, what="a free thread again")  # fmt: skip
        wait_for(lambda: "job-x" in ran or None, timeout=10, what="the offered look run")
        assert sorted(ran) == ["job-0", "job-1", "job-x"]
        assert queue.pending() == 0  # nothing went through Redis
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
    scheduler.schedule("look", "looked", 4, 0)  # a safety look due now: a wake too
    assert queue.take(0.1) == DueStep("now", "poll", 1)
    assert queue.take(0.1) == DueStep("looked", "look", 4)
    assert queue.take(0.1) is None
    assert [(name, args) for name, args, _ in app.sent] == [
        ("runq.jobs.poll", ["soon", 2]),
        ("runq.jobs.start", ["new", 0]),
    ]
    assert app.sent[0][2]["countdown"] == 1.5
    assert delays.pending() == 1


def test_a_burst_of_looks_is_taken_in_one_more_command(queue: WakeQueue) -> None:
    """After a look, the runner takes what else waits (up to its free threads) with one
    `RPOP` of a count, not a `BRPOP` each."""
    ran: list[str] = []
    lock = threading.Lock()

    def run_step(step: str, job_id: str, token: int) -> str:
        with lock:
            ran.append(job_id)
        return "waiting"

    queue.push_many([DueStep(f"job-{n}", "look", 1) for n in range(10)])
    assert queue.take_more(2) == [DueStep("job-0", "look", 1), DueStep("job-1", "look", 1)]
    assert queue.take_more(0) == []
    pops: list[str] = []
    real_rpop, real_brpop = queue.redis.rpop, queue.redis.brpop
    queue.redis.rpop = lambda *a, **k: (pops.append("rpop"), real_rpop(*a, **k))[1]
    queue.redis.brpop = lambda *a, **k: (pops.append("brpop"), real_brpop(*a, **k))[1]
    runner = WakeRunner(queue, run_step, threads=32).start()
    try:
        wait_for(lambda: len(ran) == 8 or None, timeout=10, what="the eight looks run")
    finally:
        runner.stop(timeout=5)
    assert sorted(ran) == sorted(f"job-{n}" for n in range(2, 10))
    assert pops[:2] == ["brpop", "rpop"]  # one blocking pop, then the rest in one
    assert pops.count("rpop") == 1


def test_an_interrupt_ends_a_take_and_a_waiting_step_comes_first(queue: WakeQueue) -> None:
    queue.push("due", "poll", 1)
    queue.interrupt("runq:wakes:stop:r1")
    assert queue.take(0.1, stop_key="runq:wakes:stop:r1") == DueStep("due", "poll", 1)
    assert queue.take(0.1, stop_key="runq:wakes:stop:r1") is None  # the interrupt
    assert not queue.redis.exists("runq:wakes:stop:r1")  # taken: nothing left behind
    queue.interrupt("runq:wakes:stop:gone")  # a taker that had left: the push lapses
    assert 0 < queue.redis.ttl("runq:wakes:stop:gone") <= 60


def test_a_stop_does_not_wait_for_the_takers_timeout(
    queue: WakeQueue, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker's warm shutdown stops its runner: the idle taker's `BRPOP` ends when the
    stop pushes to the runner's own key, not when its wait runs out."""
    monkeypatch.setattr("runq.worker.wake_runner.TAKE_TIMEOUT", 30.0)
    ran: list[str] = []
    runner = WakeRunner(queue, lambda step, job_id, token: ran.append(job_id) or "ok").start()
    queue.push("before-the-stop", "poll", 1)
    wait_for(lambda: ran or None, timeout=10, what="the step run")
    began = time.monotonic()
    runner.stop(timeout=5)
    assert runner._taker is not None and not runner._taker.is_alive()
    assert time.monotonic() - began < 10, "the stop waited for the 30 s take"
    queue.push("after-the-stop", "poll", 2)
    assert queue.pending() == 1 and ran == ["before-the-stop"]  # left for other workers


def test_a_redis_that_does_not_answer_the_stop_does_not_hold_it(
    queue: WakeQueue, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The interrupt is a command like any other: if it hangs, the stop still ends once
    the taker's own wait (1 s) runs out, as it did before there was an interrupt."""
    hung = threading.Event()
    monkeypatch.setattr(queue, "interrupt", lambda stop_key: hung.wait(30))
    runner = WakeRunner(queue, lambda step, job_id, token: "ok").start()
    began = time.monotonic()
    runner.stop(timeout=5)
    hung.set()
    assert runner._taker is not None and not runner._taker.is_alive()
    assert time.monotonic() - began < 10, "the stop waited for the hung interrupt"
