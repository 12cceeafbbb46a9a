"""The safety look: a glance at a run that waits for its webhook, at the cost of a read.

In webhook mode a run's end comes as a delivery; the safety poll looks at the run now
and then in case that delivery is lost (`RunProgress.safety_interval`). Almost every
look finds the run still going, so it was a whole step for nothing: the job's lock, its
record written again (only `polls` changed), the lock given back, about twelve Redis
commands. With 20,000 runs of ten minutes in flight that was most of what waiting cost.

A look is therefore not a step. It reads the record and cancel flag (one `MGET`), asks
the backend for the run, and if the run goes on it counts itself (`runs.looks`), moves
the job's lease past its next look and schedules that look: four commands, no lock and
no write to the record, so it can never overwrite what a step wrote meanwhile. Anything
else hands over to the `poll` step, which claims the job and does what a poll does:

- the run has ended (its webhook was lost or is late), or asks for tools: the poll takes
  the job on with the state this look fetched;
- the call failed: the poll calls again and applies the retry policy;
- the cancel flag is up, the deadline passed, or the job no longer waits for a webhook.

A look that is stale (the record moved on: a delivery woke the job, a cancel ended it)
does nothing. Two looks of one wait cannot run at once: each is scheduled by the one
before, and the receiver that wakes the job drops the pending one.
"""

from __future__ import annotations

from collections.abc import Callable

import structlog

from runq.errors import BackendError, JobNotFoundError
from runq.runs.backends.base import RunState
from runq.runs.context import StepContext
from runq.runs.frame import StepFrame
from runq.runs.job import Step
from runq.runs.links import LinkServices
from runq.runs.looks import LookCounts, waits_for_webhook
from runq.runs.outcomes import Outcome
from runq.runs.run_progress import RunProgress
from runq.runs.scheduler import Scheduler

log = structlog.get_logger("runq.steps")


class SafetyLook:
    """Looks at waiting runs; hands anything but "still going" to the poll step."""

    def __init__(
        self,
        frame: StepFrame,
        progress: RunProgress,
        services: LinkServices,
        scheduler: Scheduler,
        looks: LookCounts,
        poll: Callable[[str, int, RunState | None], str],
    ) -> None:
        self.frame = frame
        self.store = frame.store
        self.config = frame.config
        self.progress = progress
        self.services = services
        self.scheduler = scheduler
        self.looks = looks
        self.poll = poll

    def look(self, job_id: str, token: int) -> str:
        try:
            job, cancelled = self.store.get_with_cancel(job_id)
        except JobNotFoundError:
            return Outcome.NOT_FOUND
        if job.terminal or job.step != Step.POLL or job.token != token:
            if job.terminal:  # a look that raced the end may have counted after it
                self.looks.clear(job_id)
            return Outcome.STALE
        ctx = StepContext(job, "", Step.LOOK, cancel_requested=cancelled,
                          backend_for=self.frame.backend_for,
                          chain_of=self.frame.chain_of)  # fmt: skip
        if cancelled or ctx.remaining() < 0 or not waits_for_webhook(job, self.config):
            return self.poll(job_id, token, None)
        limiter = self.services.limiter(ctx.link)
        if limiter is not None:  # a look is a request like any other
            got = limiter.acquire(0)
            if not got.ok:
                self._look_again(ctx, token, got.wait)
                return Outcome.RATE_LIMITED
        try:
            state = ctx.backend.retrieve(job)
        except BackendError:
            return self.poll(job_id, token, None)  # it calls again, under the retry policy
        if not state.waiting:
            return self.poll(job_id, token, state)
        looks = self.looks.add(job_id)
        wait = self.progress.safety_interval(ctx, looks=looks)
        self._look_again(ctx, token, wait)
        log.debug("job.looked", job_id=job_id, looks=job.polls + looks, next_look=round(wait, 3))
        return Outcome.WAITING

    def _look_again(self, ctx: StepContext, token: int, wait: float) -> None:
        """The lease past the next look (the sweeper re-drives the job if that look is
        lost with its worker), then the look itself."""
        self.store.extend_lease(ctx.job.id, self.frame.lease_after(wait))
        self.scheduler.schedule(Step.LOOK, ctx.job.id, token, wait)
