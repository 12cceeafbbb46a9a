"""Keeping watch over a stream: its reader in a thread of its own, the step in charge.

A stream step blocks in the backend's iterator for the whole run, and an iterator only
returns control when an event arrives: a run that thinks for ten seconds before its
first token would keep the step deaf to a cancel for ten seconds, and its worker slot
taken until the run ended. So the blocking read happens in a *reader* thread, and the
step's own thread keeps watch:

- every callback the reader makes (a text delta, a run's handle) is handed to the
  step's thread and runs there, so the job, its lock and Redis are only ever touched by
  the thread that claimed them;
- between callbacks, and at least every `tick` seconds when none arrive, the step
  looks at the job's cancel flag (one `EXISTS`), and renews its job lock on its own
  schedule (no longer only when deltas happen to arrive);
- when the flag is up, `CancelRequested` is raised in the step's thread at once (the
  step ends the job and cancels the run at the backend), and the reader is told to stop:
  its next callback raises `StreamStopped` inside the backend's iterator, whose
  `finally` closes the HTTP stream in the reader's own thread (an HTTP connection is
  never closed from a thread that is not reading it).

The reader is a daemon thread: a step never waits for it to notice. It ends at its next
event, when the server ends the stream (a cancelled run's stream ends), or at the
client's read timeout, whichever comes first.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import structlog

from runq.runs.cancellation import CancelRequested

log = structlog.get_logger("runq.steps")

T = TypeVar("T")

TICK = 0.25
"""Seconds between looks at the cancel flag while no event arrives: a cancel stops a
stream within this (plus one Redis round trip), far inside the second it is allowed."""


class StreamStopped(Exception):
    """Raised in the reader thread: the step stopped following the stream.

    Not a `RunqError`: it never leaves the reader thread (the backend's iterator closes
    its HTTP stream on the way out, and the reader drops it).
    """


class _Call:
    """A callback the reader made, waiting to run on the step's thread."""

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self.fn = fn
        self.args = args
        self.done = threading.Event()
        self.value: Any = None
        self.failed = False

    def run(self) -> BaseException | None:
        """Run on the step's thread; return what it raised, for the step to raise."""
        try:
            self.value = self.fn(*self.args)
        except BaseException as err:  # handed to the step's thread as it is
            self.failed = True
            return err
        finally:
            self.done.set()
        return None

    def refuse(self) -> None:
        self.failed = True
        self.done.set()


@dataclass
class _Done:
    """What the reader's call came to: a value or the error it raised."""

    value: Any = None
    error: BaseException | None = None


class StreamWatch:
    """Runs one blocking stream call in a reader thread while the step keeps watch.

    `cancelled()` says whether the job's cancel flag is up; `renew()` extends the step's
    job lock, every `renew_every` seconds.
    """

    def __init__(
        self,
        job_id: str,
        *,
        cancelled: Callable[[], bool],
        renew: Callable[[], object],
        renew_every: float,
        tick: float = TICK,
    ) -> None:
        self.job_id = job_id
        self.cancelled = cancelled
        self.renew = renew
        self.renew_every = renew_every
        self.tick = tick
        self._queue: queue.Queue[_Call | _Done] = queue.Queue()
        self._lock = threading.Lock()
        self._stopped = False

    def on_step_thread(self, fn: Callable[..., T]) -> Callable[..., T]:
        """`fn` as a callback for the reader: it runs on the step's thread, and the
        reader waits for it (so its return value still steers the stream)."""

        def relay(*args: Any) -> T:
            call = _Call(fn, args)
            with self._lock:
                if self._stopped:
                    raise StreamStopped
                self._queue.put(call)
            call.done.wait()
            if call.failed:
                raise StreamStopped
            return call.value

        return relay

    def run(self, call: Callable[[], T]) -> T:
        """`call()`'s value or error, read in a reader thread; `CancelRequested` as soon
        as the job's cancel flag is seen (the reader is then told to stop)."""
        reader = threading.Thread(target=self._read, args=(call,), daemon=True,
                                  name="runq-stream-reader")  # fmt: skip
        reader.start()
        try:
            return self._watch()
        finally:
            self._stop()

    def _read(self, call: Callable[[], Any]) -> None:
        try:
            done = _Done(value=call())
        except BaseException as err:  # the step's thread decides what it means
            done = _Done(error=err)
        self._queue.put(done)

    def _watch(self) -> Any:
        looked = renewed = time.monotonic()
        while True:
            try:
                item = self._queue.get(timeout=self.tick)
            except queue.Empty:
                item = None
            if isinstance(item, _Done):
                if item.error is not None:
                    raise item.error
                return item.value
            if item is not None:
                raised = item.run()
                if raised is not None:
                    raise raised
            now = time.monotonic()
            if now - looked >= self.tick:
                looked = now
                if self.cancelled():
                    log.info("job.stream_cancelled", job_id=self.job_id)
                    raise CancelRequested
            if now - renewed >= self.renew_every:
                renewed = now
                if not self.renew():
                    log.warning("job.stream_lock_lost", job_id=self.job_id)

    def _stop(self) -> None:
        """Refuse the reader's pending and future callbacks: it stops at its next one."""
        with self._lock:
            self._stopped = True
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if isinstance(item, _Call):
                item.refuse()
