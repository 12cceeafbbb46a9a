"""The thread in each `runs` worker that runs the steps of the wake queue (`runs.wakes`).

One taker thread pops a due step only when a slot is free, and hands it to a small pool
of threads: a step is one HTTP request and one commit, so a few dozen threads keep many
runs' ends moving while they wait on the network. A step that raises is logged and its
job's lease brings it back (as Celery would have done with a failed task); the runner
keeps going. On shutdown it stops taking and lets the running steps finish.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import structlog

from runq.runs import keys
from runq.runs.delays import DueStep
from runq.runs.wakes import WakeQueue

log = structlog.get_logger("runq.worker")

TAKE_TIMEOUT = 1.0
"""How long one `BRPOP` waits (an idle worker costs one Redis command a second for it).
A stop does not wait for it: `stop` pushes to the runner's own stop key, which the
`BRPOP` listens to as well, so a worker's warm shutdown is not a second longer."""


class WakeRunner:
    """Takes due steps from `queue` and runs each with `run_step(step, job_id, token)`."""

    def __init__(
        self,
        queue: WakeQueue,
        run_step: Callable[[str, str, int], str],
        threads: int = 32,
    ) -> None:
        self.queue = queue
        self.run_step = run_step
        self.threads = threads
        self._slots = threading.BoundedSemaphore(threads)
        self._stopping = threading.Event()
        self._pool: ThreadPoolExecutor | None = None
        self._taker: threading.Thread | None = None
        self._stop_key = keys.wake_stop(uuid.uuid4().hex)

    def start(self) -> WakeRunner:
        self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="runq-wake")
        self._taker = threading.Thread(target=self._take_loop, name="runq-wake-taker",
                                       daemon=True)  # fmt: skip
        self._taker.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Stop taking, then wait up to `timeout` for the steps that run."""
        self._stopping.set()
        if self._taker is not None:
            # On a thread of its own: a Redis that does not answer cannot make the stop
            # wait longer than the take's own timeout would.
            threading.Thread(target=self._interrupt, name="runq-wake-stop", daemon=True).start()
            self._taker.join(TAKE_TIMEOUT + 1.0)
        if self._pool is not None:
            done = threading.Thread(target=self._pool.shutdown, daemon=True)
            done.start()
            done.join(timeout)

    def _interrupt(self) -> None:
        try:
            self.queue.interrupt(self._stop_key)
        except Exception:  # Redis unreachable: the taker's wait ends by its timeout
            log.warning("wake.interrupt_failed", exc_info=True)

    def offer(self, steps: list[DueStep]) -> list[DueStep]:
        """Run at once as many of `steps` as there are free threads; returns the others.

        The pump of this same process pops the due safety looks of thousands of waiting
        runs (`runs.delays`); handing them to its own runner saves each one the queue's
        `LPUSH` and `BRPOP`. What it cannot take goes to the wake queue, for any worker.
        """
        taken = 0
        while taken < len(steps) and self._pool is not None and not self._stopping.is_set():
            if not self._slots.acquire(blocking=False):
                break
            self._pool.submit(self._run, steps[taken])
            taken += 1
        return steps[taken:]

    def _take_loop(self) -> None:
        while not self._stopping.is_set():
            if not self._slots.acquire(timeout=TAKE_TIMEOUT):
                continue
            try:
                due = self.queue.take(TAKE_TIMEOUT, stop_key=self._stop_key)
            except Exception:  # a Redis blip: the next turn tries again
                self._slots.release()
                log.exception("wake.take_failed")
                self._stopping.wait(TAKE_TIMEOUT)
                continue
            if due is None:
                self._slots.release()
                continue
            assert self._pool is not None
            self._pool.submit(self._run, due)
            if due.step == "look":  # looks come in bursts: take what else is there
                for more in self._take_more():
                    self._pool.submit(self._run, more)

    def _take_more(self) -> list[DueStep]:
        """As many more due steps as there are free threads, in one command, each
        holding its thread; the threads left unused are given back. (Only after a look:
        after a lone webhook's wake it would be a command that finds nothing.)"""
        free = 0
        while free < self.threads and self._slots.acquire(blocking=False):
            free += 1
        if not free:
            return []
        try:
            more = self.queue.take_more(free)
        except Exception:  # a Redis blip: they stay queued for the next turn
            log.exception("wake.take_failed")
            more = []
        for _ in range(free - len(more)):
            self._slots.release()
        return more

    def _run(self, due: DueStep) -> None:
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(process="worker", job_id=due.job_id,
                                               task_name=f"runq.wake.{due.step}")  # fmt: skip
        try:
            outcome = self.run_step(due.step, due.job_id, due.token)
            log.debug("wake.step", step=due.step, outcome=str(outcome))
        except Exception:
            # The step gave its lock back (`Steps.run`); the job's lease brings it back.
            log.exception("wake.step_failed", step=due.step)
        finally:
            structlog.contextvars.clear_contextvars()
            self._slots.release()
