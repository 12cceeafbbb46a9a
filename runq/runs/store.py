"""The job store: job records in Redis, claimed and committed atomically.

A step is two Redis round trips:

1. `claim` (Lua): take the job's short lock (or learn how long another task holds it),
   read the record, and read the cancel flag — one command.
2. `commit` (Lua): compare-and-set the record on its version, append the step's events
   to the job's stream (bounded, TTL set in the same script), update the lease index
   the sweeper reads, and release the lock — one command. The commit that ends a job
   also writes its conversation's turn and gives the conversation's turn lock back
   (`EndingWrites`).

So a crashed task leaves at worst a lock that expires by itself, and two copies of the
same task can never both act: the second sees the lock, or a stale token, or a version
mismatch.

A new job is one Lua call too (`create`): the record, its first events, its lease, the
idempotency mapping (with the spec's fingerprint, so a key reused for another spec is
refused, not answered with someone else's job) and the recent-jobs indexes
`runs.recent` reads.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from runq.errors import IdempotencyConflictError, JobNotFoundError
from runq.runs import cancellation, keys, lua
from runq.runs.cancellation import CancelRequested
from runq.runs.conversations.ids import turns_on
from runq.runs.job import Job, JobSpec
from runq.runs.replies import text

if TYPE_CHECKING:
    import redis

# The script that writes a new job, for a client that runs it on a connection of its
# own (the asyncio client registers it there, with `JobStore.create_call`'s arguments).
CREATE = lua.source("store_create")
# An index of recent jobs keeps an entry this many record lifetimes (`result_ttl`) after
# the job was created: long enough for any job whose deadline is within one lifetime;
# an entry whose record expired earlier is skipped and pruned by its reader.
INDEX_LIFETIMES = 2
# How often a process trims the indexes it adds to and sets their TTL again, in seconds:
# with every creation, that was two commands more a job (four with a tenant) for entries
# that age by days. A reader skips and prunes entries whose record is gone anyway.
INDEX_TENDING = 60.0
# A conversation's queue outlives the deadline of the last job that joined it by this
# much (seconds): a job may wait for admission before its deadline starts to count.
QUEUE_MARGIN = 24 * 3600
# How long a start waiting for another job's end stays where that end finds it
# (`JobStore.wait_for_end`); each look of the waiting job writes it again.
TURN_NEXT_LIFE = 60

# What the commit script answers when the cancel flag refused a step's outcome.
_REFUSED_CANCELLED = -2

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


def spec_fingerprint(spec: JobSpec) -> str:
    """What an idempotency key is checked against: the normalized spec, hashed.

    The tenant is left out (it scopes the key already); numbers that mean the same
    (`60` and `60.0` seconds) hash the same.
    """
    data = {k: v for k, v in spec.to_dict().items() if k != "tenant"}
    data["deadline"] = float(data["deadline"])
    blob = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


@dataclass(frozen=True)
class CreateCall:
    """The create script's keys and arguments for one new job, and how to read its reply.

    Split from running it so the asyncio client runs the same call on its own connection.
    """

    keys: list[str]
    args: list[Any]
    job_id: str
    idempotency_key: str | None

    def outcome(self, reply: Any) -> str | None:
        """The id `JobStore.create` returns for the script's reply (see there)."""
        kind, job_id = (text(part) for part in reply)
        if kind == "conflict":
            assert self.idempotency_key is not None
            raise IdempotencyConflictError(self.idempotency_key, job_id)
        if kind == "exists":
            return None
        return job_id


@dataclass
class EndingWrites:
    """What the commit that ends a job writes besides the job, in the same Lua call.

    `conversation_lock`: the conversation (or thread) whose turn lock the job holds, given
    back only once the job's end is written, so the next job on it sees the end and the
    turn. `record`: the conversation's record with the job's turn (`runs.conversations`),
    `(conversation id, JSON, TTL)`. A cancel that refuses the end refuses these too.

    `result`: the job's entry in Celery's result backend, `(key, value, TTL)`
    (`Scheduler.result_entry`), written and published with the end, so the result is out
    the instant the record says the job ended (`runs.publication`).

    `next_turns` is what the commit read back: the jobs waiting for this one's end (the
    next in its conversation's line, a continuation), each with the token of its start
    (`JobStore.wait_for_end`), for the step to start them now. The same `MGET` that reads
    the record reads them: no command more.
    """

    conversation_lock: str | None = None
    record: tuple[str, str, int] | None = None
    result: tuple[str, str, int] | None = None
    next_turns: list[tuple[str, int]] = field(default_factory=list)


@dataclass(frozen=True)
class Turn:
    """Who has a conversation's turn (`JobStore.take_conversation`): `holder`, the job
    that asked when it has it. `after`: the job whose end will start the one that asked
    (`JobStore.wait_for_end`): the holder when it is next in line, else the job just
    before it in line; None when no end will (another tenant's job: it only looks)."""

    holder: str
    after: str | None = None

    @property
    def first_in_line(self) -> bool:
        return self.after is not None and self.after == self.holder


def _waiting_start(mark: str) -> tuple[str, int]:
    """`job|token`, as `JobStore.wait_for_end` leaves it, as (job, token)."""
    job_id, token = mark.rsplit("|", 1)
    return job_id, int(token)


def _life_bound(job: Job) -> int:
    """Seconds a job lives at most before it ends, for its stream's first TTL: only the
    commit that ends a job sets the stream's TTL again (the steps' commits do not), so
    the first one must outlast the job. Its deadline bounds a job's life once it has
    started; a job that waited for admission longer ends with a stream started afresh."""
    return math.ceil(float(job.spec.deadline))


def _queue_ttl(job: Job) -> int:
    """How long a conversation's queue is kept after a job joins it: past the job's
    deadline, so the queue outlives every job still waiting in it (a queue that expired
    anyway loses no order: each job joins again at its own submission time)."""
    return _life_bound(job) + QUEUE_MARGIN


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
        self._create = lua.register(client, "store_create")
        self._commit = lua.register(client, "store_commit")
        self._release = lua.register(client, "store_release")
        self._take_turn = lua.register(client, "conversation_turn")
        self._wait_for_end = lua.register(client, "turn_wait")
        self._extend = lua.register(client, "store_extend_lock")
        self._request_cancel = lua.register(client, "cancel_request")
        self._delta = lua.register(client, "store_delta")
        # The writes a job's ending commit carries, by job id (see `ending`).
        self._ending: dict[str, EndingWrites] = {}
        # When this store last trimmed each recent-jobs index (`INDEX_TENDING`).
        self._tended: dict[str, float] = {}

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
        """Write a new record (with its events, lease and index entries) and return its id.

        `idempotency_key` is the producer's key, scoped by the job's tenant. Used before
        with the same spec, nothing is written and the earlier job's id is returned; with
        another spec, `IdempotencyConflictError` names the key. None means a record with
        this id already exists.
        """
        call = self.create_call(job, events, lease_until=lease_until,
                                idempotency_key=idempotency_key)  # fmt: skip
        return call.outcome(self._create(keys=call.keys, args=call.args))

    def create_call(
        self,
        job: Job,
        events: list[dict[str, Any]],
        *,
        lease_until: float,
        idempotency_key: str | None = None,
    ) -> CreateCall:
        """The create script's keys and arguments, without running it (see `CreateCall`)."""
        tenant = job.spec.tenant
        idem = keys.idempotency(tenant, idempotency_key) if idempotency_key else None
        payloads = [json.dumps({"ts": time.time(), **event}) for event in events]
        created = job.timings.get("queued_at") or time.time()
        conversation = turns_on(job.id, job.spec)
        tenant_index = keys.tenant_jobs(tenant) if tenant else keys.jobs_index()
        return CreateCall(
            keys=[
                keys.job(job.id),
                keys.leases(),
                keys.events(job.id),
                idem or keys.job(job.id),
                keys.jobs_index(),
                tenant_index,
                keys.conversation_queue(conversation, tenant) if conversation else keys.job(job.id),
            ],
            args=[
                _dump(job),
                repr(lease_until),
                job.id,
                self.events_maxlen,
                self.events_ttl + _life_bound(job),
                spec_fingerprint(job.spec) if idem else "",
                repr(created),
                self.result_ttl * INDEX_LIFETIMES if self._tend(tenant_index) else 0,
                len(payloads),
                *payloads,
                _queue_ttl(job) if conversation else "",
            ],
            job_id=job.id,
            idempotency_key=idempotency_key,
        )

    def _tend(self, index: str) -> bool:
        """Should this creation trim the recent-jobs indexes and set their TTL? Yes for a
        store's first creation, then once every `INDEX_TENDING` seconds (per tenant's
        index; the index of every job is tended with any of them)."""
        now = time.monotonic()
        if now - self._tended.get(index, -INDEX_TENDING) < INDEX_TENDING:
            return False
        self._tended[index] = now
        return True

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
        unless_cancelled: bool = False,
    ) -> bool:
        """Compare-and-set the record; False if someone else changed it meanwhile.

        `unless_cancelled`: a step's outcome is not written while the job's cancel flag
        is up (checked in the same script); `CancelRequested` says so, and the caller,
        still holding the job, ends it cancelled instead.
        """
        expected = job.version
        job.version += 1
        written = self._write(
            job,
            expected=expected,
            events=list(events),
            owner=owner,
            lease_until=lease_until,
            unless_cancelled=unless_cancelled,
        )
        if written != 1:
            job.version = expected
        if written == _REFUSED_CANCELLED:
            raise CancelRequested
        return written == 1

    @contextmanager
    def ending(self, job_id: str, writes: EndingWrites) -> Iterator[None]:
        """The commits of `job_id` made inside carry `writes` (`EndingWrites`): the step
        that ends a job commits through `StepFrame.settle`, which knows nothing of them.
        The step holds the job, so no other commit of it runs meanwhile."""
        self._ending[job_id] = writes
        try:
            yield
        finally:
            self._ending.pop(job_id, None)

    def release(self, job_id: str, owner: str) -> None:
        """Give the lock back without writing (the step found nothing to do)."""
        self._release(keys=[keys.job_lock(job_id)], args=[owner])

    def request_cancel(self, job_id: str) -> str:
        """Raise the cancel flag unless the job has ended; return the status it was in.

        See `runs.cancellation`: every step of the job honours the flag; `cancelled`
        when it had been cancelled already, `JobAlreadyEndedError` when it succeeded or
        failed first.
        """
        script_keys, args = cancellation.request_call(job_id, self.events_ttl)
        return cancellation.outcome(job_id, self._request_cancel(keys=script_keys, args=args))

    def get_with_cancel(self, job_id: str) -> tuple[Job, bool]:
        """The record and whether its cancel flag is up, in one `MGET` (a tool call's
        look before it runs)."""
        data, flag = self.redis.mget([keys.job(job_id), keys.cancel(job_id)])
        return load_record(job_id, data), flag is not None

    def cancel_requested(self, job_id: str) -> bool:
        """Is the cancel flag up? (A step learns it with its claim; a tool call asks.)"""
        return bool(self.redis.exists(keys.cancel(job_id)))

    def find_by_idempotency_key(self, tenant: str | None, key: str) -> str | None:
        name = keys.idempotency(tenant, key)
        if text(self.redis.type(name)) == "string":  # written before fingerprints were kept
            value = self.redis.get(name)
        else:
            value = self.redis.hget(name, "job")
        return text(value) if value is not None else None

    def expired_leases(self, now: float, limit: int = 100) -> list[str]:
        """Jobs whose lease ran out: their driver died or a message was lost.

        Includes ended jobs whose finish (publication) never ran.
        """
        ids = self.redis.zrangebyscore(keys.leases(), "-inf", now, start=0, num=limit)
        return [text(i) for i in cast(list[bytes], ids)]

    def take_conversation(self, job: Job, conversation: str) -> Turn:
        """Hold the conversation for `job`, in submission order; say who has the turn:
        the job itself, the job holding it, or the job submitted before it that has yet
        to take it (conversation_turn.lua), and whose end will start `job`.

        A job named that has ended (or is gone) is passed over: a holder that ended
        without giving the conversation back loses the lock, and an earlier job that
        ended before its turn (cancelled, failed at a gate, past its deadline) leaves
        the queue. (The job just before `job` must be live too: its end is what starts
        `job`, and an end that already happened starts nothing.)
        """
        lock = keys.conversation_lock(conversation)
        queue = keys.conversation_queue(conversation, job.spec.tenant)
        submitted = job.timings.get("queued_at") or time.time()
        args: list[str | int] = [job.id, max(1000, int(job.spec.deadline * 1000)),
                                 repr(submitted), _queue_ttl(job)]  # fmt: skip
        while True:
            reply = self._take_turn(keys=[lock, queue], args=args)
            kind = text(reply[0])
            if kind == "mine":
                return Turn(job.id)
            other, ahead = text(reply[1]), text(reply[2])
            if self.has_ended(other):
                if kind == "held":
                    self._release(keys=[lock], args=[other])
                else:
                    self.redis.zrem(queue, other)
            elif ahead and ahead != other and self.has_ended(ahead):
                self.redis.zrem(queue, ahead)
            else:
                return Turn(other, after=ahead or other)

    def ahead_in_line(self, job: Job, conversation: str) -> str | None:
        """The job just before `job` in its tenant's line for `conversation`: "" when
        `job` is first, None when it holds no place in the line. A job before it that
        has ended (or is gone) is passed over, as `take_conversation` does."""
        queue = keys.conversation_queue(conversation, job.spec.tenant)
        while True:
            rank = cast(int | None, self.redis.zrank(queue, job.id))
            if rank is None:
                return None
            if rank == 0:
                return ""
            before = self.redis.zrange(queue, rank - 1, rank - 1)
            if not before:
                return ""
            ahead = text(before[0])
            if not self.has_ended(ahead):
                return ahead
            self.redis.zrem(queue, ahead)

    def has_ended(self, job_id: str) -> bool:
        """Has the job ended, or is its record gone (expired)? A job waiting for another
        asks this of the job that began its conversation (it took no turn lock:
        `runs.conversations.ids.of_job`) and of the job whose end it asked to start it."""
        try:
            return self.get(job_id).terminal
        except JobNotFoundError:
            return True

    def wait_for_end(self, other: str, job: Job) -> None:
        """Ask the end of `other` to start `job` at once: the commit that ends `other`
        reads this (`EndingWrites.next_turns`), and its step starts `job` then, instead of
        at `job`'s next look (`runs.gates.Gates.ask_hand_over`).

        Several jobs may wait for one end (turn_wait.lua), each named once. A job that
        stopped waiting is started once more with a token it no longer has, which does
        nothing.
        """
        self._wait_for_end(
            keys=[keys.turn_next(other)], args=[job.id, job.token, TURN_NEXT_LIFE * 1000]
        )

    def give_back_conversation(self, conversation: str, job_id: str) -> None:
        self._release(keys=[keys.conversation_lock(conversation)], args=[job_id])

    def stream_position(self, job_id: str, run_id: str) -> int | None:
        raw = self.redis.hget(keys.stream_seq(job_id), run_id)
        return int(raw) if raw is not None else None

    def forward_delta(self, job_id: str, run_id: str, seq: int, delta: str) -> None:
        """Append a text delta to the job's events and remember its sequence number.

        One Lua call (`store_delta.lua`), so a resumed stream neither repeats nor skips a
        delta: 4 commands a delta, where a transaction that also set the event stream's
        TTL took 6 (the stream keeps the TTL of its creation until the job's end).
        """
        payload = json.dumps({"ts": time.time(), "type": "text.delta", "seq": seq, "delta": delta})
        self._delta(
            keys=[keys.events(job_id), keys.stream_seq(job_id)],
            args=[self.events_maxlen, payload, run_id, seq, self.events_ttl],
        )

    def extend_lock(self, job_id: str, owner: str, seconds: float) -> bool:
        """Keep holding the job during a long step (a stream); False if the lock was lost."""
        return bool(self._extend(keys=[keys.job_lock(job_id)], args=[owner, int(seconds * 1000)]))

    def extend_lease(self, job_id: str, until: float) -> None:
        self.redis.zadd(keys.leases(), {job_id: until}, xx=True)

    def drop_lease(self, job_id: str) -> bool:
        """Take the job off the sweeper's watch; False when it was not on it."""
        return bool(self.redis.zrem(keys.leases(), job_id))

    def _write(
        self,
        job: Job,
        *,
        expected: int,
        events: list[dict[str, Any]],
        owner: str,
        lease_until: float | None,
        unless_cancelled: bool = False,
    ) -> int:
        ttl = self.result_ttl if job.terminal else 0
        # Only a published job is done with the sweeper; until then it holds a lease. A
        # lease given is written even so: the commit that ends a job and publishes its
        # result with it keeps one, dropped once the job's place in flight is given back.
        no_lease_given = "" if job.terminal and job.published else "-"
        lease = no_lease_given if lease_until is None else repr(lease_until)
        payloads = [json.dumps({"ts": time.time(), **event}) for event in events]
        script_keys = [
            keys.job(job.id),
            keys.job_lock(job.id),
            keys.leases(),
            keys.events(job.id),
            keys.cancel(job.id),
        ]
        args: list[Any] = [
            str(expected),
            _dump(job),
            owner,
            lease,
            ttl,
            job.id,
            len(payloads),
            self.events_maxlen,
            self.events_ttl,
            "1" if unless_cancelled else "0",
            *payloads,
        ]
        ending = self._ending.get(job.id)
        if ending is not None:
            conversation, record, record_ttl = ending.record or ("", "", 0)
            script_keys.append(keys.conversation(conversation) if record else keys.job(job.id))
            lock = ending.conversation_lock
            script_keys.append(keys.conversation_lock(lock) if lock else keys.job(job.id))
            script_keys.append(keys.turn_next(job.id))
            args += [record, record_ttl, "1" if lock else "0"]
            if ending.result is not None:
                result_key, value, result_ttl = ending.result
                script_keys.append(result_key)
                args += [value, result_ttl]
        reply = self._commit(keys=script_keys, args=args)
        if isinstance(reply, bytes | str):  # written, and jobs wait for this end
            if ending is not None:
                ending.next_turns = [_waiting_start(mark) for mark in text(reply).split(",")]
            return 1
        return int(reply)
