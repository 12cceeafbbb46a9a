"""The batcher's data in Redis: queued lines per group, batches, and line outcomes.

A **group** is one (link, endpoint): lines of one group go into one batch file. Its id is
a hash of the link's breaker name (`backend:model@host`) and the endpoint; its
description names the chain and link index that resolve the link in the worker's own
configuration (a record never says where a request goes, docs/security.md).

Every change that must not be half-done is one Lua call: a cut moves lines from the
queue into a batch atomically (`batcher_cut.lua`), and a batch moves from status to
status only from the status its mover read (`batcher_move.lua`).
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

from runq.runs import keys, lua
from runq.runs.replies import text
from runq.runs.webhooks import index_and_take_early


@dataclass(frozen=True)
class Group:
    """Where a group's lines go: the link (by chain name and index) and the endpoint."""

    id: str
    chain: str
    link_index: int
    backend: str
    model: str
    endpoint: str

    @classmethod
    def of(cls, link_endpoint: str, chain: str, index: int, backend: str, model: str,
           endpoint: str) -> Group:  # fmt: skip
        digest = hashlib.sha256(f"{link_endpoint}|{endpoint}".encode()).hexdigest()[:20]
        return cls(digest, chain, index, backend, model, endpoint)

    def to_json(self) -> str:
        return json.dumps(
            {"chain": self.chain, "link_index": self.link_index, "backend": self.backend,
             "model": self.model, "endpoint": self.endpoint}, sort_keys=True,
        )  # fmt: skip

    @classmethod
    def from_json(cls, group_id: str, raw: Any) -> Group:
        data = json.loads(text(raw))
        return cls(group_id, data["chain"], int(data["link_index"]), data["backend"],
                   data["model"], data["endpoint"])  # fmt: skip


@dataclass(frozen=True)
class Queued:
    """What is waiting in a group: how many lines, how many bytes, since when."""

    ids: list[str]
    sizes: list[int]
    oldest: float | None


def custom_id(job_id: str, attempt: int, link_index: int) -> str:
    """A line's `custom_id`: the job, its attempt and its link (a fallback to another
    batched link asks again under a new id, never reading the old line's outcome)."""
    return f"{job_id}:{attempt}:{link_index}"


def job_of(line_id: str) -> str:
    return line_id.rsplit(":", 2)[0]


WEBHOOK_INDEX_TTL = 2 * 24 * 3600
"""How long a batch's id is kept for its webhook: OpenAI's completion window is 24 h."""


class BatchQueue:
    """Queued lines, batches and outcomes (see the module docstring)."""

    def __init__(self, redis: Any, *, outcome_ttl: int = 7 * 24 * 3600) -> None:
        self.redis = redis
        self.outcome_ttl = outcome_ttl
        self._cut = lua.register(redis, "batcher_cut")
        self._move = lua.register(redis, "batcher_move")

    # -- the jobs' side ------------------------------------------------------------------
    def enroll(self, group: Group, line_id: str, line: dict[str, Any]) -> None:
        """Queue a job's line (idempotent: the same line again changes nothing)."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.hsetnx(keys.batch_groups(), group.id, group.to_json())
        pipe.hsetnx(keys.batch_queue_lines(group.id), line_id, json.dumps(line))
        pipe.zadd(keys.batch_queue(group.id), {line_id: time.time()}, nx=True)
        pipe.execute()

    def outcome(self, line_id: str) -> dict[str, Any] | None:
        raw = self.redis.get(keys.batch_outcome(line_id))
        return json.loads(raw) if raw is not None else None

    # -- the batcher's side ----------------------------------------------------------------
    def groups(self) -> list[Group]:
        raw = self.redis.hgetall(keys.batch_groups())
        return [Group.from_json(text(k), v) for k, v in raw.items()]

    def queued(self, group: Group, limit: int) -> Queued:
        """The oldest `limit` lines of a group, with their sizes in bytes."""
        pairs = self.redis.zrange(keys.batch_queue(group.id), 0, limit - 1, withscores=True)
        if not pairs:
            return Queued([], [], None)
        ids = [text(member) for member, _ in pairs]
        lines = self.redis.hmget(keys.batch_queue_lines(group.id), ids)
        sizes = [len(line) + 1 if line is not None else 0 for line in lines]
        return Queued(ids, sizes, float(pairs[0][1]))

    def cut(self, group: Group, line_ids: list[str]) -> str | None:
        """Make a batch of these lines (one Lua call); its id, or None if none was left."""
        batch_id = "rqb_" + uuid.uuid4().hex
        moved = self._cut(
            keys=[keys.batch_queue(group.id), keys.batch_queue_lines(group.id),
                  keys.batch(batch_id), keys.batch_lines(batch_id), keys.batches_open()],
            args=[batch_id, group.id, repr(time.time()), *line_ids],
        )  # fmt: skip
        return batch_id if int(moved) else None

    def has_work(self) -> bool:
        """Whether a tick has anything to do: an open batch, or a line waiting in a group.

        Asked before the batcher's task is sent, so a fleet that never uses the batch
        tier sends no task (and no Celery events) every tick."""
        if self.redis.scard(keys.batches_open()):
            return True
        group_ids = [text(g) for g in self.redis.hkeys(keys.batch_groups())]
        if not group_ids:
            return False
        pipe = self.redis.pipeline(transaction=False)
        for group_id in group_ids:
            pipe.zcard(keys.batch_queue(group_id))
        return any(pipe.execute())

    def open_batches(self) -> list[str]:
        return sorted(text(b) for b in self.redis.smembers(keys.batches_open()))

    def record(self, batch_id: str) -> dict[str, str]:
        raw = self.redis.hgetall(keys.batch(batch_id))
        return {text(k): text(v) for k, v in raw.items()}

    def lines(self, batch_id: str) -> dict[str, str]:
        raw = self.redis.hgetall(keys.batch_lines(batch_id))
        return {text(k): text(v) for k, v in raw.items()}

    def move(self, local_id: str, was: str, to: str, /, **fields: Any) -> bool:
        """`was` -> `to` with `fields` set, only if the batch is still `was`."""
        pairs: list[str] = []
        for name, value in fields.items():
            pairs += [name, str(value)]
        return bool(self._move(keys=[keys.batch(local_id)], args=[was, to, *pairs]))

    def expect_webhook(self, local_id: str, backend_id: str) -> bool:
        """Record that runq's batch `local_id` is the backend's `backend_id`, so its
        `batch.*` webhook finds it (runs.webhooks); True if that delivery already came
        (then the batch should be looked at now). Written after the batch is `created`:
        Redis orders this and the receiver's lookup, so one of them sees the other."""
        return index_and_take_early(
            self.redis, keys.webhook_batch(backend_id), local_id, WEBHOOK_INDEX_TTL
        )

    def look_now(self, local_id: str) -> bool:
        """Make a `created` batch due for a look at the batcher's next tick (a webhook
        said it ended); False when it is past `created` or gone."""
        return self.move(local_id, "created", "created", next_poll="0")

    def set_fields(self, local_id: str, /, **fields: Any) -> None:
        self.redis.hset(keys.batch(local_id), mapping={k: str(v) for k, v in fields.items()})

    def store_outcomes(self, outcomes: dict[str, dict[str, Any]]) -> None:
        """Each line's result where its job's `batch` step reads it (set once: a second
        writer of the same results changes nothing)."""
        pipe = self.redis.pipeline(transaction=False)
        for line_id, outcome in outcomes.items():
            pipe.set(keys.batch_outcome(line_id), json.dumps(outcome), ex=self.outcome_ttl,
                     nx=True)  # fmt: skip
        pipe.execute()

    def close(self, batch_id: str) -> None:
        """The batch's life is over: off the open set; its record kept a day for operators."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.srem(keys.batches_open(), batch_id)
        pipe.expire(keys.batch(batch_id), 24 * 3600)
        pipe.delete(keys.batch_lines(batch_id))
        pipe.execute()
