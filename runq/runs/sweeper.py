"""The sweeper: no job waits forever.

Every non-terminal job holds a lease in a sorted set (`runq:leases`), pushed forward by
each step it takes. A lease runs out only when the job's driver is gone: a worker was
killed mid-step, a message was lost with a Redis restart, or a producer died between
writing the record and sending the start. An ended job keeps its lease until its
publication is done (its result out, its place in flight given back: `runs.publication`),
so a lost finish is re-driven too. The sweeper finds those jobs and re-drives
the step their record says is due, with its token — duplicates stay harmless, because a
step acts only when its token is due and it holds the job's lock.

A job waiting for its turn at admission (`runs.fairness`) is not lost: its lease is
pushed forward, never re-driven, or it would start out of turn. When a job's record is
gone, its place at admission is given back (`on_gone`).

It runs inside every worker (a daemon thread of the main process, see `worker.signals`);
a Redis lock lets one sweep per interval run fleet-wide.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import structlog

from runq.errors import JobNotFoundError
from runq.runs import keys
from runq.runs.job import Job, Step
from runq.runs.scheduler import Scheduler
from runq.runs.store import JobStore
from runq.runs.toolcalls import ToolCalls

log = structlog.get_logger("runq.sweeper")


class Sweeper:
    def __init__(
        self,
        store: JobStore,
        scheduler: Scheduler,
        tools: ToolCalls,
        *,
        interval: float = 10.0,
        extension: float = 60.0,
        waiting: Callable[[str], bool] | None = None,
        waiting_extension: float = 3600.0,
        on_gone: Callable[[str], object] | None = None,
    ) -> None:
        self.store = store
        self.scheduler = scheduler
        self.tools = tools
        self.interval = interval
        self.extension = extension
        self.waiting = waiting
        self.waiting_extension = waiting_extension
        self.on_gone = on_gone

    def sweep_if_due(self, owner: str) -> list[str]:
        """Sweep unless another worker swept in the current interval."""
        lock = keys.sweeper_lock()
        if not self.store.redis.set(lock, owner, nx=True, px=int(self.interval * 1000)):
            return []
        return self.sweep()

    def sweep(self, now: float | None = None, limit: int = 200) -> list[str]:
        """Re-drive every job whose lease expired; return their ids."""
        now = time.time() if now is None else now
        redriven = []
        for job_id in self.store.expired_leases(now, limit):
            try:
                job = self.store.get(job_id)
            except JobNotFoundError:
                self.store.drop_lease(job_id)
                if self.on_gone is not None:
                    self.on_gone(job_id)
                continue
            if job.terminal and job.step != Step.FINISH:
                self.store.drop_lease(job_id)
                continue
            if job.step == Step.START and self.waiting is not None and self.waiting(job_id):
                self.store.extend_lease(job_id, now + self.waiting_extension)
                continue  # waiting for its tenant's turn, not lost
            self.store.extend_lease(job_id, now + self.extension)
            if job.step == Step.SUBMIT_TOOL_OUTPUTS and self._calls_missing(job):
                # Some tool calls never ran (or their messages were lost): send them again;
                # calls already done are not executed twice.
                self.scheduler.dispatch_tools(job, job.token)
            else:
                self.scheduler.schedule(job.step, job.id, job.token, 0)
            log.warning("job.redriven", job_id=job.id, step=job.step, status=job.status)
            redriven.append(job_id)
        return redriven

    def _calls_missing(self, job: Job) -> bool:
        """Has a call of the job's tool round no stored output yet?"""
        return len(self.tools.outputs(job.id, job.round)) < len(job.pending_calls)
