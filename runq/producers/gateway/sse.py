"""Server-sent events from a job's Redis stream, for as long as the job runs.

Each SSE message is one job event: `id:` is the Redis stream id (so `Last-Event-ID`
resumes exactly after it, with no duplicate and no gap), `event:` its type, `data:` the
event as JSON. The stream ends after `job.final`. If the job's stream expired while the
record still exists, a synthetic `job.final` (without an id) carries the result.

The events come from the process's `EventHub` (one Redis connection for every open
stream). While a job is quiet the stream costs nothing but a heartbeat comment from
sse-starlette; every `QUIET_CHECK_SECONDS` without an event it asks Redis, in one
round trip, only whether the record and the stream still exist (a job whose record
expired or was deleted would otherwise be followed forever). A Redis restart does not
end a stream: the hub reconnects with backoff and reads on from every cursor, and a
quiet check that fails for want of Redis is simply made again later.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import redis.exceptions
import structlog

from runq.errors import JobNotFoundError
from runq.producers.client.aio import AsyncClient
from runq.producers.gateway.event_hub import EventHub
from runq.runs import keys
from runq.runs.events import FINAL
from runq.runs.job import Job

QUIET_CHECK_SECONDS = 30.0
log = structlog.get_logger("runq.gateway")


def _message(event_id: str | None, event_type: str, data: dict[str, Any]) -> dict[str, Any]:
    message = {"event": event_type, "data": json.dumps(data)}
    return message if event_id is None else {"id": event_id, **message}


def _final_of(job: Job) -> dict[str, Any]:
    """The synthetic `job.final` of an ended job whose events are gone."""
    return _message(None, FINAL, {"type": FINAL, "status": job.status, "result": job.result()})


async def _nothing_after(client: AsyncClient, job_id: str, after: str) -> bool:
    """No event after `after` (one XRANGE of at most one entry)."""
    start = "-" if after == "0-0" else f"({after}"
    return not await client.redis.xrange(keys.events(job_id), min=start, count=1)


async def job_events(
    client: AsyncClient, hub: EventHub, job: Job, after: str,
    disconnected: Callable[[], Awaitable[bool]],
    quiet_check: float = QUIET_CHECK_SECONDS,
) -> AsyncIterator[dict[str, Any]]:  # fmt: skip
    """SSE messages (dicts for sse-starlette) of `job`'s events after `after`, live."""
    if job.terminal and await _nothing_after(client, job.id, after):
        yield _final_of(job)  # an ended job whose events expired, or were all seen
        return
    sub = hub.subscribe(job.id, after)
    try:
        while True:
            batch = await sub.next(quiet_check)
            if batch is None:
                if await disconnected():
                    return
                try:
                    ended = await _gone(client, job.id)
                except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
                    continue  # Redis restarting: the hub reconnects; check again later
                if ended is not None:
                    if ended:
                        yield ended
                    return
                continue
            for event in batch:
                yield _message(event.id, event.type, event.to_dict())
                if event.final:
                    return
    except redis.exceptions.RedisError as exc:
        # The client resumes with Last-Event-ID; a traceback would help nobody.
        log.warning("gateway.events_stream_ended", job_id=job.id, error=str(exc))
    finally:
        hub.unsubscribe(sub)


async def _gone(client: AsyncClient, job_id: str) -> dict[str, Any] | None:
    """After a quiet stretch: None while the job and its stream exist; else the message
    that ends the stream (a synthetic final), or {} to end it without one."""
    pipe = client.redis.pipeline(transaction=False)
    pipe.exists(keys.job(job_id))
    pipe.exists(keys.events(job_id))
    record, stream = await pipe.execute()
    if record and stream:
        return None
    if not record:
        log.info("gateway.events_job_gone", job_id=job_id)
        return {}
    try:
        job = await client.load(job_id)
    except JobNotFoundError:
        return {}
    return _final_of(job) if job.terminal else None
