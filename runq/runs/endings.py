"""How a job's attempts end: success, retry, fall back to the next link, fail, cancel.

Separated from `runs.steps` (which moves a run forward) because these decide what an
outcome *means* for the job: the retry policy, the chain of links, the breaker, the
answer cache, the final record and the metrics.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import structlog

from runq.errors import BackendError
from runq.runs.backends.base import Backend, RunState
from runq.runs.chains import CACHE, Link
from runq.runs.error_codes import ErrorCode
from runq.runs.events import FINAL
from runq.runs.job import Job, JobStatus, Step
from runq.runs.links import LinkServices
from runq.runs.metrics import Metrics
from runq.runs.outcomes import Outcome
from runq.runs.retry import RetryPolicies
from runq.runs.run_status import RunStatus
from runq.runs.store import JobStore

if TYPE_CHECKING:
    from runq.runs.steps import Scheduler, StepConfig

log = structlog.get_logger("runq.steps")


class Endings:
    """Mixed into `Steps`; uses its store, scheduler, backends and policies."""

    store: JobStore
    scheduler: Scheduler
    backend_for: Callable[[Job], Backend]
    config: StepConfig
    retry: RetryPolicies
    metrics: Metrics | None
    services: LinkServices

    def _remaining(self, job: Job) -> float:
        return job.timings["queued_at"] + job.spec.deadline - time.time()

    if TYPE_CHECKING:  # provided by Steps

        def _advance(
            self, job: Job, owner: str, step: Step, countdown: float, events: list[dict[str, Any]]
        ) -> bool: ...

        def finish(self, job_id: str, token: int) -> str: ...

    # -- links -------------------------------------------------------------------------
    def _link(self, job: Job) -> Link:
        if not job.links:
            job.links = [link.to_dict() for link in self.services.links(job.spec)]
            self._use_link(job, 0)
        return Link.from_dict(job.links[job.link_index])

    def _use_link(self, job: Job, index: int) -> None:
        job.link_index = index
        link = Link.from_dict(job.links[index])
        if link.kind == "model":
            job.spec.backend = link.backend
            job.spec.model = link.model

    def _answer_instantly(self, job: Job, owner: str, link: Link) -> str:
        """The `cache` and `template` links: no backend call."""
        if link.kind == CACHE:
            cache = self.services.cache
            cached = cache.get(job.spec) if cache is not None else None
            if cached is None:
                err = BackendError("no earlier answer to this question", code=ErrorCode.CACHE_MISS)
                return self._fall_back(job, owner, err, [], run_ended=True)
            state = RunState(
                RunStatus.COMPLETED,
                output_text=cached["output_text"],
                citations=cached.get("citations", []),
            )
        else:
            state = RunState(RunStatus.COMPLETED, output_text=link.message or "")
        return self._succeed(job, owner, state, [])

    # -- outcomes ----------------------------------------------------------------------
    def _succeed(self, job: Job, owner: str, state: RunState, events: list[dict[str, Any]]) -> str:
        link = self._link(job)
        job.output_text = state.output_text
        job.citations = state.citations
        job.source = link.name
        job.mark("run_completed_at")
        if link.kind == "model":
            breaker = self.services.breaker(link)
            if breaker is not None:
                breaker.record_success()
            limiter = self.services.limiter(link)
            if limiter is not None and job.usage.get("total_tokens"):
                limiter.correct(job.rate_tokens, job.usage["total_tokens"])
            cache = self.services.cache
            if cache is not None and state.output_text:
                cache.put(
                    job.spec,
                    {
                        "output_text": state.output_text,
                        "citations": state.citations,
                        "source": link.name,
                    },
                )
        return self._end(job, owner, JobStatus.SUCCEEDED, events)

    def _on_error(
        self,
        job: Job,
        owner: str,
        err: BackendError,
        step: Step,
        *,
        events: list[dict[str, Any]] | None = None,
        run_ended: bool = False,
    ) -> str:
        """Retry (attempts counted per error class and link), else fall back, else fail."""
        events = list(events or [])
        cls = self.retry.class_of(err)
        tries = job.retries.get(cls, 0)
        decision = self.retry.decide(err, tries, time_left=self._remaining(job))
        link = self._link(job)
        if (err.retryable or run_ended) and err.code != ErrorCode.RATE_LIMITED:
            # Every failed call counts toward the link's breaker (K in a row opens it);
            # a final error caused by the job's own input does not, nor a 429: the link
            # works, it asks for less (the rate limiter's and retry-after's job).
            breaker = self.services.breaker(link)
            if breaker is not None:
                breaker.record_failure()
        entry = {
            "attempt": job.attempt,
            "step": step,
            "code": err.code,
            "error": str(err),
            "link": link.name,
        }
        if decision.retry:
            job.attempt += 1
            job.retries[cls] = tries + 1
            if run_ended:
                # The run itself ended badly: start a fresh one; the old handle is history.
                self._forget_run(job)
                step = Step.START
            job.move(JobStatus.RETRYING)
            events.append({"type": "job.retry", **entry, "delay": round(decision.delay, 3)})
            log.warning("job.retry_scheduled", job_id=job.id, delay=decision.delay, **entry)
            if self.metrics is not None:
                self.metrics.retry(link=link.name, code=err.code)
            self._advance(job, owner, step, decision.delay, events)
            return Outcome.RETRYING
        if decision.reason == "deadline":
            err = BackendError(f"deadline near: {err}", code=ErrorCode.DEADLINE_NEAR)
        return self._fall_back(job, owner, err, events, run_ended=run_ended)

    def _forget_run(self, job: Job) -> None:
        job.handle = {}
        job.round_base = job.round  # a fresh run counts its rounds anew; keys stay unique
        job.pending_calls = []
        job.transcript = []
        job.polls = 0

    def _fall_back(
        self,
        job: Job,
        owner: str,
        err: BackendError,
        events: list[dict[str, Any]],
        *,
        run_ended: bool,
    ) -> str:
        """Move to the chain's next link, or fail with every link's reason."""
        link = self._link(job)
        job.attempts.append(
            {"link": link.name, "code": err.code, "error": str(err), "attempt": job.attempt}
        )
        nxt = job.link_index + 1
        if nxt >= len(job.links):
            reason = "; ".join(f"{a['link']}: {a['code']}" for a in job.attempts)
            code = err.code if len(job.links) == 1 else ErrorCode.ALL_LINKS_FAILED
            message = str(err) if len(job.links) == 1 else f"every link failed ({reason})"
            return self._fail(job, owner, code, message, cancel_run=not run_ended, events=events)
        if not run_ended:
            self._cancel_run(job)
        self._forget_run(job)
        job.retries = {}
        self._use_link(job, nxt)
        job.fallback_used = True
        job.move(JobStatus.FALLING_BACK)
        following = Link.from_dict(job.links[nxt]).name
        events.append(
            {"type": "job.fallback", "from": link.name, "to": following, "code": err.code}
        )
        log.warning("job.fallback", job_id=job.id, link=link.name, to=following, code=err.code)
        self._advance(job, owner, Step.START, 0, events)
        return Outcome.FALLING_BACK

    def _fail(
        self,
        job: Job,
        owner: str,
        code: str,
        message: str,
        *,
        cancel_run: bool,
        events: list[dict[str, Any]] | None = None,
    ) -> str:
        if cancel_run:
            self._cancel_run(job)
        job.error = {"code": code, "message": message}
        log.warning("job.failed", job_id=job.id, code=code, reason=message)
        self._end(job, owner, JobStatus.FAILED, list(events or []))
        return code

    def _end_cancelled(self, job: Job, owner: str) -> None:
        self._cancel_run(job)
        job.error = {"code": ErrorCode.CANCELLED, "message": "cancelled by request"}
        self._end(job, owner, JobStatus.CANCELLED, [])

    def _cancel_run(self, job: Job) -> None:
        if not job.handle:
            return
        try:
            self.backend_for(job).cancel(job)
        except BackendError as err:
            log.warning("job.cancel_at_backend_failed", job_id=job.id, error=str(err))

    def _end(self, job: Job, owner: str, status: JobStatus, events: list[dict[str, Any]]) -> str:
        """Commit the job's end, then publish it in the same task.

        The record and the `job.final` event are committed first, so a waiting producer
        has its answer as soon as the run has ended. What only the outside world reads
        (the Celery result backend, the metrics) comes after, as a second commit: the
        finish. Doing it here saves one Celery task per job (its message, acks and task
        events: 13 of the 198 Redis commands of a job with a tool round). It stays
        separable: the job keeps a lease until the finish commits, so a finish that
        raises is handed to `runq.jobs.finish`, and one lost with its worker is
        re-driven by the sweeper.
        """
        conversation = job.spec.thread_id or job.spec.conversation_id
        if conversation:
            self.store.give_back_conversation(conversation, job.id)
        job.move(status)
        token = job.due(Step.FINISH)
        job.mark("finished_at")
        result = job.result()
        events.append({"type": FINAL, "status": status, "result": result})
        lease = time.time() + self.config.lease_grace + self.config.lock_seconds
        if not self.store.commit(job, events, owner=owner, lease_until=lease):
            log.warning("job.commit_conflict", job_id=job.id, step=Step.FINISH)
            return Outcome.CONFLICT
        log.info("job.finished", job_id=job.id, status=status, source=job.source)
        try:
            self.finish(job.id, token)
        except Exception as err:  # the end is committed; publication gets its own task
            log.warning("job.publish_deferred", job_id=job.id, error=repr(err))
            self.scheduler.schedule(Step.FINISH, job.id, token, 0)
        return status

    def _record_metrics(self, job: Job) -> None:
        assert self.metrics is not None
        t = job.timings
        ran = "run_completed_at" in t and "run_created_at" in t
        self.metrics.job_finished(
            status=job.status,
            source=job.source,
            model=job.spec.model,
            latency_s=t["finished_at"] - t["queued_at"],
            input_tokens=job.usage.get("input_tokens", 0),
            output_tokens=job.usage.get("output_tokens", 0),
            run_wait_s=t["run_completed_at"] - t["run_created_at"] if ran else None,
        )
