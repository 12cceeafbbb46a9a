"""One Redis connection reads every open event stream of a gateway process.

Why: an SSE stream lives as long as its job (minutes, or more), mostly waiting. A
blocking `XREAD` per stream held one pooled Redis connection per open stream, and every
quiet stretch cost a read of the whole job record. Here one task reads the streams of
all subscriptions with one `XREAD BLOCK`, on a connection of its own whose socket
timeout is longer than the block (redis-py's default 5 s timeout broke a 5 s block),
and hands each subscription its events through a small queue. An open stream then costs
a queue and a cursor; Redis sees one blocked client per gateway process.

A new subscription (or one that drained its queue) must not wait for the block to end:
the hub sends `CLIENT UNBLOCK` to its own reader from the shared pool, and the reader
reads again with the new cursor at once. A subscription that does not keep up (a slow
client) is paused when its queue is full and read again from its own cursor once it has
drained half of it, so a slow client costs bounded memory and loses nothing.
"""

from __future__ import annotations

import asyncio
from typing import Any

import redis.asyncio as aioredis
import redis.exceptions
import structlog
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from runq.runs import keys
from runq.runs.events import Event, _decode
from runq.runs.replies import text

BLOCK_MS = 10_000
# The reader's socket timeout exceeds its block by this much: a quiet block never times out.
SOCKET_MARGIN_S = 10.0
COUNT = 500  # events per stream per read
QUEUE_BATCHES = 64  # batches a subscription may hold before it is paused
RETRY_MAX_S = 5.0
CLOSE_WAIT_S = 2.0
log = structlog.get_logger("runq.gateway")


def _position(stream_id: str) -> tuple[int, int]:
    ms, _, seq = stream_id.partition("-")
    return int(ms), int(seq or 0)


class Subscription:
    """One open stream's view of the hub: its cursor and the batches waiting for it."""

    def __init__(self, hub: EventHub, job_id: str, after: str) -> None:
        self.hub = hub
        self.job_id = job_id
        self.cursor = after
        self.paused = False
        self._queue: asyncio.Queue[list[Event]] = asyncio.Queue(maxsize=QUEUE_BATCHES)

    async def next(self, timeout: float) -> list[Event] | None:
        """The next batch of events, or None when `timeout` seconds pass without one."""
        try:
            batch = await asyncio.wait_for(self._queue.get(), timeout)
        except TimeoutError:
            return None
        if self.paused and self._queue.qsize() <= QUEUE_BATCHES // 2:
            self.paused = False
            self.hub.wake()
        return batch

    def offer(self, events: list[Event]) -> None:
        """Queue the events after this subscription's cursor (the hub read from the
        lowest cursor of the job's subscriptions)."""
        mine = [e for e in events if _position(e.id) > _position(self.cursor)]
        if not mine:
            return
        self._queue.put_nowait(mine)
        self.cursor = mine[-1].id
        if self._queue.full():
            self.paused = True


class EventHub:
    """Reads the event streams of every subscription on one connection (see the module)."""

    def __init__(self, redis_url: str, waker: aioredis.Redis, *, block_ms: int = BLOCK_MS) -> None:
        self._block_ms = block_ms
        self._reader = aioredis.Redis.from_url(
            redis_url,
            single_connection_client=True,
            socket_timeout=block_ms / 1000 + SOCKET_MARGIN_S,
            # No silent reconnect: the reader's client id (for CLIENT UNBLOCK) must be
            # read again after every reconnect, and only a failure we see tells us.
            retry=Retry(NoBackoff(), 0),
            health_check_interval=0,
        )
        self._waker = waker
        self._subs: dict[str, set[Subscription]] = {}
        self._wake = asyncio.Event()
        self._client_id: int | None = None
        self._reading = False
        self._reads = 0
        self._unblocking: asyncio.Task[None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    # -- subscriptions -------------------------------------------------------------------
    def subscribe(self, job_id: str, after: str) -> Subscription:
        sub = Subscription(self, job_id, after)
        self._subs.setdefault(job_id, set()).add(sub)
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="runq-event-hub")
        self.wake()
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        subs = self._subs.get(sub.job_id)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._subs[sub.job_id]

    @property
    def open_streams(self) -> int:
        return sum(len(subs) for subs in self._subs.values())

    def wake(self) -> None:
        """Make the reader read again now, with the current cursors."""
        self._wake.set()
        if self._reading and self._client_id is not None and self._unblocking is None:
            self._unblocking = asyncio.create_task(self._unblock(self._client_id, self._reads))

    async def _unblock(self, client_id: int, read: int) -> None:
        """Unblock the reader's current XREAD (retrying until the command has arrived)."""
        try:
            while self._reading and self._reads == read:
                if await self._waker.client_unblock(client_id):
                    return
                await asyncio.sleep(0.005)
        except redis.exceptions.RedisError as exc:  # the block ends by itself soon enough
            log.warning("gateway.events_unblock_failed", error=str(exc))
        finally:
            self._unblocking = None

    # -- the reader ----------------------------------------------------------------------
    def _cursors(self) -> dict[Any, Any]:
        """events key -> the lowest cursor of the job's subscriptions that are not paused."""
        cursors: dict[Any, Any] = {}
        for job_id, subs in self._subs.items():
            active = [sub.cursor for sub in subs if not sub.paused]
            if active:
                cursors[keys.events(job_id)] = min(active, key=_position)
        return cursors

    async def _run(self) -> None:
        failures = 0
        while not self._closing:
            try:
                if self._client_id is None:
                    self._client_id = int(await self._reader.client_id())
                self._wake.clear()
                cursors = self._cursors()
                if self._closing:
                    return
                if not cursors:
                    await self._wake.wait()
                    continue
                self._reading, self._reads = True, self._reads + 1
                try:
                    reply = await self._reader.xread(cursors, block=self._block_ms, count=COUNT)
                finally:
                    self._reading = False
            except redis.exceptions.RedisError as exc:  # down, slow, or a key not a stream
                self._client_id = None
                failures += 1
                log.warning("gateway.events_read_failed", error=str(exc), failures=failures,
                            open_streams=self.open_streams)  # fmt: skip
                await asyncio.sleep(min(RETRY_MAX_S, 0.1 * 2**failures))  # back off, then retry
                continue
            failures = 0
            self._dispatch(reply)

    def _dispatch(self, reply: Any) -> None:
        for key, entries in reply or []:
            job_id = text(key).removeprefix(keys.events(""))
            events = [_decode(entry_id, fields) for entry_id, fields in entries]
            for sub in list(self._subs.get(job_id, ())):
                if not sub.paused:
                    sub.offer(events)

    async def aclose(self) -> None:
        """Stop the reader: unblock its read and let it return (a cancel that lands while
        redis-py sends a command can be swallowed, so cancelling is the fallback only)."""
        self._closing = True
        self._wake.set()
        task = self._task
        if task is not None:
            if self._reading and self._client_id is not None:
                await self._unblock(self._client_id, self._reads)
            done, _ = await asyncio.wait({task}, timeout=CLOSE_WAIT_S)
            if not done:
                task.cancel()
                await asyncio.wait({task}, timeout=CLOSE_WAIT_S)
        if self._unblocking is not None:
            self._unblocking.cancel()
        await self._reader.aclose()
