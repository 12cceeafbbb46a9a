"""The frame every step shares: claim the job, act, then end with one commit.

1. `claim` takes the job's short lock (one Lua call) and reads its record and cancel
   flag; a job another task holds comes back when that lock ends.
2. The step acts (at most one backend call).
3. It ends in one of these ways, each one commit (or none) and at most one message:
   `advance` (the next step is due after a countdown), `come_back` (nothing changed:
   the same step again after a wait), `hand_over_to_poll` (a stream goes on while the
   record already says `poll`), `settle` (the caller sends what comes next itself), or
   `release` (nothing to do).

Every commit moves the job's lease, so the sweeper re-drives the job only if nothing
comes of it: `lease = now + wait + grace + lock`, where `wait` is how long the job
waits on purpose before its next step.

A step's commit is refused while the job's cancel flag is up (`CancelRequested`, see
`runs.cancellation`); only the commit that ends the job cancelled, and the publication
of an ended job, write regardless.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import structlog

from runq.errors import JobNotFoundError
from runq.runs.backends.base import Backend
from runq.runs.chains import Chain, Link
from runq.runs.context import StepContext
from runq.runs.job import Job, JobStatus, Step
from runq.runs.looks import LookCounts, waits_for_webhook
from runq.runs.outcomes import Outcome
from runq.runs.scheduler import Scheduler
from runq.runs.step_config import StepConfig
from runq.runs.store import JobStore

log = structlog.get_logger("runq.steps")

CANCEL_RECHECK = 0.5
"""A cancel task that finds its job busy comes back this soon, not when the holder's
lock ends (up to a request's time): the holder honours the flag at its commit, or lets
the job go without one (a gate's wait), and the cancel must not wait behind that."""


class StepFrame:
    """Claims jobs for steps and commits what the steps decide."""

    def __init__(
        self,
        store: JobStore,
        scheduler: Scheduler,
        config: StepConfig,
        *,
        backend_for: Callable[[Job, Link], Backend],
        chain_of: Callable[[Job], Chain],
        looks: LookCounts | None = None,
    ) -> None:
        self.store = store
        self.looks = looks  # safety looks not yet in their records (`runs.looks`)
        self.scheduler = scheduler
        self.config = config
        self.backend_for = backend_for
        self.chain_of = chain_of
        # Jobs whose ending commit kept their lock for the publication that follows in
        # the same task (`settle`, `take_ended`), by job id.
        self._ended: dict[str, StepContext] = {}

    def claim(self, step: Step, job_id: str, token: int) -> StepContext | Outcome:
        """Lock the job for `step`, or say why not: `not_found`, or `busy` — then the step
        comes back when the holder's lock ends (a cancel's holder also sees the flag).

        A stream holds a short lock that it renews as events arrive, so a stream whose
        worker died is picked up within seconds; every other step holds one request's
        time plus a margin.
        """
        try:
            claim = self.store.claim(job_id, self.lock_time(step))
        except JobNotFoundError:
            log.warning("job.not_found", job_id=job_id, step=step)
            return Outcome.NOT_FOUND
        if claim.job is None:
            wait = claim.busy_for
            if step == Step.CANCEL:
                wait = min(wait, CANCEL_RECHECK)
            self.scheduler.schedule(step, job_id, token, countdown=wait + 0.05)
            return Outcome.BUSY
        _bind_log_context(claim.job)
        return StepContext(
            claim.job,
            claim.owner,
            step,
            cancel_requested=claim.cancel_requested,
            backend_for=self.backend_for,
            chain_of=self.chain_of,
        )

    def lock_time(self, step: Step) -> float:
        """How long `step` holds its job before others may act (renewed while it streams)."""
        cfg = self.config
        return cfg.stream_lock_seconds if step == Step.STREAM else cfg.lock_seconds

    def lease_after(self, wait: float) -> float:
        """When the lease of a job that waits `wait` seconds on purpose runs out:
        `now + wait + grace + lock` (see the module docstring)."""
        return time.time() + wait + self.config.lease_grace + self.config.lock_seconds

    def release(self, ctx: StepContext) -> None:
        """Give the job back without writing: the step found nothing to do."""
        self.store.release(ctx.job.id, ctx.owner)

    def settle(
        self, ctx: StepContext, step: Step, events: list[dict[str, Any]], *, wait: float = 0.0
    ) -> int | None:
        """Commit the job with `step` due and release it; the caller sends what comes next.

        Returns the step's token, or None when the record changed meanwhile (then
        nothing was written, and the step that changed it goes on). Raises
        `CancelRequested` when the job's cancel flag refused the write.

        A commit that ends a job (`finish` due) without its result (no result entry to
        write with it: `Publication.result_entry`) keeps the job's lock: the publication
        that follows in the same task (`Publication.after_end`) takes the claimed job
        with `take_ended` instead of claiming it again, and its commit gives the lock
        back. (A publication that fails releases the lock before handing over to the
        `finish` task.) One that wrote the result gives the lock back as any commit.
        """
        token = ctx.job.due(step)
        ending = step == Step.FINISH
        keep = ending and not ctx.job.published
        looked = self._looks_to_add(ctx.job) if ending else 0
        lease = self.lease_after(wait)
        written = self.store.commit(
            ctx.job, events, owner="" if keep else ctx.owner, lease_until=lease,
            unless_cancelled=_honours_cancel(ctx.job),
        )  # fmt: skip
        if not written:
            ctx.job.polls -= looked
            log.warning("job.commit_conflict", job_id=ctx.job.id, step=step)
            return None
        if looked and self.looks is not None:
            self.looks.clear(ctx.job.id)
        if keep:
            self._ended[ctx.job.id] = ctx
        return token

    def _looks_to_add(self, job: Job) -> int:
        """The ending commit adds the job's safety looks to its `polls` (`runs.looks`):
        one `HGET` for a job that waited for webhooks, none for any other."""
        if self.looks is None or not waits_for_webhook(job, self.config):
            return 0
        looked = self.looks.pending(job.id)
        job.polls += looked
        return looked

    def take_ended(self, job_id: str) -> StepContext | None:
        """The job this process just ended (`settle`), still locked by it, or None."""
        return self._ended.pop(job_id, None)

    def advance(
        self, ctx: StepContext, step: Step, countdown: float, events: list[dict[str, Any]]
    ) -> bool:
        """Commit the job with `step` due after `countdown`, then schedule that step.

        A countdown never reaches past the deadline: the step then runs in time to fail
        the job with `deadline_exceeded`.
        """
        countdown = max(0.0, min(countdown, ctx.remaining()))
        token = self.settle(ctx, step, events, wait=countdown)
        if token is None:
            return False
        self.scheduler.schedule(step, ctx.job.id, token, countdown)
        return True

    def come_back(self, ctx: StepContext, step: Step, wait: float) -> None:
        """Give the job back untouched and run `step` again after `wait` seconds.

        The lease moves past the wait, so the sweeper does not mistake a job that waits
        on purpose (its turn, a breaker, the rate limiter) for one whose worker died.
        """
        job = ctx.job
        lease = self.lease_after(wait)
        self.store.extend_lease(job.id, lease)
        self.store.release(job.id, ctx.owner)
        self.scheduler.schedule(step, job.id, job.token, wait)

    def hand_over_to_poll(self, ctx: StepContext, events: list[dict[str, Any]]) -> bool:
        """Commit with `poll` due and a lease, keeping the lock: the stream goes on, and
        if this worker dies the sweeper polls the run instead."""
        ctx.job.due(Step.POLL)
        lease = self.lease_after(0.0)
        return self.store.commit(
            ctx.job, events, owner="", lease_until=lease, unless_cancelled=True
        )

    def keep_holding(self, ctx: StepContext) -> bool:
        """Renew the job's lock during a long step (a stream) for the step's lock time, so
        a stream's lock still lapses within seconds of its worker dying; False if lost."""
        return self.store.extend_lock(ctx.job.id, ctx.owner, self.lock_time(ctx.step))


def _honours_cancel(job: Job) -> bool:
    """Every commit of a step is refused while the cancel flag is up, except the one
    that ends the job cancelled (it *is* the cancel)."""
    return job.status != JobStatus.CANCELLED


def _bind_log_context(job: Job) -> None:
    """Every log line of this step (and, through the message header, of the steps it
    schedules) says which attempt and run it is about; the link is bound when the step
    looks it up in the worker's configuration (`StepContext.use_link`)."""
    run_id = job.handle.get("response_id") or job.handle.get("run_id")
    structlog.contextvars.bind_contextvars(
        job_id=job.id, attempt=job.attempt, link=None, run_id=run_id
    )
