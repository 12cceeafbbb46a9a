"""Server-sent events on the wire, sent when they fall due.

Every stream in the sandbox (Responses, Chat Completions, Assistants runs) is planned
up front as events with due times on the object's timeline; a stream only waits for
each due time and writes the event in the ``event:``/``data:`` framing the official
clients parse.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any


def sse(data: Any, event: str | None = None) -> bytes:
    """One server-sent event: an optional ``event:`` line, then ``data:`` as JSON."""
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(data)}\n\n".encode()


async def wait_until(due: float) -> None:
    """Sleep until the wall-clock time ``due`` (return at once if it has passed).

    Sleeps again for what is left: an event loop's timer may fire a little before the
    wall clock says (uvloop's clock is cached per loop iteration, to the millisecond),
    and a response rendered then would still be ``in_progress``.
    """
    while (delay := due - time.time()) > 0:
        await asyncio.sleep(delay)
