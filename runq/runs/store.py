"""The job store: job records in Redis, claimed and committed atomically.

A step is two Redis round trips:

1. `claim` (Lua): take the job's short lock (or learn how long another task holds it),
   read the record, and read the cancel flag — one command.
2. `commit` (Lua): compare-and-set the record on its version, append the step's events
   to the job's stream (bounded, TTL set in the same script), update the lease index
   the sweeper reads, and release the lock — one command.

So a crashed task leaves at worst a lock that expires by itself, and two copies of the
same task can never both act: the second sees the lock, or a stale token, or a version
mismatch.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from runq.errors import JobNotFoundError
from runq.runs import keys, lua
from runq.runs.job import Job
from runq.runs.replies import text

if TYPE_CHECKING:
    import redis

# The job store's own script, for a client that writes records itself (the asyncio
# client registers it on its own connection).
COMMIT = lua.source("store_commit")

# The version is the first key of the serialized record, so the Lua script can read it
# without decoding the whole JSON document.
_VERSION_FIRST = "version"


@dataclass(frozen=True)
class Claim:
    """The outcome of trying to act on a job."""

    job: Job | None
    owner: str
    busy_for: float = 0.0  # seconds another task still holds the job
    cancel_requested: bool = False

    @property
    def acquired(self) -> bool:
        return self.job is not None


def load_record(job_id: str, data: bytes | str | None) -> Job:
    """The job in a GET reply of its record key; `JobNotFoundError` when there is none.

    Shared by every reader of a record, whatever client did the GET (redis-py, its
    asyncio client, or the CLI's quick reads).
    """
    if data is None:
        raise JobNotFoundError(job_id)
    return Job.from_dict(json.loads(data))


def _dump(job: Job) -> str:
    data = job.to_dict()
    version = data.pop(_VERSION_FIRST)
    return json.dumps({_VERSION_FIRST: version, **data}, separators=(", ", ": "))


class JobStore:
    """Job records, their locks, cancel flags and lease index in one Redis."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        events_maxlen: int = 2000,
        events_ttl: int = 7 * 24 * 3600,
        result_ttl: int = 7 * 24 * 3600,
    ) -> None:
        self.redis = client
        self.events_maxlen = events_maxlen
        self.events_ttl = events_ttl
        self.result_ttl = result_ttl
        self._claim = lua.register(client, "store_claim")
        self._commit = lua.register(client, "store_commit")
        self._release = lua.register(client, "store_release")
        self._extend = lua.register(client, "store_extend_lock")

    # -- reading -----------------------------------------------------------------------
    def get(self, job_id: str) -> Job:
        return load_record(job_id, self.redis.get(keys.job(job_id)))

    def exists(self, job_id: str) -> bool:
        return bool(self.redis.exists(keys.job(job_id)))

    # -- writing -----------------------------------------------------------------------
    def create(
        self,
        job: Job,
        events: list[dict[str, Any]],
        *,
        lease_until: float,
        idempotency_key: str | None = None,
    ) -> str | None:
        """Write a new record and return its id.

        With an idempotency key already used, nothing is written and the id of the job
        that key created is returned. None means a record with this id already exists.
        """
        outcome = self._write(
            job,
            expected=-1,
            events=events,
            owner="",
            lease_until=lease_until,
            idem_key=idempotency_key,
        )
        if isinstance(outcome, bytes):
            return outcome.decode()
        return job.id if outcome == 1 else None

    def claim(self, job_id: str, lock_seconds: float, owner: str | None = None) -> Claim:
        """Lock the job for one step (or report who holds it) and read its record."""
        owner = owner or uuid.uuid4().hex
        reply = self._claim(
            keys=[keys.job(job_id), keys.job_lock(job_id), keys.cancel(job_id)],
            args=[owner, max(1, int(lock_seconds * 1000))],
        )
        status = int(reply[0])
        if status == -1:
            raise JobNotFoundError(job_id)
        if status == 0:
            return Claim(None, owner, busy_for=max(int(reply[1]), 1) / 1000.0)
        job = Job.from_dict(json.loads(reply[2]))
        return Claim(job, owner, cancel_requested=bool(int(reply[3])))

    def commit(
        self,
        job: Job,
        events: list[dict[str, Any]] = (),  # type: ignore[assignment]
        *,
        owner: str = "",
        lease_until: float | None = None,
    ) -> bool:
        """Compare-and-set the record; False if someone else changed it meanwhile."""
        expected = job.version
        job.version += 1
        ok = (
            self._write(
                job, expected=expected, events=list(events), owner=owner, lease_until=lease_until
            )
            == 1
        )
        if not ok:
            job.version = expected
        return ok

    def release(self, job_id: str, owner: str) -> None:
        """Give the lock back without writing (the step found nothing to do)."""
        self._release(keys=[keys.job_lock(job_id)], args=[owner])

    def request_cancel(self, job_id: str) -> None:
        """Raise the cancel flag; the next step of the job honours it."""
        self.redis.set(keys.cancel(job_id), "1", ex=self.events_ttl)

    def cancel_requested(self, job_id: str) -> bool:
        """Is the cancel flag up? (A step learns it with its claim; a tool call asks.)"""
        return bool(self.redis.exists(keys.cancel(job_id)))

    def find_by_idempotency_key(self, scope: str, key: str) -> str | None:
        value = self.redis.get(keys.idempotency(scope, key))
        return text(value) if value is not None else None

    def expired_leases(self, now: float, limit: int = 100) -> list[str]:
        """Jobs whose lease ran out: their driver died or a message was lost.

        Includes ended jobs whose finish (publication) never ran.
        """
        ids = self.redis.zrangebyscore(keys.leases(), "-inf", now, start=0, num=limit)
        return [text(i) for i in cast(list[bytes], ids)]

    def take_conversation(self, conversation: str, job_id: str, ttl: float) -> str:
        """Hold the conversation for `job_id`; return the holder (itself, or the job before it).

        A holder that ended without giving the conversation back (its record is terminal
        or gone) is replaced.
        """
        key = keys.conversation_lock(conversation)
        ms = max(1000, int(ttl * 1000))
        if self.redis.set(key, job_id, nx=True, px=ms):
            return job_id
        holder = self.redis.get(key)
        if holder is None:
            return self.take_conversation(conversation, job_id, ttl)
        holder_id = text(holder)
        if holder_id == job_id:
            return job_id
        try:
            if not self.get(holder_id).terminal:
                return holder_id
        except JobNotFoundError:
            pass
        self._release(keys=[key], args=[holder_id])
        return self.take_conversation(conversation, job_id, ttl)

    def give_back_conversation(self, conversation: str, job_id: str) -> None:
        self._release(keys=[keys.conversation_lock(conversation)], args=[job_id])

    def stream_position(self, job_id: str, run_id: str) -> int | None:
        raw = self.redis.hget(keys.stream_seq(job_id), run_id)
        return int(raw) if raw is not None else None

    def forward_delta(self, job_id: str, run_id: str, seq: int, delta: str) -> None:
        """Append a text delta to the job's events and remember its sequence number.

        One transaction, so a resumed stream neither repeats nor skips a delta.
        """
        pipe = self.redis.pipeline(transaction=True)
        events_key = keys.events(job_id)
        payload = json.dumps({"ts": time.time(), "type": "text.delta", "seq": seq, "delta": delta})
        pipe.xadd(events_key, {"data": payload}, maxlen=self.events_maxlen, approximate=True)
        pipe.expire(events_key, self.events_ttl)
        pipe.hset(keys.stream_seq(job_id), run_id, seq)
        pipe.expire(keys.stream_seq(job_id), self.events_ttl)
        pipe.execute()

    def extend_lock(self, job_id: str, owner: str, seconds: float) -> bool:
        """Keep holding the job during a long step (a stream); False if the lock was lost."""
        return bool(self._extend(keys=[keys.job_lock(job_id)], args=[owner, int(seconds * 1000)]))

    def extend_lease(self, job_id: str, until: float) -> None:
        self.redis.zadd(keys.leases(), {job_id: until}, xx=True)

    def drop_lease(self, job_id: str) -> None:
        self.redis.zrem(keys.leases(), job_id)

    def _write(
        self,
        job: Job,
        *,
        expected: int,
        events: list[dict[str, Any]],
        owner: str,
        lease_until: float | None,
        idem_key: str | None = None,
    ) -> int | bytes:
        ttl = self.result_ttl if job.terminal else 0
        # Only a published job is done with the sweeper; until then it holds a lease.
        done = job.terminal and job.published
        lease = "" if done else ("-" if lease_until is None else repr(lease_until))
        payloads = [json.dumps({"ts": time.time(), **event}) for event in events]
        result = self._commit(
            keys=[
                keys.job(job.id),
                keys.job_lock(job.id),
                keys.leases(),
                keys.events(job.id),
                idem_key or keys.job_lock(job.id),
            ],
            args=[
                str(expected),
                _dump(job),
                owner,
                lease,
                ttl,
                job.id,
                len(payloads),
                self.events_maxlen,
                self.events_ttl,
                job.id if idem_key else "",
                *payloads,
            ],
        )
        return result if isinstance(result, bytes) else int(result)
