"""The finish: publishing an ended job to the outside world.

Ending a job is one commit (the record and its `job.final` event), so a waiting
producer has its answer as soon as the run has ended. The same commit writes the result
under the job id in the result backend (so `AsyncResult(job_id).get()` works for any
producer) and says `published` in the record (`result_entry`, `EndingWrites.result`):
the result is out the instant the job has ended, and a cancel that refuses the end
refuses it too. What is left comes after, in the same task: the job's place in flight
and its budget reservation are given back (`after_publish`), its lease is dropped, and
its metrics are counted, once, by whoever dropped the lease (`settle`).

Until its lease is dropped the ended job is the sweeper's: a worker that dies in
between leaves a lease that runs out, and the `runq.jobs.finish` task the sweeper sends
does what is left. A result that cannot go with the end (a result backend that is not
the job store's Redis) is published after it, as a second commit, by the same task or
that `finish` task.
"""

from __future__ import annotations

from collections.abc import Callable

import structlog

from runq.runs.context import StepContext
from runq.runs.frame import StepFrame
from runq.runs.job import Job, Step
from runq.runs.metrics import Metrics
from runq.runs.outcomes import Outcome
from runq.runs.scheduler import Scheduler
from runq.runs.store import JobStore
from runq.runs.tiers import TIERS

log = structlog.get_logger("runq.steps")


class Publication:
    """Publishes ended jobs: once each, whoever asks first."""

    def __init__(
        self, frame: StepFrame, store: JobStore, scheduler: Scheduler, metrics: Metrics | None
    ) -> None:
        self.frame = frame
        self.store = store
        self.scheduler = scheduler
        self.metrics = metrics
        # What leaves with an ended job besides its result (`runs.fairness`: its place
        # in flight and its budget reservation); idempotent, as a finish may run twice.
        self.after_publish: Callable[[Job], None] | None = None

    def result_entry(self, job: Job) -> tuple[str, str, int] | None:
        """The result backend's entry for the job's end to write (`EndingWrites.result`),
        or None: then the result is published after the end, as before that existed."""
        try:
            return self.scheduler.result_entry(job)
        except Exception as err:  # the end goes on; the result follows it
            log.warning("job.result_entry_failed", job_id=job.id, error=repr(err))
            return None

    def after_end(self, job: Job, token: int) -> None:
        """Finish publishing a job that was just ended, in the same task; or hand that to
        a task.

        The job keeps a lease until its publication is done, so a finish that raises
        here is sent as `runq.jobs.finish`, and one lost with its worker is re-driven by
        the sweeper. An ending commit that did not write the result kept the job's lock
        (`StepFrame.settle`): the publication goes on with the job as claimed.
        """
        ended = self.frame.take_ended(job.id)
        try:
            if ended is not None:
                self._publish(ended, token)
            elif job.published:
                self.settle(job)
            else:
                self.finish(job.id, token)
        except Exception as err:  # the end is committed; publication gets its own task
            log.warning("job.publish_deferred", job_id=job.id, error=repr(err))
            self.scheduler.schedule(Step.FINISH, job.id, token, 0)

    def settle(self, job: Job) -> str:
        """What is left once the result is out: give back the job's place in flight and
        its reservation (idempotent), drop its lease, and count its metrics if this call
        dropped it, so a finish run twice counts the job once."""
        if self.after_publish is not None:
            self.after_publish(job)
        if not self.store.drop_lease(job.id):
            return Outcome.STALE
        if self.metrics is not None:
            self._record_metrics(self.metrics, job)
        return Outcome.PUBLISHED

    def finish(self, job_id: str, token: int) -> str:
        """Publish an ended job: its result under the job id in the result backend, metrics.

        The step that ends a job calls this at once, in its own task; the `runq.jobs.finish`
        task runs it when that failed, and the sweeper when a worker died in between.
        Idempotent: a duplicate finds the job published and its lease gone (or its token
        stale) and does nothing; a finish that crashed before its commit is run again by
        the sweeper, and writing the same result again is harmless. A job whose result
        went out with its end (`published` in the record) is settled (`settle`).
        """
        claimed = self.frame.claim(Step.FINISH, job_id, token)
        if isinstance(claimed, Outcome):
            return claimed
        job = claimed.job
        if job.published and job.terminal and job.step == Step.FINISH and job.token == token:
            self.frame.release(claimed)  # its result went out with its end
            return self.settle(job)
        return self._publish(claimed, token)

    def _publish(self, ctx: StepContext, token: int) -> str:
        job = ctx.job
        if not job.terminal or job.published or job.step != Step.FINISH or job.token != token:
            self.frame.release(ctx)
            return Outcome.STALE
        try:
            self.scheduler.publish_result(job)
            if self.after_publish is not None:  # before the commit: a crash repeats it
                self.after_publish(job)
        except BaseException:
            self.frame.release(ctx)
            raise
        job.published = True
        if not self.store.commit(job, owner=ctx.owner):
            log.warning("job.commit_conflict", job_id=job.id, step=Step.FINISH)
            return Outcome.CONFLICT
        # After the commit: a crash in between loses one job's figures, never counts twice.
        if self.metrics is not None:
            self._record_metrics(self.metrics, job)
        return Outcome.PUBLISHED

    @staticmethod
    def _record_metrics(metrics: Metrics, job: Job) -> None:
        t = job.timings
        ran = "run_completed_at" in t and "run_created_at" in t
        metrics.job_finished(
            status=job.status,
            source=job.source,
            model=job.spec.model,
            latency_s=t["finished_at"] - t["queued_at"],
            input_tokens=job.usage.get("input_tokens", 0),
            output_tokens=job.usage.get("output_tokens", 0),
            run_wait_s=t["run_completed_at"] - t["run_created_at"] if ran else None,
            tier_costs=_tier_costs(job),
        )


def _tier_costs(job: Job) -> dict[str, float]:
    """The job's cost in USD by tier (`runs.tiers`; nothing for a model not priced)."""
    by_tier = (job.cost or {}).get("by_tier") or {}
    return {
        tier: row["usd"]
        for tier, row in by_tier.items()
        if tier in TIERS and row.get("usd") is not None  # bounded label values only
    }
