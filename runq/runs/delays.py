"""Long waits kept in Redis, not in a worker's memory.

A Celery countdown is a message the worker that receives it holds, unacknowledged, until
it is due. If that worker is SIGKILLed, the message comes back only after the broker's
visibility timeout (an hour), so runq's sweeper has to re-drive the job once its lease
runs out — a minute or more after the step was due. For the short countdowns of polls
that window is small and the precision of a countdown matters; for long waits (a
breaker's open period, a backoff, a rate-limit wait, a slow run's poll hint) it is not.

So steps due more than `threshold` seconds from now go into a sorted set scored by when
they are due. A pump in every worker (`worker.signals`) moves the due ones to Celery
about twice a second; one Lua call pops them, so each is sent by exactly one worker. A
worker that dies after popping loses at most the steps it was sending, and those are
what the lease-based sweeper exists for.

Members are `job_id|step|token`: duplicates of the same step collapse, and a step that
became stale while it waited (the job was cancelled, say) is dropped by the step itself
when it runs, as for any stale message.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from runq.runs import keys, lua
from runq.runs.replies import text


@dataclass(frozen=True)
class DueStep:
    job_id: str
    step: str
    token: int

    def member(self) -> str:
        """`job_id|step|token`, as the delays' sorted set and the wake queue hold it."""
        return member(self.job_id, self.step, self.token)

    @classmethod
    def parse(cls, raw: Any) -> DueStep:
        job_id, step, token = text(raw).rsplit("|", 2)  # a job id may contain "|" itself
        return cls(job_id, step, int(token))


def member(job_id: str, step: str, token: int) -> str:
    return f"{job_id}|{step}|{token}"


class DelayedSteps:
    """The sorted set of steps waiting for their time (see the module docstring)."""

    def __init__(self, redis: Any, *, threshold: float = 5.0) -> None:
        self.redis = redis
        self.threshold = threshold
        self.key = keys.delayed()
        self._pop = lua.register(redis, "delays_pop_due")

    def wants(self, countdown: float) -> bool:
        """Is this wait long enough to be kept in Redis rather than in a worker?"""
        return countdown > self.threshold

    def add(self, job_id: str, step: str, token: int, countdown: float) -> None:
        self.redis.zadd(self.key, {member(job_id, step, token): time.time() + countdown})

    def pop_due(self, now: float | None = None, limit: int = 500) -> list[DueStep]:
        """Take the steps that are due (each is returned to one caller only)."""
        now = time.time() if now is None else now
        members = self._pop(keys=[self.key], args=[repr(now), limit])
        return [DueStep.parse(raw) for raw in members]

    def pending(self) -> int:
        return int(self.redis.zcard(self.key))
