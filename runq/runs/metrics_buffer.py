"""Metric increments added up in the process, sent to Redis at most once per interval.

At load every finished job increments the same dozen fields of one hash: at 40 jobs/s
that was about 500 `HINCRBY`/`HINCRBYFLOAT` a second on one hot key, whatever the
figures. A `MetricsBuffer` adds the increments up in memory instead and a daemon thread
(one per buffer, so one per process: a worker's `Runtime` holds one `Metrics`) sends
the sums in one non-transactional pipeline every `interval` seconds: one command per
field *touched* in the interval, however many jobs touched it. Increments commute, so
the hash ends up with the same totals; readers (the gateway's `/metrics`, `runq
metrics`, other processes) see them up to one interval late.

What can be lost: a process killed without a chance to run Python (SIGKILL, OOM
killer) loses at most the increments of its last interval. A clean exit flushes:
`atexit` runs `flush_all`, and the worker flushes at `worker_shutdown` and, in a
prefork child (which leaves through `os._exit`, skipping `atexit`), at
`worker_process_shutdown` (`runq.worker.signals`).

A flush that fails (Redis down) puts its sums back for the next one, so an outage
delays figures instead of losing them; the buffer is bounded by `max_fields` distinct
fields (label values are bounded, so only a long outage with many series comes near):
past it, increments of new fields are dropped and counted in a warning.

Forks: a forked child (a prefork pool process) inherits the parent's memory, so its
copy of every buffer would hold sums the parent still owns, and a flush thread that
does not exist in the child. `os.register_at_fork` empties the child's copies and
forgets their thread; the child's own runtime builds its own buffer anyway.
"""

from __future__ import annotations

import atexit
import os
import threading
import weakref
from collections.abc import Iterable

import redis
import structlog

log = structlog.get_logger("runq.metrics")

# Distinct fields a buffer holds at most: a worker touches a few dozen in an interval;
# only a long Redis outage (sums kept for the next flush) could reach this.
MAX_BUFFERED_FIELDS = 10_000

_live: weakref.WeakSet[MetricsBuffer] = weakref.WeakSet()


class MetricsBuffer:
    """Sums of `HINCRBY` (ints) and `HINCRBYFLOAT` (floats) increments to one hash.

    `add` never touches Redis and never raises; `flush` sends what is summed (and is
    what the background thread, `close` and `flush_all` call). Thread-safe: many
    threads add while one flushes.
    """

    def __init__(
        self,
        client: redis.Redis,
        key: str,
        interval: float,
        *,
        max_fields: int = MAX_BUFFERED_FIELDS,
    ) -> None:
        if not interval > 0:
            raise ValueError(f"a metrics buffer needs an interval > 0 (got {interval!r})")
        self.redis = client
        self.key = key
        self.interval = float(interval)
        self.max_fields = max_fields
        self._fresh_state()
        _live.add(self)

    def _fresh_state(self) -> None:
        self._ints: dict[str, int] = {}
        self._floats: dict[str, float] = {}
        self._dropped = 0
        self._lock = threading.Lock()  # guards the sums
        self._flush_lock = threading.Lock()  # one flush at a time: a final one waits
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- adding --------------------------------------------------------------------------
    def add(self, ints: Iterable[tuple[str, int]], floats: Iterable[tuple[str, float]]) -> None:
        """Add increments to the sums; starts the flush thread on first use."""
        with self._lock:
            self._merge(ints, floats)
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(
                    target=self._run, name="runq-metrics-flush", daemon=True
                )
                self._thread.start()

    def _merge(self, ints: Iterable[tuple[str, int]], floats: Iterable[tuple[str, float]]) -> None:
        """Under `_lock`: add to the sums, dropping increments of new fields past the cap."""
        for field, count in ints:
            if field in self._ints or self._room():
                self._ints[field] = self._ints.get(field, 0) + int(count)
            else:
                self._dropped += 1
        for field, amount in floats:
            if field in self._floats or self._room():
                self._floats[field] = self._floats.get(field, 0.0) + float(amount)
            else:
                self._dropped += 1

    def _room(self) -> bool:
        return len(self._ints) + len(self._floats) < self.max_fields

    def discard(self) -> None:
        """Forget the sums not sent yet (`Metrics.reset`)."""
        with self._lock:
            self._ints, self._floats, self._dropped = {}, {}, 0

    def pending(self) -> int:
        """How many distinct fields wait for the next flush."""
        with self._lock:
            return len(self._ints) + len(self._floats)

    # -- flushing ------------------------------------------------------------------------
    def flush(self) -> bool:
        """Send the sums in one pipeline; False (sums kept for the next flush) on failure.

        Never raises: it runs on the flush thread, at exit and at shutdown."""
        with self._flush_lock:
            with self._lock:
                ints, floats, dropped = self._ints, self._floats, self._dropped
                self._ints, self._floats, self._dropped = {}, {}, 0
            if dropped:
                log.warning(
                    "metrics.buffer_full",
                    dropped_increments=dropped,
                    max_fields=self.max_fields,
                )
            if not ints and not floats:
                return True
            try:
                pipe = self.redis.pipeline(transaction=False)
                for field, count in ints.items():
                    pipe.hincrby(self.key, field, count)
                for field, amount in floats.items():
                    pipe.hincrbyfloat(self.key, field, amount)
                pipe.execute()
            except (redis.RedisError, OSError) as exc:
                with self._lock:
                    self._merge(ints.items(), floats.items())
                log.warning("metrics.flush_failed", error=str(exc), fields=len(ints) + len(floats))
                return False
            return True

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.flush()
            except Exception:  # never the thread's end: the next interval tries again
                log.exception("metrics.flush_crashed")

    def close(self, timeout: float = 5.0) -> bool:
        """Stop the flush thread and send what is left (a final flush)."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        return self.flush()

    def _forget_after_fork(self) -> None:
        """In a forked child: the sums are the parent's to send; its thread is not ours."""
        self._fresh_state()


def flush_all() -> None:
    """Flush every buffer of this process (exit and worker shutdown)."""
    for buffer in list(_live):
        try:
            buffer.flush()
        except Exception:  # at exit: one buffer's failure must not keep the others
            log.exception("metrics.final_flush_failed")


def _after_fork_in_child() -> None:
    for buffer in list(_live):
        buffer._forget_after_fork()


atexit.register(flush_all)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
