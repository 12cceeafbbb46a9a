"""Steps due now, run by a worker in-process instead of through a Celery message.

A poll that a webhook wakes (or whose safety-poll time came) is one HTTP request and one
commit. As a Celery task it also cost the broker's whole round for one message: the
`LPUSH`, the `BRPOP`, with `acks_late` the unacked copy and its removal (two
transactions), and four task events: about 14 Redis commands and a millisecond or two of
worker CPU, more than the step itself (docs/benchmarks.md). Here it costs an `LPUSH` and
a `BRPOP`.

What makes this safe is what made the Celery message safe: the step carries the token of
the step due, and acts only if the record still says so (`runs.steps`); a duplicate or a
late one is a stale no-op. A wake that is lost (its worker killed between the pop and the
commit) is what the job's lease is for: the sweeper re-drives the job, exactly as it did
for a woken Celery poll, whose message came back only after the broker's visibility
timeout (an hour).

What it costs: these steps are not Celery tasks, so Flower does not show them (the
job's start and its tool calls still are tasks); the worker's logs (`wake.step`) and the
job's events do show them.

Members are `job_id|step|token`, as in `runs.delays`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from runq.runs import keys
from runq.runs.delays import DueStep, member
from runq.runs.replies import text

WAKEABLE = frozenset({"poll", "look"})
"""Steps that go through the wake queue. A poll is one request, and so is a safety look
(`runs.looks`); a stream holds its thread for a whole run and a start is what Flower and
admission watch, so they stay tasks."""


class WakeQueue:
    """The Redis list the receivers and the delays pump push to, and the runners pop."""

    def __init__(self, redis: Any) -> None:
        self.redis = redis
        self.key = keys.wakes()

    def push(self, job_id: str, step: str, token: int) -> None:
        self.redis.lpush(self.key, member(job_id, step, token))

    def wake_poll(self, job_id: str, token: int) -> None:
        """A webhook's wake: the job's poll due now, and the safety look of the same wait
        dropped from `runq:delayed` (it would only find its token stale), in one round
        trip. The job's lease still brings the step back if the woken poll is lost with
        its worker."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.lpush(self.key, member(job_id, "poll", token))
        pipe.zrem(keys.delayed(), member(job_id, "look", token))
        pipe.execute()

    def push_many(self, steps: Iterable[DueStep]) -> int:
        """Push several due steps in one command; returns how many."""
        members = [s.member() for s in steps]
        if members:
            self.redis.lpush(self.key, *members)
        return len(members)

    def take(self, timeout: float, stop_key: str | None = None) -> DueStep | None:
        """The oldest due step, waiting up to `timeout` seconds for one (each step is
        returned to one caller only). A push to `stop_key` (`interrupt`) ends the wait
        at once, with `None`; a due step waiting already comes first."""
        listened = [self.key] if stop_key is None else [self.key, stop_key]
        reply = self.redis.brpop(listened, timeout=timeout)
        if reply is None:
            return None
        key, raw = reply
        if text(key) != self.key:
            return None
        return DueStep.parse(raw)

    def interrupt(self, stop_key: str) -> None:
        """End the `take` that waits on `stop_key` now. The key lapses by itself if
        nobody takes the push (the taker had already left)."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.lpush(stop_key, "stop")
        pipe.expire(stop_key, 60)
        pipe.execute()

    def take_more(self, count: int) -> list[DueStep]:
        """Up to `count` more due steps, without waiting: one `RPOP` with a count for a
        burst (the pump pushes the due safety looks of many waiting runs at once)."""
        if count <= 0:
            return []
        reply = self.redis.rpop(self.key, count)
        return [DueStep.parse(raw) for raw in reply or []]

    def pending(self) -> int:
        return int(self.redis.llen(self.key))
