"""The steps that make one backend call: start, poll, submit_tool_outputs.

Each passes the gates first (the job's turn, the link's breaker and bucket), makes at
most one call, and hands the run state it got to `RunProgress`, or the error to
`Endings`. Stream-mode calls go through the `StreamDriver`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import structlog

from runq.errors import BackendError
from runq.runs import mcp_approvals, tiers
from runq.runs.backends.base import RunState
from runq.runs.batcher.waiting import BatchWait
from runq.runs.context import StepContext
from runq.runs.endings import Endings
from runq.runs.error_codes import ErrorCode, ToolErrorCode
from runq.runs.frame import StepFrame
from runq.runs.gates import BreakerPass, Gates
from runq.runs.job import JobStatus, Step
from runq.runs.outcomes import Outcome
from runq.runs.redaction import said
from runq.runs.run_progress import RunProgress
from runq.runs.step_config import StepConfig
from runq.runs.streaming import StreamDriver
from runq.runs.toolcalls import StoredOutput

log = structlog.get_logger("runq.steps")

# What the model is told for a call whose output never arrived (its task was lost).
_MISSING = StoredOutput('{"error": {"code": "missing_output"}}', ToolErrorCode.MISSING_OUTPUT)


class BackendCalls:
    """start, poll and submit_tool_outputs, over whichever backend the job's link uses."""

    def __init__(
        self,
        frame: StepFrame,
        gates: Gates,
        endings: Endings,
        progress: RunProgress,
        streaming: StreamDriver,
        tool_outputs: Callable[[str, int], dict[str, StoredOutput]],
        config: StepConfig,
        *,
        tier_policy: tiers.TierPolicy | None = None,
        batching: BatchWait | None = None,
    ) -> None:
        self.tier_policy = tier_policy or tiers.TierPolicy()
        self.batching = batching  # batch-tier jobs join a batch instead of creating a run
        self.frame = frame
        self.gates = gates
        self.endings = endings
        self.progress = progress
        self.streaming = streaming
        self.tool_outputs = tool_outputs
        self.config = config

    # -- start -------------------------------------------------------------------------
    def start(self, ctx: StepContext) -> str:
        """Create the job's run, or answer from an instant link, or wait at a gate."""
        waiting = self.gates.turn_blocker(ctx)
        if waiting is not None:
            # Another job on this conversation goes first; this one keeps its place, and
            # looks again late when the end of the job before it will start it, else soon.
            cfg = self.config
            after = waiting.after
            wait = cfg.turn_wait_handed_over if after else cfg.turn_wait
            self.frame.come_back(ctx, Step.START, wait)
            if after:
                self.gates.ask_hand_over(ctx.job, after)
            log.info("job.waiting_turn", job_id=ctx.job.id, behind=waiting.holder,
                     started_by=after)  # fmt: skip
            return Outcome.WAITING_TURN
        if ctx.link.instant:
            return self.endings.answer_instantly(ctx)
        unusable = self.gates.link_unusable(ctx)
        if unusable is not None:
            log.warning("job.link_unusable", job_id=ctx.job.id, link=ctx.link.name,
                        reason=str(unusable))  # fmt: skip
            return self.endings.fall_back(ctx, unusable, [], run_ended=True)
        if ctx.remaining() < self.config.deadline_margin:
            err = BackendError("too little time left for this link", code=ErrorCode.DEADLINE_NEAR)
            return self.endings.fall_back(ctx, err, [], run_ended=True)
        tier = tiers.resolve(ctx.job, ctx.link, self.tier_policy, ctx.remaining())
        if tier == tiers.BATCH and self.batching is not None:
            if self.endings.history is not None:
                self.endings.history.prepare(ctx)
            return self.batching.enroll(ctx)
        gate = self.gates.ask_breaker(ctx.link)
        if gate.refused:
            return self._breaker_refused(ctx, gate)
        if not self.gates.take_capacity(ctx, Step.START):
            gate.unused()
            return Outcome.RATE_LIMITED
        if self.endings.history is not None:
            self.endings.history.prepare(ctx)  # native handle, or the history replayed
        return self._create_run(ctx, gate)

    def _breaker_refused(self, ctx: StepContext, gate: BreakerPass) -> str:
        """Skip to the next link; with none, come back when the breaker can next let a
        call through (the job waits instead of failing)."""
        link = ctx.link
        if ctx.has_next_link:
            err = BackendError(
                f"circuit breaker of {link.name} is open", code=ErrorCode.CIRCUIT_OPEN
            )
            return self.endings.fall_back(ctx, err, [], run_ended=True)
        wait = min(gate.wait(), max(0.0, ctx.remaining()))
        self.frame.come_back(ctx, Step.START, wait)
        log.info("job.breaker_wait", job_id=ctx.job.id, link=link.name, wait=round(wait, 3))
        return Outcome.BREAKER_WAIT

    def _create_run(self, ctx: StepContext, gate: BreakerPass) -> str:
        """The call itself; the run's handle is in the record before any poll is sent."""
        job = ctx.job
        events: list[dict[str, Any]] = []
        if job.status != JobStatus.RUNNING:
            job.move(JobStatus.RUNNING)
            events.append(
                {"type": "job.status", "status": JobStatus.RUNNING, "attempt": job.attempt}
            )
        job.mark("started_at")
        requests = ctx.backend.streaming().streams_requests
        if ctx.streams and requests is not None:
            return self.streaming.start(ctx, requests, events)
        try:
            state = self.streaming.turn(ctx, lambda backend: backend.start(job))
        except BackendError as err:
            if self._flex_refused(ctx, err):
                gate.unused()
                return self._off_flex(ctx, err, Step.START, events)
            return self.endings.on_error(ctx, err, Step.START)
        job.handle.update(state.handle)
        self.gates.calibrate(ctx.link, state.headers)
        gate.answered()
        job.mark("run_created_at")
        events.append({"type": "run.created", **state.handle, "attempt": job.attempt})
        log.info("job.run_created", job_id=job.id, attempt=job.attempt, **state.handle)
        return self.progress.after_state(ctx, state, events)

    # -- flex without capacity --------------------------------------------------------
    def _flex_refused(self, ctx: StepContext, err: BackendError) -> bool:
        """A flex request answered 429 `resource_unavailable`: recorded in `attempts`.
        With `RUNQ_FLEX_ON_UNAVAILABLE=retry` the retry policy then retries it on flex
        (as any 429, after its `retry-after`); with `standard` the job moves on."""
        job = ctx.job
        if tiers.current(job) != tiers.FLEX or not tiers.flex_refused(err):
            return False
        policy = self.tier_policy.flex_on_unavailable
        job.attempts.append(
            {"link": ctx.link.name, "code": tiers.FLEX_REFUSED, "error": said(err),
             "attempt": job.attempt, "tier": tiers.FLEX,
             "then": tiers.FLEX if policy == "retry" else tiers.STANDARD}
        )  # fmt: skip
        return policy == "standard"

    def _off_flex(
        self, ctx: StepContext, err: BackendError, step: Step, events: list[dict[str, Any]]
    ) -> str:
        """Move the job to standard for good and make the same request again now."""
        job = ctx.job
        tiers.pin(job, tiers.STANDARD, "flex had no capacity (429 resource_unavailable)")
        events.append({"type": "job.tier", **(job.tier or {})})
        log.info("job.tier_moved", job_id=job.id, to=tiers.STANDARD, code=tiers.FLEX_REFUSED)
        self.frame.advance(ctx, step, 0, events)
        return Outcome.RETRYING

    # -- poll --------------------------------------------------------------------------
    def poll(self, ctx: StepContext, seen: RunState | None = None) -> str:
        """Look at the run once; `RunProgress` schedules the next look while it waits.

        `seen`: the run's state as a safety look just fetched it (`runs.look_step`),
        taken on as this poll's own, without a second request."""
        if seen is not None:
            state = seen
        elif not self.gates.take_capacity(ctx, Step.POLL, tokens=0):
            return Outcome.RATE_LIMITED
        else:
            try:
                state = ctx.backend.retrieve(ctx.job)
            except BackendError as err:
                return self.endings.on_error(ctx, err, Step.POLL)
        self.progress.count_poll(ctx, state)
        return self.progress.after_state(ctx, state, [])

    # -- submit_tool_outputs -----------------------------------------------------------
    def submit_tool_outputs(self, ctx: StepContext) -> str:
        """Hand a finished round's outputs back to the model (a missing one as an error)."""
        job = ctx.job
        if job.status == JobStatus.WAITING_APPROVAL and self._awaits_decision(ctx):
            return Outcome.WAITING
        outputs = self.tool_outputs(job.id, job.round)
        stored = {c["call_id"]: outputs.get(c["call_id"], _MISSING) for c in job.pending_calls}
        done = [
            {
                **call,
                "output": stored[call["call_id"]].output,
                "error": stored[call["call_id"]].error,
                "round": job.round,
            }
            for call in job.pending_calls
            if not mcp_approvals.is_mcp(call["name"])  # a hosted call: listed as one
        ]
        failed = [c for c in done if c["error"]]
        if failed and self.config.tool_errors_fail_job:
            job.tool_calls.extend(done)
            first = failed[0]
            return self.endings.fail(
                ctx,
                ErrorCode.TOOL_ERROR,
                f"tool {first['name']!r} failed ({first['error']}): {first['output']}",
                cancel_run=True,
            )
        if not self.gates.take_capacity(ctx, Step.SUBMIT_TOOL_OUTPUTS):
            return Outcome.RATE_LIMITED
        pairs = [(call_id, out.output) for call_id, out in stored.items()]
        return self._submit(ctx, pairs, done)

    def _awaits_decision(self, ctx: StepContext) -> bool:
        """A round with calls for a person (`runs.approvals`): deny those past their
        deadline; True (the job given back) while a call still waits for its decision
        or its tool, False once every output is in and the round goes to the model."""
        job, approvals = ctx.job, self.progress.approvals
        approvals.expire(job.id, len(job.pending_calls))
        waiting = approvals.pending(job.id)
        if waiting:  # the step is due again at the earliest deadline
            due = min(a.deadline for a in waiting) - time.time()
            self.frame.come_back(ctx, Step.SUBMIT_TOOL_OUTPUTS, max(0.0, due))
            return True
        if len(self.tool_outputs(job.id, job.round)) < len(job.pending_calls):
            self.frame.release(ctx)  # an approved tool still runs: its task sends the submit
            return True
        return False

    def _submit(
        self, ctx: StepContext, pairs: list[tuple[str, str]], done: list[dict[str, Any]]
    ) -> str:
        job = ctx.job
        requests = ctx.backend.streaming().streams_requests
        if ctx.streams and requests is not None:
            return self.streaming.submit(ctx, requests, pairs, done)
        try:
            state = self.streaming.turn(
                ctx, lambda backend: backend.submit_tool_outputs(job, pairs)
            )
        except BackendError as err:
            if self._flex_refused(ctx, err):
                return self._off_flex(ctx, err, Step.SUBMIT_TOOL_OUTPUTS, [])
            return self.endings.on_error(ctx, err, Step.SUBMIT_TOOL_OUTPUTS)
        job.tool_calls.extend(done)  # only once the round was handed over
        job.pending_calls = []
        job.handle.update(state.handle)
        job.move(JobStatus.RUNNING)
        events = [{"type": "job.status", "status": JobStatus.RUNNING, "round": job.round}]
        return self.progress.after_state(ctx, state, events)
