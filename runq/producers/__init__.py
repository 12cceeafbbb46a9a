"""Producers: everything that puts jobs into runq or serves it, grouped by audience.

- `client`: the Python API (`Client`, `JobHandle`, `submit`, `get_job`; `AsyncClient`);
- `cli`: the `runq` command (argument parsing, option checks, the job commands);
- `ask`: batch document Q&A (`runq ask`);
- `gateway`: the HTTP gateway (`runq gateway`);
- `ops`: running and watching a deployment (`runq up`, `demo`, `worker`, `metrics`,
  `flower`).

This module imports none of them: every `runq` command passes through it, and a command
that only reads a few keys must not pay for the client, Celery or redis-py. The public
names are `runq.submit`, `runq.Client` and so on; the four below still resolve here, on
first use, for code written against `runq.producers`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from runq.producers.client import Client, JobHandle, get_job, submit

__all__ = ["Client", "JobHandle", "get_job", "submit"]


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module 'runq.producers' has no attribute {name!r}")
    return getattr(importlib.import_module("runq.producers.client"), name)
