"""The per-job event stream (a Redis Stream): state changes, tool calls, text deltas, final.

Writers: the job store appends a step's events atomically with the record it commits;
`EventLog.append` adds events outside a commit (text deltas while a stream runs), and
`EventLog.queue` adds one to a caller's transaction (a tool call's output). Every writer
bounds the stream (`MAXLEN ~`). Its TTL is set when the job is created (long enough for
the job's deadline) and again by the commit that ends the job, so a stream never
outlives its job by more than the TTL; a step's commit and a tool call's output do not
set it again (an `EXPIRE` each, for nothing). `append`, which may come at any time (a
decision, a budget's wait), still sets it. Every job ends with exactly one event whose
`type` is `job.final`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from runq.runs import keys
from runq.runs.replies import text

if TYPE_CHECKING:
    import redis

FINAL = "job.final"
# What XRANGE/XREAD return for one stream (the client decodes nothing: bytes throughout).
_Entries = list[tuple[bytes, dict[bytes, bytes]]]


@dataclass(frozen=True)
class Event:
    """One entry of a job's stream; `id` is the Redis stream id, usable as a resume point."""

    id: str
    type: str
    data: dict[str, Any]

    @property
    def final(self) -> bool:
        return self.type == FINAL

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, **self.data}


def _decode(entry_id: bytes | str, fields: dict[bytes, bytes]) -> Event:
    data = json.loads(fields[b"data"])
    ident = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    return Event(ident, str(data.get("type", "")), data)


class EventLog:
    """Read and append job events."""

    def __init__(self, client: redis.Redis, *, maxlen: int = 2000, ttl: int = 7 * 24 * 3600):
        self.redis = client
        self.maxlen = maxlen
        self.ttl = ttl

    def append(self, job_id: str, event: dict[str, Any]) -> str:
        """Add one event and set the stream's TTL (it may come after the job's end)."""
        pipe = self.redis.pipeline(transaction=True)
        self.queue(pipe, job_id, event)
        pipe.expire(keys.events(job_id), self.ttl)
        entry_id, _ = pipe.execute()
        return entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)

    def queue(self, pipe: redis.client.Pipeline, job_id: str, event: dict[str, Any]) -> None:
        """Add the append (one XADD, one reply) to a caller's transaction, so writes that
        go with the event share its round trip (a tool call's metrics). The stream's TTL
        is left as it is: only for an event of a job that has not ended (whose end sets
        it again), see the module docstring."""
        pipe.xadd(
            keys.events(job_id),
            {"data": json.dumps({"ts": time.time(), **event})},
            maxlen=self.maxlen,
            approximate=True,
        )

    def read(self, job_id: str, after: str = "0-0", count: int = 500) -> list[Event]:
        """Events strictly after `after` (a stream id), oldest first, without waiting."""
        entries = self.redis.xrange(
            keys.events(job_id), min=f"({after}" if after != "0-0" else "-", count=count
        )
        return [_decode(entry_id, fields) for entry_id, fields in cast(_Entries, entries)]

    def wait(self, job_id: str, after: str, block_ms: int) -> list[Event]:
        """Events after `after`, waiting up to `block_ms` for the first one."""
        reply = self.redis.xread({keys.events(job_id): after}, block=block_ms, count=500)
        if not reply:
            return []
        streams = cast(list[tuple[bytes, _Entries]], reply)
        return [_decode(entry_id, fields) for entry_id, fields in streams[0][1]]

    def wait_many(
        self, cursors: dict[str, str], block_ms: int, count: int = 100
    ) -> dict[str, list[Event]]:
        """New events of many jobs in one XREAD: `{job_id: after}` in, `{job_id: events}` out.

        Waits up to `block_ms` for the first event of any of them; a waiter of thousands
        of jobs gets only what changed instead of reading every record again.
        """
        if not cursors:
            return {}
        by_key = {keys.events(job_id): job_id for job_id in cursors}
        reply = self.redis.xread(
            {key: cursors[job_id] for key, job_id in by_key.items()}, block=block_ms, count=count
        )
        found: dict[str, list[Event]] = {}
        for key, entries in cast(list[tuple[bytes, _Entries]], reply or []):
            job_id = by_key[text(key)]
            found[job_id] = [_decode(entry_id, fields) for entry_id, fields in entries]
        return found

    def follow(
        self, job_id: str, *, after: str = "0-0", timeout: float | None = None
    ) -> Iterator[Event]:
        """Yield events as they come, ending after the final event (or at `timeout`)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            block = 1000
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                block = max(1, min(block, int(remaining * 1000)))
            for event in self.wait(job_id, after, block):
                after = event.id
                yield event
                if event.final:
                    return
