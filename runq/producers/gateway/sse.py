"""Server-sent events from a job's Redis stream.

Each SSE message is one job event: `id:` is the Redis stream id (so `Last-Event-ID`
resumes exactly after it, with no duplicate and no gap), `event:` its type, `data:` the
event as JSON. The stream ends after `job.final`. If the job's stream expired while the
record still exists, a synthetic `job.final` (without an id) carries the result.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from runq.errors import JobNotFoundError
from runq.producers.client.aio import AsyncClient
from runq.runs.events import FINAL

BLOCK_MS = 5000


async def job_events(
    client: AsyncClient, job_id: str, after: str,
    disconnected: Callable[[], Awaitable[bool]],
) -> AsyncIterator[dict[str, Any]]:  # fmt: skip
    """SSE messages (dicts for sse-starlette) of a job's events after `after`."""
    while not await disconnected():
        events = await client.read_events(job_id, after, BLOCK_MS)
        for event in events:
            after = event.id
            yield {"id": event.id, "event": event.type, "data": json.dumps(event.to_dict())}
            if event.final:
                return
        if events:
            continue
        try:
            job = await client.load(job_id)
        except JobNotFoundError:
            return
        if job.terminal and not await client.read_events(job_id, after, 1):
            data = {"type": FINAL, "status": job.status, "result": job.result()}
            yield {"event": FINAL, "data": json.dumps(data)}
            return
