"""What a run's state means for the job, after any call that returned one.

The run still going: the job waits (a poll after a countdown, or a stream step that
follows the run). The model asks for tools: a tool round. Completed: success. Anything
else ended the run badly: the retry policy decides (`Endings.on_error`).
"""

from __future__ import annotations

import time
from typing import Any

import structlog

from runq.runs import approvals as approval_calls
from runq.runs import looks, tiers
from runq.runs.backends.base import WAITING, RunState
from runq.runs.classify import classify_run_failure
from runq.runs.context import StepContext
from runq.runs.endings import Endings
from runq.runs.error_codes import ErrorCode
from runq.runs.frame import StepFrame
from runq.runs.job import Job, JobStatus, Step
from runq.runs.outcomes import Outcome
from runq.runs.retry import PER_CALL_CLASSES
from runq.runs.run_status import RunStatus
from runq.runs.scheduler import Scheduler
from runq.runs.step_config import StepConfig
from runq.runs.webhooks import WebhookIndex

log = structlog.get_logger("runq.steps")

# A run in one of these is healthy: a job that was retrying or falling back runs again.
_HEALTHY = WAITING | {RunStatus.REQUIRES_TOOLS, RunStatus.COMPLETED}


class RunProgress:
    """Moves the job on from the run state a call returned."""

    def __init__(
        self,
        frame: StepFrame,
        endings: Endings,
        scheduler: Scheduler,
        config: StepConfig,
        tier_policy: tiers.TierPolicy | None = None,
    ) -> None:
        self.tier_policy = tier_policy or tiers.TierPolicy()  # prices the usage by tier
        self.frame = frame
        self.endings = endings
        self.scheduler = scheduler
        self.config = config
        self.webhooks = WebhookIndex(frame.store.redis)
        self.approvals = approval_calls.for_worker(frame.store.redis)  # calls a person decides

    def after_state(self, ctx: StepContext, state: RunState, events: list[dict[str, Any]]) -> str:
        """Take in what the call reported (usage, transcript), then act on the run's status."""
        job = ctx.job
        # The backend answered: a 429 or 5xx streak is over. Counted per job instead, the
        # blips of a long run (one poll in twenty timing out) would add up to a failure
        # though every call was retried well within its policy.
        for streak in PER_CALL_CLASSES:
            job.retries.pop(streak, None)
        add_usage(job, state.usage)
        tiers.price_job(job, state.usage, self.tier_policy)
        if state.transcript is not None:
            job.transcript = state.transcript
        if job.status in (JobStatus.RETRYING, JobStatus.FALLING_BACK) and state.status in _HEALTHY:
            job.move(JobStatus.RUNNING)
            events.append(
                {"type": "job.status", "status": JobStatus.RUNNING, "attempt": job.attempt}
            )
        if state.waiting:
            return self._wait(ctx, state, events)
        if state.status == RunStatus.REQUIRES_TOOLS:
            return self._tool_round(ctx, state, events)
        if state.status == RunStatus.COMPLETED:
            return self.endings.succeed(ctx, state, events)
        err = classify_run_failure(state.status, state.error_code)
        if state.error_message:
            err.args = (f"{err.args[0]}: {state.error_message}",)
        return self.endings.on_error(ctx, err, Step.START, events=events, run_ended=True)

    def _wait(self, ctx: StepContext, state: RunState, events: list[dict[str, Any]]) -> str:
        """The run goes on: follow its stream if the backend can resume one, else poll."""
        if ctx.streams and ctx.backend.streaming().follows_runs is not None:
            self.frame.advance(ctx, Step.STREAM, 0, events)
            return Outcome.STREAMING
        if self.waits_for_webhook(ctx):
            return self._wait_for_webhook(ctx, events)
        self.frame.advance(ctx, Step.POLL, self._poll_interval(ctx.job, state), events)
        return Outcome.WAITING

    def waits_for_webhook(self, ctx: StepContext) -> bool:
        """Does this run end with a webhook? (`runs.looks.waits_for_webhook`)"""
        return looks.waits_for_webhook(ctx.job, self.config)

    def count_poll(self, ctx: StepContext, state: RunState) -> None:
        """Count a look at the run. Waiting for a webhook, a look that finds the run ended
        is the fetch the delivery asked for, not a poll: `polls` counts only the looks at
        a run still going (the safety poll's, or one woken too early)."""
        if state.waiting or not self.waits_for_webhook(ctx):
            ctx.job.polls += 1

    def _wait_for_webhook(self, ctx: StepContext, events: list[dict[str, Any]]) -> str:
        """Commit the wait with only the safety poll due, then record `response -> job`
        so the delivery finds the job. A delivery that came before the record (see
        runs.webhooks) makes the poll due now.

        A safety look that finds the run still going (a `poll` step) writes no record:
        the step that created the response wrote it, for the job's whole deadline, and
        a delivery that came before it was seen then. Two Redis commands a look fewer.
        (A response created while the workers did not wait for webhooks has no record:
        its deliveries are not matched, and the safety poll finishes its job.)"""
        job = ctx.job
        safety = self.safety_interval(ctx)
        token = self.frame.settle(ctx, Step.POLL, events, wait=safety)
        if token is None:
            return Outcome.CONFLICT
        response_id = job.handle.get("response_id")
        indexed = ctx.step == Step.POLL
        if (
            response_id
            and not indexed
            and self.webhooks.expect(response_id, job.id, token, ctx.remaining() + 600)
        ):
            safety = 0.0
        # Due now (an early delivery, or no time left): the poll itself. Later: a safety
        # look, which costs no lock and no commit while the run goes on (`runs.look_step`).
        self.scheduler.schedule(Step.LOOK if safety > 0 else Step.POLL, job.id, token, safety)
        log.debug("job.waiting_webhook", job_id=job.id, response_id=response_id,
                  safety_poll=round(safety, 3))  # fmt: skip
        return Outcome.WAITING

    def safety_interval(self, ctx: StepContext, looks: int = 0) -> float:
        """RUNQ_SAFETY_POLL_INTERVAL, grown RUNQ_SAFETY_POLL_GROWTH times for each look
        that found the run still going (`job.polls` counts only those in webhook mode,
        plus the `looks` not yet added to it: `runs.looks`), up to RUNQ_SAFETY_POLL_MAX,
        and never past the job's deadline. A long run then costs a handful of looks, not
        one a minute, and a lost webhook still delays its job by at most the cap."""
        cfg = self.config
        grown = cfg.safety_poll_interval * cfg.safety_poll_growth ** min(ctx.job.polls + looks, 30)
        return max(0.0, min(max(cfg.safety_poll_interval, min(grown, cfg.safety_poll_max)),
                            ctx.remaining()))  # fmt: skip

    def _poll_interval(self, job: Job, state: RunState) -> float:
        """The server's `openai-poll-after-ms` if given, else min·1.5^polls up to max."""
        cfg = self.config
        if state.poll_after is not None:
            return max(0.01, min(state.poll_after, cfg.poll_interval_max))
        return min(cfg.poll_interval_max, cfg.poll_interval_min * (1.5**job.polls))

    def _tool_round(self, ctx: StepContext, state: RunState, events: list[dict[str, Any]]) -> str:
        """Record the round's calls, then send one task per call (`Scheduler.dispatch_tools`).

        The lease covers two lock times: the calls run, then the submit is sent.
        """
        job = ctx.job
        if job.round - job.round_base >= job.spec.max_tool_rounds:
            return self.endings.fail(
                ctx,
                ErrorCode.MAX_TOOL_ROUNDS_EXCEEDED,
                f"the model asked for more than {job.spec.max_tool_rounds} tool rounds",
                cancel_run=False,
                events=events,
            )
        job.round += 1
        job.pending_calls = [
            {"call_id": c.call_id, "name": c.name, "arguments": c.arguments}
            for c in state.tool_calls
        ]
        asked = self.approvals.ask(job, job.timings["queued_at"] + job.spec.deadline)
        status = JobStatus.WAITING_APPROVAL if asked else JobStatus.WAITING_TOOLS
        job.move(status)
        events.append({"type": "job.status", "status": status, "round": job.round})
        events.extend({"type": "tool.call", "round": job.round, **c} for c in job.pending_calls)
        events.extend(self.approvals.requested_event(a) for a in asked)
        # Waiting for a person, the lease and the submit step (which denies what is still
        # undecided) are due at the approvals' deadline; no worker waits meanwhile.
        wait = max([a.deadline - time.time() for a in asked], default=self.config.lock_seconds)
        token = self.frame.settle(ctx, Step.SUBMIT_TOOL_OUTPUTS, events, wait=wait)
        if token is None:
            return Outcome.CONFLICT
        if asked:
            self.scheduler.schedule(Step.SUBMIT_TOOL_OUTPUTS, job.id, token, max(0.0, wait))
        self.scheduler.dispatch_tools(job, token)
        log.info(
            "job.tools_dispatched", job_id=job.id, round=job.round, calls=len(state.tool_calls)
        )
        return Outcome.TOOLS


def add_usage(job: Job, usage: dict[str, int]) -> None:
    for key, value in usage.items():
        job.usage[key] = job.usage.get(key, 0) + int(value)
