"""The pool a worker gets when nobody says: chosen by the queues it takes.

`runq worker`, `runq up` (`runq.worker.launcher`) and docker-compose.yml all start
workers with these defaults, so a newcomer's worker has the production shape.

- A worker that takes the `runs` queue (alone, or with `tools`: `runq worker` with no
  flags) gets a **threads** pool with `RUNS_THREADS` slots. Its steps spend almost all
  their time waiting on one HTTP request each (create, retrieve, submit); a prefork
  process would be held for that whole round trip, so two processes finish at most
  2 / (requests per job x request time) jobs a second (docs/benchmarks.md: 0.28x the
  no-queue bound at 100 ms per request). Threads overlap the waits; the GIL costs
  nothing while they wait. Everything a step shares in a process is thread-safe: one
  redis-py client (its connection pool hands each command its own connection), one
  `openai` client per endpoint (httpx's pool), and the runtime built once under a lock
  (`runq.worker.celery_app`).
- A worker that takes only tool queues gets **prefork** with one process per CPU: a
  tool may be CPU-bound, and processes are what let such tools use every core.
- A worker that takes both runs its tools in threads too. A tool already runs in a
  thread of its own by default (so its timeout can abandon it); a CPU-heavy or untrusted
  tool should say `@tool(isolation="process")` (or `RUNQ_TOOL_ISOLATION=process`), which
  runs it in a child interpreter whatever the pool, or go to a `-Q tools` worker. One
  pool per worker is Celery's model; two pools would mean two workers, which is what
  `runq up --tool-workers N` and docker-compose.yml's `worker-tools` already are.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

RUNS_THREADS = 64
"""Slots of a `runs` worker: steps in flight per process. A step waits ~0.1-1 s on HTTP
and takes ~5 ms of CPU, so one process keeps a core busy long before 64 are waiting."""


@dataclass(frozen=True)
class PoolShape:
    pool: str
    concurrency: int

    def args(self) -> list[str]:
        """The Celery worker options for this shape."""
        return ["--pool", self.pool, "--concurrency", str(self.concurrency)]


def takes_runs(queues: str) -> bool:
    """Whether a worker on `queues` (comma separated) runs job steps."""
    return "runs" in {q.strip() for q in queues.split(",")}


def default_shape(
    queues: str, pool: str | None = None, concurrency: int | None = None
) -> PoolShape:
    """The pool and slots for a worker on `queues`; explicit choices win.

    An explicit pool without a concurrency keeps the size that suits that pool: threads
    get `RUNS_THREADS`, processes one per CPU.
    """
    if pool is None:
        pool = "threads" if takes_runs(queues) else "prefork"
    if concurrency is None:
        concurrency = RUNS_THREADS if pool in ("threads", "gevent", "eventlet") else _cpus()
    return PoolShape(pool, concurrency)


def _cpus() -> int:
    if hasattr(os, "sched_getaffinity"):  # the CPUs this process may run on (containers)
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)
