"""runq: run LLM conversation jobs in the background, at scale, on Celery and Redis.

The public API is these names; everything else lives one level down (`runq.config`,
`runq.runs`, `runq.worker`, `runq.tasks`, `runq.producers`, `runq.sandbox`)::

    from runq import submit

    handle = submit("Summarise the refund policy", idempotency_key="order-42")
    print(handle.result(timeout=60)["output_text"])

The names are loaded on first use (PEP 562), not when `runq` is imported: a process that
only needs a small part (the sandbox, `runq status`, a worker's tool module) does not pay
for Celery, redis-py and the `openai` client at import.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from runq.errors import (
        BackendError,
        ConfigurationError,
        IdempotencyConflictError,
        InvalidJobError,
        JobAlreadyEndedError,
        JobFailedError,
        JobNotFoundError,
        JobTimeoutError,
        RunqError,
        ToolError,
    )
    from runq.producers.client.aio import AsyncClient, AsyncJobHandle
    from runq.producers.client.sync import Client, JobHandle, get_job, submit
    from runq.runs.files.produced import JobFile
    from runq.runs.recent import JobSummary
    from runq.runs.tools import tool

__version__ = "0.2.0"

__all__ = [
    "AsyncClient",
    "AsyncJobHandle",
    "BackendError",
    "Client",
    "ConfigurationError",
    "IdempotencyConflictError",
    "InvalidJobError",
    "JobAlreadyEndedError",
    "JobFailedError",
    "JobFile",
    "JobHandle",
    "JobNotFoundError",
    "JobSummary",
    "JobTimeoutError",
    "RunqError",
    "ToolError",
    "get_job",
    "submit",
    "tool",
]

# Where each public name is defined.
_HOMES = {
    "submit": "runq.producers.client.sync",
    "get_job": "runq.producers.client.sync",
    "Client": "runq.producers.client.sync",
    "JobHandle": "runq.producers.client.sync",
    "AsyncClient": "runq.producers.client.aio",
    "AsyncJobHandle": "runq.producers.client.aio",
    "JobSummary": "runq.runs.recent",
    "JobFile": "runq.runs.files.produced",
    "tool": "runq.runs.tools",
    "RunqError": "runq.errors",
    "ConfigurationError": "runq.errors",
    "InvalidJobError": "runq.errors",
    "IdempotencyConflictError": "runq.errors",
    "JobAlreadyEndedError": "runq.errors",
    "JobFailedError": "runq.errors",
    "JobNotFoundError": "runq.errors",
    "JobTimeoutError": "runq.errors",
    "BackendError": "runq.errors",
    "ToolError": "runq.errors",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'runq' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # the next access is a plain lookup
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
