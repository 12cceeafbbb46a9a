"""A batch-tier job's side of the batcher: joining a batch, and waiting for its line.

**Enroll** (in the job's `start` step, instead of creating a run): the job's request
becomes a line, queued in Redis for its group (`BatchQueue.enroll`, idempotent), then
the record commits with the `batch` step due at the job's deadline — or, for a job
whose tier `auto` chose, when the deadline comes near enough that standard is needed
(`TierPolicy.needs`). The line is queued before the commit: a worker that dies in
between leaves a queued line and a job whose `start` is re-driven by the sweeper, which
queues the same line again (a no-op). No run is created and no rate-limit token taken.

**The `batch` step** runs when the batcher has stored the line's outcome (it sends the
step with the job's token), at the deadline, or when the sweeper re-drives it. It looks
at the outcome (`BatchQueue.outcome`):

* answered 200: the answer is the job's run state, handed to `RunProgress` as a live
  call's would be — a completed answer succeeds, a tool round runs as live runs
  (standard tier) from there;
* a failed line, or a batch that failed, expired or was cancelled: the job goes on
  along its chain (`Endings.fall_back`), the normal failure path;
* no outcome yet: an `auto` job near its deadline moves to standard (its line's later
  result is then ignored: its step is no longer `batch`); any other job waits again.

A step acts only with the record's token, so a result is applied at most once however
many times the step is sent; a cancelled job's line stays in its batch (a batch is never
cancelled for one job) and its outcome is ignored.
"""

from __future__ import annotations

from typing import Any

import structlog

from runq.runs import tiers
from runq.runs.batcher import lines
from runq.runs.batcher.queue import BatchQueue, Group, custom_id
from runq.runs.context import StepContext
from runq.runs.endings import Endings
from runq.runs.frame import StepFrame
from runq.runs.job import JobStatus, Step
from runq.runs.outcomes import Outcome
from runq.runs.run_progress import RunProgress, add_usage
from runq.runs.run_status import RunStatus

log = structlog.get_logger("runq.batcher")


class BatchWait:
    """Enrolls batch-tier jobs and runs their `batch` step."""

    def __init__(
        self,
        frame: StepFrame,
        endings: Endings,
        progress: RunProgress,
        queue: BatchQueue,
        policy: tiers.TierPolicy,
    ) -> None:
        self.frame = frame
        self.endings = endings
        self.progress = progress
        self.queue = queue
        self.policy = policy

    def group_of(self, ctx: StepContext) -> Group:
        link, spec = ctx.link, ctx.job.spec
        endpoint = tiers.BATCH_ENDPOINTS[spec.backend]
        return Group.of(link.endpoint, ctx.chain.name, ctx.job.link_index, spec.backend,
                        spec.model, endpoint)  # fmt: skip

    def enroll(self, ctx: StepContext) -> str:
        """Queue the job's request as a batch line; the `batch` step waits for it."""
        job = ctx.job
        group = self.group_of(ctx)
        line_id = custom_id(job.id, job.attempt, job.link_index)
        body = lines.request_body(ctx.backend, job)
        self.queue.enroll(group, line_id, lines.line(line_id, group.endpoint, body))
        events: list[dict[str, Any]] = []
        if job.status != JobStatus.RUNNING:
            job.move(JobStatus.RUNNING)
            events.append(
                {"type": "job.status", "status": JobStatus.RUNNING, "attempt": job.attempt}
            )
        job.mark("started_at")
        job.mark("run_created_at")
        job.handle = {"batch_line": line_id}
        events.append({"type": "job.batched", "custom_id": line_id, "attempt": job.attempt})
        log.info("job.batched", job_id=job.id, custom_id=line_id, group=group.id)
        self.frame.advance(ctx, Step.BATCH, self._next_look(ctx), events)
        return Outcome.WAITING

    def _next_look(self, ctx: StepContext) -> float:
        """When to look without a result: the deadline, or for `auto` the last moment
        standard still fits."""
        remaining = ctx.remaining()
        if (ctx.job.tier or {}).get("requested") == tiers.AUTO:
            return max(0.0, remaining - self.policy.needs(tiers.STANDARD))
        return remaining

    def wait(self, ctx: StepContext) -> str:
        """The `batch` step (see the module docstring)."""
        job = ctx.job
        line_id = job.handle.get("batch_line", "")
        outcome = self.queue.outcome(line_id) if line_id else None
        if outcome is None:
            return self._no_outcome(ctx)
        events: list[dict[str, Any]] = [
            {"type": "job.batch_result", "custom_id": line_id, "kind": outcome.get("kind"),
             "batch_id": outcome.get("batch_id")}
        ]  # fmt: skip
        if outcome.get("kind") != "output":
            job.handle = {}
            return self.endings.fall_back(ctx, lines.failure(outcome), events, run_ended=True)
        state = lines.run_state(job.spec.backend, job, outcome["body"])
        job.handle = dict(state.handle)
        job.handle["batch_id"] = str(outcome.get("batch_id") or "")
        if state.status != RunStatus.COMPLETED:
            # What follows (a tool round's submit, a restarted run) is a live request at
            # standard; the line's own tokens are counted on the batch tier first.
            add_usage(job, state.usage)
            tiers.price_job(job, state.usage, self.policy)
            state.usage = {}
            tiers.pin(job, tiers.STANDARD, "the batch's answer asked for more; live from here")
        return self.progress.after_state(ctx, state, events)

    def _no_outcome(self, ctx: StepContext) -> str:
        job = ctx.job
        auto = (job.tier or {}).get("requested") == tiers.AUTO
        if auto and ctx.remaining() <= self.policy.needs(tiers.STANDARD) + 1.0:
            tiers.pin(job, tiers.STANDARD, "auto: the deadline came near while the batch ran")
            job.handle = {}
            events = [{"type": "job.tier", **(job.tier or {})}]
            log.info("job.tier_moved", job_id=job.id, to=tiers.STANDARD)
            self.frame.advance(ctx, Step.START, 0, events)
            return Outcome.RETRYING
        self.frame.come_back(ctx, Step.BATCH, max(1.0, self._next_look(ctx)))
        return Outcome.WAITING
