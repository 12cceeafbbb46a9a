"""The steps of a job — start, poll, stream, submit tool outputs, finish, cancel — with no
Celery in them. `Steps` is what the tasks call; it wires the parts that do the work.

Every step has the same shape, which is what makes redelivered and duplicated tasks
harmless:

1. claim the job (a short lock) and read its record (`StepFrame`);
2. act only if the record says this step, with this token, is due;
3. do at most one backend call (`BackendCalls`, `StreamDriver`, through the `Gates`);
4. commit the outcome (record + events + lease, atomically), then schedule the next step
   (`RunProgress` for a run state, `Endings` for what an outcome means).

A task never sleeps while a run waits: it returns, and the `Scheduler` brings the next
step back after a countdown. Errors go through the retry policy, never a nested except.
"""

from __future__ import annotations

from collections.abc import Callable

from runq.errors import ConfigurationError, InvalidJobError, ToolError
from runq.runs.backends.base import Backend, RunState
from runq.runs.batcher.queue import BatchQueue
from runq.runs.batcher.waiting import BatchWait
from runq.runs.calls import BackendCalls
from runq.runs.cancellation import CancelRequested
from runq.runs.chains import Link
from runq.runs.context import StepContext
from runq.runs.conversations.history import ConversationHistory
from runq.runs.conversations.record import ConversationStore
from runq.runs.conversations.truncation import TruncationPolicy
from runq.runs.endings import Endings
from runq.runs.error_codes import ErrorCode
from runq.runs.frame import StepFrame
from runq.runs.gates import Gates
from runq.runs.job import Job, JobStatus, Step
from runq.runs.links import LinkServices
from runq.runs.look_step import SafetyLook
from runq.runs.looks import LookCounts
from runq.runs.metrics import Metrics, load_prices
from runq.runs.outcomes import Outcome
from runq.runs.publication import Publication
from runq.runs.retry import RetryPolicies
from runq.runs.run_progress import RunProgress
from runq.runs.scheduler import Scheduler
from runq.runs.step_config import StepConfig
from runq.runs.store import JobStore
from runq.runs.streaming import StreamDriver
from runq.runs.tiers import TierPolicy
from runq.runs.toolcalls import StoredOutput

BAD_JOB = (InvalidJobError, ToolError, ConfigurationError)
"""What a step may raise about the job itself: a tool it names that no worker has, a
chain or link it cannot use, a job it continues that is gone. The job fails alone with
that reason. Anything else a step raises is a bug or an outage, not the job's fault: it
propagates (Celery logs it), the step's lock is given back, and the job's lease brings
the step back through the sweeper — or its deadline ends it."""


class Steps:
    """Drives jobs one step at a time (the façade the Celery tasks call)."""

    def __init__(
        self,
        store: JobStore,
        backend_for: Callable[[Job, Link], Backend],
        scheduler: Scheduler,
        tool_outputs: Callable[[str, int], dict[str, StoredOutput]],
        *,
        config: StepConfig | None = None,
        retry: RetryPolicies | None = None,
        metrics: Metrics | None = None,
        services: LinkServices | None = None,
        history: ConversationHistory | None = None,
        tier_policy: TierPolicy | None = None,
    ) -> None:
        config = config or StepConfig()
        if tier_policy is None:  # the default tiers, priced with the metrics' table
            tier_policy = TierPolicy(prices=metrics.prices if metrics else load_prices())
        if history is None:  # runq keeps conversations unless told otherwise
            history = ConversationHistory(
                ConversationStore(store.redis, ttl=30 * 24 * 3600, max_bytes=1024 * 1024),
                TruncationPolicy(),
            )
        services = services or LinkServices()
        self.store = store
        look_counts = LookCounts(store.redis)
        self._frame = StepFrame(
            store, scheduler, config, backend_for=backend_for, chain_of=services.chain,
            looks=look_counts,
        )  # fmt: skip
        self._publication = Publication(self._frame, store, scheduler, metrics)
        self._endings = Endings(
            self._frame,
            self._publication,
            store,
            retry=retry or RetryPolicies(),
            services=services,
            metrics=metrics,
            history=history,
        )
        gates = Gates(self._frame, store, services, metrics)
        progress = RunProgress(self._frame, self._endings, scheduler, config, tier_policy)
        batching = BatchWait(
            self._frame, self._endings, progress, BatchQueue(store.redis), tier_policy
        )
        streaming = StreamDriver(self._frame, store, gates, self._endings, progress, config)
        calls = self._calls = BackendCalls(
            self._frame, gates, self._endings, progress, streaming, tool_outputs, config,
            tier_policy=tier_policy, batching=batching,
        )  # fmt: skip
        self._look = SafetyLook(
            self._frame, progress, services, scheduler, look_counts, poll=self._poll
        )
        self._actions: dict[Step, Callable[[StepContext], str]] = {
            Step.START: calls.start,
            Step.POLL: calls.poll,
            Step.STREAM: streaming.stream,
            Step.SUBMIT_TOOL_OUTPUTS: calls.submit_tool_outputs,
            Step.BATCH: batching.wait,
        }

    def run(self, step: str, job_id: str, token: int) -> str:
        """Run `step` for the job if it is due; returns what happened (for logs and tests):
        an `Outcome`, the job's status if the step ended it, or the code it failed with."""
        if step == Step.LOOK:  # no claim unless the run has ended (`runs.look_step`)
            return self._look.look(job_id, token)
        return self._claim_and_run(Step(step), job_id, token, self._actions[Step(step)])

    def _poll(self, job_id: str, token: int, seen: RunState | None) -> str:
        """The poll step, for a safety look that did not find the run simply going on;
        with the run's state the look `seen` (an end), without fetching it again."""
        if seen is None:
            return self.run(Step.POLL, job_id, token)
        return self._claim_and_run(
            Step.POLL, job_id, token, lambda ctx: self._calls.poll(ctx, seen=seen)
        )

    def _claim_and_run(
        self, step: Step, job_id: str, token: int, action: Callable[[StepContext], str]
    ) -> str:
        claimed = self._frame.claim(step, job_id, token)
        if isinstance(claimed, Outcome):
            return claimed
        try:
            return self._run_due(claimed, token, action)
        except BaseException:
            self._frame.release(claimed)
            raise

    def _run_due(self, ctx: StepContext, token: int, action: Callable[[StepContext], str]) -> str:
        job = ctx.job
        if job.terminal or job.step != ctx.step or job.token != token:
            self._frame.release(ctx)
            return Outcome.STALE
        if ctx.cancel_requested:
            return self._endings.cancel(ctx)
        try:
            return self._act(ctx, action)
        except CancelRequested:
            # The flag went up while the step held the job: its outcome was not written
            # (or its stream was interrupted). The job ends cancelled from the status it
            # was claimed in, with what the step learnt of its run — the run it may just
            # have created is the one cancelled at the backend.
            ctx.job.status = ctx.claimed_status
            return self._endings.cancel(ctx)

    def _act(self, ctx: StepContext, action: Callable[[StepContext], str]) -> str:
        job = ctx.job
        if ctx.remaining() < 0:
            return self._endings.fail(
                ctx,
                ErrorCode.DEADLINE_EXCEEDED,
                f"the job's deadline of {job.spec.deadline:g}s passed",
                cancel_run=True,
            )
        try:
            return action(ctx)
        except BAD_JOB as err:
            code = getattr(err, "code", None) or type(err).__name__
            return self._endings.fail(ctx, str(code), str(err), cancel_run=True)

    def cancel(self, job_id: str) -> str:
        """End the job `cancelled` now (the producer already raised its cancel flag)."""
        claimed = self._frame.claim(Step.CANCEL, job_id, 0)
        if isinstance(claimed, Outcome):
            return claimed
        if claimed.job.terminal:
            self._frame.release(claimed)
            return Outcome.STALE
        return self._endings.cancel(claimed)

    def finish(self, job_id: str, token: int) -> str:
        """Publish an ended job (see `Publication.finish`)."""
        return self._publication.finish(job_id, token)

    def refuse(self, job_id: str, code: str, message: str) -> str:
        """End a job that never started, failed with `code`: admission refused it (a
        `fail` budget with no room, `runs.fairness`). A job that moved on meanwhile (a
        cancel got it first) is left alone."""
        claimed = self._frame.claim(Step.FINISH, job_id, 0)  # busy: a finish is stale
        if isinstance(claimed, Outcome):
            return claimed
        job = claimed.job
        if job.terminal or job.step != Step.START or job.status != JobStatus.QUEUED:
            self._frame.release(claimed)
            return Outcome.STALE
        return self._endings.fail(claimed, code, message, cancel_run=False)

    def after_publish(self, hook: Callable[[Job], None]) -> None:
        """Call `hook` with each ended job as it is published (before its lease is
        dropped, so a finish that crashes calls it again: it must be idempotent)."""
        self._publication.after_publish = hook
