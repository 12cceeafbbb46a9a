"""A producer's wait survives a Redis restart: reconnect with backoff, within its timeout.

Why: `JobHandle.result()`, `events()`, `runq watch` and the gateway's event streams
wait on Redis for minutes. A Redis restart (a deploy, a failover, an OOM kill) closed
their connection and the wait raised `ConnectionError: Connection closed by server`,
although the job went on and its result would arrive. A wait now treats a connection
failure as an outage: it tries again with exponential backoff (redis-py opens a new
connection on the next command), resumes from its last event id (so nothing is missed
or repeated), and gives up only when its own timeout passes, or, without a timeout,
after `MAX_OUTAGE_S` of failing in a row, with one `RedisUnavailableError` naming the
URL without its password.

redis-py is imported inside the functions: `runq status` and `runq result` import this
module through the client and must not pay for redis-py.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, TypeVar

from runq.config.logging import redact_text
from runq.errors import RedisFullError, RedisUnavailableError

if TYPE_CHECKING:
    from runq.runs.events import Event, EventLog

T = TypeVar("T")
FIRST_DELAY_S = 0.05
MAX_DELAY_S = 2.0
MAX_OUTAGE_S = 60.0  # a wait without a timeout gives up after this long without Redis


COMMAND_RETRIES = 3


def command_retry() -> object:
    """redis-py's retry for a producer's single commands (sync clients).

    After a Redis restart every pooled connection is dead, and the first command on each
    failed with `Connection closed by server` although Redis was back: a gateway GET
    answered 503. A command is now sent again on a new connection, up to
    `COMMAND_RETRIES` times, waiting min(0.5, 0.05 * 2**n) s before try n. A create that
    was applied before its reply was lost finds its record and returns it (the job's
    submit lease lets the sweeper start it), so retrying it is harmless."""
    from redis.backoff import ExponentialBackoff
    from redis.retry import Retry

    return Retry(ExponentialBackoff(cap=0.5, base=FIRST_DELAY_S), COMMAND_RETRIES)


def async_command_retry() -> object:
    """The same retry for redis-py's asyncio clients (the gateway's)."""
    from redis.asyncio.retry import Retry
    from redis.backoff import ExponentialBackoff

    return Retry(ExponentialBackoff(cap=0.5, base=FIRST_DELAY_S), COMMAND_RETRIES)


def is_outage(exc: BaseException) -> bool:
    """A lost or refused connection, or a Redis still loading its data after a restart."""
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    return isinstance(exc, RedisConnectionError | RedisTimeoutError)


def full_error(exc: BaseException, url: str) -> RedisFullError | None:
    """A `RedisFullError` for Redis's out-of-memory refusal (also from inside a script)."""
    from redis.exceptions import OutOfMemoryError, ResponseError

    oom = isinstance(exc, OutOfMemoryError) or (
        isinstance(exc, ResponseError) and "OOM command not allowed" in str(exc)
    )
    return RedisFullError(redact_text(url)) if oom else None


class Outage:
    """One wait's record of failures in a row: how long to back off, when to give up."""

    def __init__(self, url: str, timeout: float | None) -> None:
        self.url = url
        self.deadline = None if timeout is None else time.monotonic() + timeout
        self.since: float | None = None
        self.failures = 0

    def failed(self, exc: BaseException) -> float:
        """The delay before trying again; `RedisUnavailableError` once the wait is over."""
        now = time.monotonic()
        self.since = self.since if self.since is not None else now
        self.failures += 1
        delay = min(MAX_DELAY_S, FIRST_DELAY_S * 2 ** (self.failures - 1))
        give_up_at = self.deadline if self.deadline is not None else self.since + MAX_OUTAGE_S
        if now + delay > give_up_at:
            raise RedisUnavailableError(redact_text(self.url), now - self.since, str(exc)) from exc
        return delay

    def ok(self) -> None:
        self.since, self.failures = None, 0

    def remaining(self) -> float | None:
        return None if self.deadline is None else self.deadline - time.monotonic()


def call(outage: Outage, read: Callable[[], T]) -> T:
    """`read()`, tried again through an outage."""
    while True:
        try:
            value = read()
        except Exception as exc:
            if not is_outage(exc):
                raise
            time.sleep(outage.failed(exc))
            continue
        outage.ok()
        return value


async def acall(outage: Outage, read: Callable[[], Awaitable[T]]) -> T:
    """`await read()`, tried again through an outage."""
    while True:
        try:
            value = await read()
        except Exception as exc:
            if not is_outage(exc):
                raise
            await asyncio.sleep(outage.failed(exc))
            continue
        outage.ok()
        return value


def _block_ms(outage: Outage, block_ms: int) -> int | None:
    """How long the next read may block; None when the wait's timeout has passed."""
    remaining = outage.remaining()
    if remaining is None:
        return block_ms
    if remaining <= 0:
        return None
    return max(1, min(block_ms, int(remaining * 1000)))


def follow(
    log: EventLog, url: str, job_id: str, after: str, timeout: float | None
) -> Iterator[Event]:
    """A job's events after `after`, live, to the final one (or `timeout`), through outages."""
    outage = Outage(url, timeout)
    while (block := _block_ms(outage, 1000)) is not None:
        for event in call(outage, lambda: log.wait(job_id, after, block)):  # noqa: B023
            after = event.id
            yield event
            if event.final:
                return


async def afollow(
    read: Callable[[str, int], Awaitable[list[Event]]],
    url: str,
    after: str,
    timeout: float | None,
    block_ms: int = 1000,
) -> AsyncIterator[Event]:
    """`follow` for asyncio: `read(after, block_ms)` is one blocking read of the stream."""
    outage = Outage(url, timeout)
    while (block := _block_ms(outage, block_ms)) is not None:
        for event in await acall(outage, lambda: read(after, block)):  # noqa: B023
            after = event.id
            yield event
            if event.final:
                return
