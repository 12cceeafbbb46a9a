"""How a job's attempts end: success, retry, fall back to the next link, fail, cancel.

Apart from the steps that move a run forward, because these decide what an outcome
*means* for the job: the retry policy, the chain of links, the breaker, the answer
cache, the final record. Each ends the step with one commit (`StepFrame`); an end is
published right after (`Publication`).
"""

from __future__ import annotations

from typing import Any

import structlog

from runq.errors import BackendError, ConfigurationError
from runq.runs import structured_output
from runq.runs.backends.base import RunState
from runq.runs.chains import CACHE, MODEL
from runq.runs.context import StepContext
from runq.runs.conversations.history import ConversationHistory
from runq.runs.error_codes import OUTPUT_CODES, ErrorCode
from runq.runs.events import FINAL
from runq.runs.frame import StepFrame
from runq.runs.job import Job, JobStatus, Step
from runq.runs.links import LinkServices
from runq.runs.metrics import Metrics
from runq.runs.outcomes import Outcome
from runq.runs.publication import Publication
from runq.runs.redaction import said
from runq.runs.retry import RetryPolicies
from runq.runs.run_status import RunStatus
from runq.runs.store import EndingWrites, JobStore

log = structlog.get_logger("runq.steps")


class Endings:
    """The outcome handler: what each ending does to the job and its link."""

    def __init__(
        self,
        frame: StepFrame,
        publication: Publication,
        store: JobStore,
        *,
        retry: RetryPolicies,
        services: LinkServices,
        metrics: Metrics | None,
        history: ConversationHistory | None = None,
    ) -> None:
        self.history = history  # runq's own conversation records (None: not kept)
        self.frame = frame
        self.publication = publication
        self.store = store
        self.retry = retry
        self.services = services
        self.metrics = metrics

    # -- success -----------------------------------------------------------------------
    def answer_instantly(self, ctx: StepContext) -> str:
        """The `cache` and `template` links: no backend call."""
        link = ctx.link
        if link.kind == CACHE:
            cache = self.services.cache
            cached = cache.get(ctx.job.spec) if cache is not None else None
            if cached is None:
                err = BackendError("no earlier answer to this question", code=ErrorCode.CACHE_MISS)
                return self.fall_back(ctx, err, [], run_ended=True)
            state = RunState(
                RunStatus.COMPLETED,
                output_text=cached["output_text"],
                citations=cached.get("citations", []),
            )
        else:
            state = RunState(RunStatus.COMPLETED, output_text=link.message or "")
        return self.succeed(ctx, state, [])

    def succeed(self, ctx: StepContext, state: RunState, events: list[dict[str, Any]]) -> str:
        job, link = ctx.job, ctx.link
        if job.spec.output_schema is not None:
            try:
                job.output_parsed = structured_output.parse(
                    job.spec, state.output_text, state.refusal
                )
            except BackendError as err:
                return self._output_rejected(ctx, err, events)
        if job.spec.hosted_tools and link.kind == MODEL:
            try:
                self._keep_run_outputs(ctx, state)
            except BackendError as err:  # the run stands: look at it again, then download
                return self.on_error(ctx, err, Step.POLL, events=events)
        job.output_text = state.output_text
        job.citations = state.citations
        job.source = link.name
        job.mark("run_completed_at")
        # The turn joins the conversation's record in the commit that ends the job.
        record = self.history.settle(ctx) if self.history is not None else None
        if link.kind == MODEL:
            self._credit_link(ctx, state)
        return self._end(ctx, JobStatus.SUCCEEDED, events, record=record)

    def _keep_run_outputs(self, ctx: StepContext, state: RunState) -> None:
        """The hosted tool calls for the result, and the files the run produced, downloaded
        now and kept (`runs.files.produced`): the backend may forget them (a container
        expires 20 minutes after its last use)."""
        job = ctx.job
        outputs = ctx.backend.run_outputs(job, state)
        job.hosted_calls = outputs.hosted_calls
        keeper = self.services.file_keeper()
        if keeper is None:
            job.files = [{"name": r.get("name"), "stored": False, "reason": "no file storage"}
                         for r in outputs.file_refs]  # fmt: skip
            return
        job.files = keeper.keep(job.id, outputs.file_refs, ctx.backend.read_file)

    def _credit_link(self, ctx: StepContext, state: RunState) -> None:
        """A model link answered: close its breaker, true up its bucket, and keep the
        answer for the `cache` link — only when the job's chain has one: an answer
        nothing will read is a copy of a tenant's data for no one."""
        job, link = ctx.job, ctx.link
        breaker = self.services.breaker(link)
        if breaker is not None:
            breaker.record_success()
        limiter = self.services.limiter(link)
        if limiter is not None and job.usage.get("total_tokens"):
            limiter.correct(job.rate_tokens, job.usage["total_tokens"])
        cache = self.services.cache
        if cache is not None and state.output_text and ctx.chain.caches:
            answer = {"output_text": state.output_text, "citations": state.citations}
            cache.put(job.spec, {**answer, "source": link.name})

    def _output_rejected(
        self, ctx: StepContext, err: BackendError, events: list[dict[str, Any]]
    ) -> str:
        """The answer is not what the output schema asks for. A model link asks again
        (the `output` retry policy), then the chain moves on; a `template` or `cache`
        link cannot answer differently, so it is skipped with the reason in `attempts`."""
        if ctx.link.kind != MODEL:
            err = BackendError(f"{ctx.link.name} link cannot honour the output schema: {err}",
                               code=err.code)  # fmt: skip
            return self.fall_back(ctx, err, events, run_ended=True)
        return self.on_error(ctx, err, Step.START, events=events, run_ended=True)

    # -- errors ------------------------------------------------------------------------
    def on_error(
        self,
        ctx: StepContext,
        err: BackendError,
        step: Step,
        *,
        events: list[dict[str, Any]] | None = None,
        run_ended: bool = False,
    ) -> str:
        """Retry (attempts counted per error class and link), else fall back, else fail."""
        job = ctx.job
        events = list(events or [])
        cls = self.retry.class_of(err)
        tries = job.retries.get(cls, 0)
        decision = self.retry.decide(err, tries, time_left=ctx.remaining())
        link = ctx.link
        counts = err.code != ErrorCode.RATE_LIMITED and err.code not in OUTPUT_CODES
        if (err.retryable or run_ended) and counts:
            # Every failed call counts toward the link's breaker (K in a row opens it);
            # a final error caused by the job's own input does not, nor a 429: the link
            # works, it asks for less (the rate limiter's and retry-after's job), nor an
            # answer that broke the job's schema (the link answered).
            breaker = self.services.breaker(link)
            if breaker is not None:
                breaker.record_failure()
        if not decision.retry:
            if decision.reason == "deadline":
                err = BackendError(f"deadline near: {err}", code=ErrorCode.DEADLINE_NEAR)
            return self.fall_back(ctx, err, events, run_ended=run_ended)
        entry = {
            "attempt": job.attempt,
            "step": step,
            "code": err.code,
            "error": said(err),
            "link": link.name,
        }
        job.attempt += 1
        job.retries[cls] = tries + 1
        if run_ended:
            # The run itself ended badly: start a fresh one; the old handle is history.
            _forget_run(job)
            step = Step.START
        job.move(JobStatus.RETRYING)
        events.append({"type": "job.retry", **entry, "delay": round(decision.delay, 3)})
        log.warning("job.retry_scheduled", job_id=job.id, delay=decision.delay, **entry)
        if self.metrics is not None:
            self.metrics.retry(link=link.name, code=err.code)
        self.frame.advance(ctx, step, decision.delay, events)
        return Outcome.RETRYING

    def fall_back(
        self,
        ctx: StepContext,
        err: BackendError,
        events: list[dict[str, Any]],
        *,
        run_ended: bool,
    ) -> str:
        """Move to the chain's next link, or fail with every link's reason."""
        job, link = ctx.job, ctx.link
        job.attempts.append(
            {"link": link.name, "code": err.code, "error": said(err), "attempt": job.attempt}
        )
        if not ctx.has_next_link:
            return self._fail_the_chain(ctx, err, events, run_ended=run_ended)
        if not run_ended:
            self._cancel_run(ctx)
        _forget_run(job)
        job.retries = {}
        ctx.use_link(job.link_index + 1)
        job.fallback_used = True
        job.move(JobStatus.FALLING_BACK)
        following = ctx.link.name
        events.append(
            {"type": "job.fallback", "from": link.name, "to": following, "code": err.code}
        )
        log.warning("job.fallback", job_id=job.id, link=link.name, to=following, code=err.code)
        self.frame.advance(ctx, Step.START, 0, events)
        return Outcome.FALLING_BACK

    def _fail_the_chain(
        self, ctx: StepContext, err: BackendError, events: list[dict[str, Any]], *, run_ended: bool
    ) -> str:
        """No link left: a job with one link fails with its error, else with every link's."""
        job = ctx.job
        if len(ctx.chain.links) == 1:
            code, message = err.code, said(err)
        else:
            reason = "; ".join(f"{a['link']}: {a['code']} ({a['error']})" for a in job.attempts)
            code, message = ErrorCode.ALL_LINKS_FAILED, f"every link failed ({reason})"
        return self.fail(ctx, code, message, cancel_run=not run_ended, events=events)

    # -- the end -----------------------------------------------------------------------
    def fail(
        self,
        ctx: StepContext,
        code: str,
        message: str,
        *,
        cancel_run: bool,
        events: list[dict[str, Any]] | None = None,
    ) -> str:
        """End the job `failed` with `code` (what the step returns) and `message`, which
        is redacted as a log line is: a backend may echo the key it was sent."""
        if cancel_run:
            self._cancel_run(ctx)
        message = said(message)
        ctx.job.error = {"code": code, "message": message}
        log.warning("job.failed", job_id=ctx.job.id, code=code, reason=message)
        self._end(ctx, JobStatus.FAILED, list(events or []))
        return code

    def cancel(self, ctx: StepContext) -> str:
        """End the job `cancelled`, and its run at the backend (a Chat turn has no run:
        its stream was closed by the step that followed it)."""
        self._cancel_run(ctx)
        ctx.job.error = {"code": ErrorCode.CANCELLED, "message": "cancelled by request"}
        log.info("job.cancelled", job_id=ctx.job.id, step=ctx.step, run=dict(ctx.job.handle))
        return self._end(ctx, JobStatus.CANCELLED, [])

    def _cancel_run(self, ctx: StepContext) -> None:
        if not ctx.job.handle:
            return
        try:
            ctx.backend.cancel(ctx.job)
        except (BackendError, ConfigurationError) as err:
            # ConfigurationError: the record names a link this worker does not have (a
            # chain that changed, or a record someone wrote): nothing to cancel it with.
            log.warning("job.cancel_at_backend_failed", job_id=ctx.job.id, error=str(err))

    def _end(
        self,
        ctx: StepContext,
        status: JobStatus,
        events: list[dict[str, Any]],
        *,
        record: tuple[str, str, int] | None = None,
    ) -> str:
        """Commit the job's end, then publish it in the same task (`Publication`).

        The record, the `job.final` event and the result backend's entry are committed
        together, so a waiting producer has its answer as soon as the run has ended, by
        whichever way it waits. What is left of the publication follows in the same task
        (`Publication.after_end`), which saves a Celery task per job.

        The same commit writes the conversation's `record` with the job's turn and gives
        its turn lock back (`EndingWrites`): the next job on the conversation starts only
        once this one's end and turn are written, and a cancel that refuses the end
        leaves no turn in the conversation.
        """
        job = ctx.job
        conversation = job.turn_lock or job.spec.thread_id or job.spec.conversation_id
        job.move(status)
        job.mark("finished_at")
        events.append({"type": FINAL, "status": status, "result": job.result()})
        writes = EndingWrites(conversation, record, self.publication.result_entry(job))
        job.published = writes.result is not None  # the result goes out with the end
        with self.store.ending(job.id, writes):
            token = self.frame.settle(ctx, Step.FINISH, events)
        if token is None:
            return Outcome.CONFLICT
        log.info("job.finished", job_id=job.id, status=status, source=job.source)
        for waiting, waiting_token in writes.next_turns:
            self._hand_over_turn(job, waiting, waiting_token)
        self.publication.after_end(job, token)
        return status

    def _hand_over_turn(self, job: Job, waiting: str, token: int) -> None:
        """Start a job that waits for this one's end, now.

        It waits at its start and would look again only within `turn_wait_handed_over`;
        started here, it takes the turn milliseconds after this end (or, further back in
        line, asks the end of the job now holding it). Its own look, due later with the
        same token, then finds the start done and does nothing. Best effort: that look is
        the guarantee, so a failure here is only logged.
        """
        try:
            self.frame.scheduler.schedule(Step.START, waiting, token, 0)
        except Exception as err:
            log.warning("job.turn_hand_over_failed", job_id=job.id, next_job=waiting,
                        error=repr(err))  # fmt: skip
            return
        log.info("job.turn_handed_over", job_id=job.id, next_job=waiting)


def _forget_run(job: Job) -> None:
    """The run is over for this job: a fresh one starts from no handle and no round."""
    job.handle = {}
    job.round_base = job.round  # a fresh run counts its rounds anew; keys stay unique
    job.pending_calls = []
    job.transcript = []
    job.polls = 0
