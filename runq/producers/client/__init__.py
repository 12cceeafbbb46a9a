"""The Python API: submit jobs and follow them from your own code.

- `sync`: `Client`, `JobHandle`, `submit`, `get_job`, on redis-py and Celery;
- `aio`: `AsyncClient`, `AsyncJobHandle` for asyncio apps, on `redis.asyncio`;
- `_resp`: the fast path behind `Client.reads` (GET and MGET in RESP2 over a socket of
  its own, so a short command need not import redis-py). An implementation detail, not
  an API: `KeyReads`, the protocol of `Client.reads`, is the one name it lends out.

The asyncio names load on first use: `redis.asyncio` is not free to import, and a
command that only reads a few keys must not pay for it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from runq.producers.client._resp import KeyReads
from runq.producers.client.sync import Client, JobHandle, get_job, submit

if TYPE_CHECKING:
    from runq.producers.client.aio import AsyncClient, AsyncJobHandle

__all__ = ["AsyncClient", "AsyncJobHandle", "Client", "JobHandle", "KeyReads", "get_job",
           "submit"]  # fmt: skip

_ASYNC = ("AsyncClient", "AsyncJobHandle")


def __getattr__(name: str) -> Any:
    if name not in _ASYNC:
        raise AttributeError(f"module 'runq.producers.client' has no attribute {name!r}")
    return getattr(importlib.import_module("runq.producers.client.aio"), name)
