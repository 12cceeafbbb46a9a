"""The steps of a job — start, poll, submit tool outputs, finish, cancel — with no Celery in them.

Every step has the same shape, which is what makes redelivered and duplicated tasks
harmless:

1. claim the job (a short lock) and read its record;
2. act only if the record says this step, with this token, is due;
3. do at most one backend call;
4. commit the outcome (record + events + lease, atomically), then schedule the next step.

A task never sleeps while a run waits: it returns, and the `Scheduler` brings the next
step back after a countdown. Errors go through the retry policy, never a nested except.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import structlog

from runq.errors import BackendError, JobNotFoundError, RunqError
from runq.runs.backends.base import WAITING, Backend, RunState
from runq.runs.breaker import Admission
from runq.runs.chains import Link
from runq.runs.classify import classify_run_failure
from runq.runs.endings import Endings
from runq.runs.error_codes import ErrorCode, ToolErrorCode
from runq.runs.job import Job, JobStatus, Step
from runq.runs.links import LinkServices
from runq.runs.metrics import Metrics
from runq.runs.outcomes import Outcome
from runq.runs.ratelimit import estimate_tokens
from runq.runs.retry import PER_CALL_CLASSES, RetryPolicies
from runq.runs.run_status import RunStatus
from runq.runs.store import Claim, JobStore
from runq.runs.streaming import Streaming
from runq.runs.toolcalls import StoredOutput

log = structlog.get_logger("runq.steps")

_HEALTHY = WAITING | {RunStatus.REQUIRES_TOOLS, RunStatus.COMPLETED}


class Scheduler(Protocol):
    """How the core asks for future work; Celery implements it in `tasks/`."""

    def schedule(self, step: Step, job_id: str, token: int, countdown: float) -> None: ...

    def dispatch_tools(self, job: Job, token: int) -> None: ...

    def publish_result(self, job: Job) -> None: ...


@dataclass
class StepConfig:
    poll_interval_min: float = 0.25
    poll_interval_max: float = 5.0
    request_timeout: float = 30.0
    lease_grace: float = 60.0
    tool_errors_fail_job: bool = False
    stream_lock_seconds: float = 10.0  # renewed while the stream runs; short so a crash frees it
    turn_wait: float = 0.5  # seconds between looks while another job has the conversation
    deadline_margin: float = 2.0  # a model link is skipped with less time than this left

    @property
    def lock_seconds(self) -> float:
        """A step holds its job at most one request plus margin; then others may act."""
        return self.request_timeout + 10.0


class Steps(Streaming, Endings):
    """Drives jobs one step at a time."""

    def __init__(
        self,
        store: JobStore,
        backend_for: Callable[[Job], Backend],
        scheduler: Scheduler,
        tool_outputs: Callable[[str, int], dict[str, StoredOutput]],
        *,
        config: StepConfig | None = None,
        retry: RetryPolicies | None = None,
        metrics: Metrics | None = None,
        services: LinkServices | None = None,
    ) -> None:
        self.store = store
        self.backend_for = backend_for
        self.scheduler = scheduler
        self.tool_outputs = tool_outputs
        self.config = config or StepConfig()
        self.retry = retry or RetryPolicies()
        self.metrics = metrics
        self.services = services or LinkServices()

    # -- the common frame --------------------------------------------------------------
    def run(self, step: str, job_id: str, token: int) -> str:
        """Run `step` for the job if it is due; returns what happened (for logs and tests)."""
        step = Step(step)
        lock = self.config.stream_lock_seconds if step == Step.STREAM else self.config.lock_seconds
        claim = self._claim(step, job_id, token, lock)
        if isinstance(claim, str):
            return claim
        job = claim.job
        assert job is not None
        owner = claim.owner
        try:
            if job.terminal or job.step != step or job.token != token:
                self.store.release(job_id, owner)
                return Outcome.STALE
            if claim.cancel_requested:
                self._end_cancelled(job, owner)
                return Outcome.CANCELLED
            if self._deadline_passed(job):
                self._fail(
                    job,
                    owner,
                    ErrorCode.DEADLINE_EXCEEDED,
                    f"the job's deadline of {job.spec.deadline:g}s passed",
                    cancel_run=True,
                )
                return ErrorCode.DEADLINE_EXCEEDED
            action = getattr(self, "_" + step)
            try:
                return action(job, owner)
            except (RunqError, ValueError) as err:
                if isinstance(err, BackendError):
                    raise
                # A bad job (unknown tool, unusable spec) fails alone, with its reason.
                code = getattr(err, "code", None) or type(err).__name__
                self._fail(job, owner, str(code), str(err), cancel_run=True)
                return str(code)
        except BaseException:
            self.store.release(job_id, owner)
            raise

    def cancel(self, job_id: str) -> str:
        """End the job `cancelled` now (the producer already raised its cancel flag)."""
        claim = self._claim(Step.CANCEL, job_id, 0, self.config.lock_seconds)
        if isinstance(claim, str):
            return claim
        job = claim.job
        assert job is not None
        if job.terminal:
            self.store.release(job_id, claim.owner)
            return Outcome.STALE
        self._end_cancelled(job, claim.owner)
        return Outcome.CANCELLED

    def finish(self, job_id: str, token: int) -> str:
        """Publish an ended job: its result under the job id in the result backend, metrics.

        The step that ends a job calls this at once, in its own task; the `runq.jobs.finish`
        task runs it when that failed, and the sweeper when a worker died in between.
        Idempotent: a duplicate finds the job published (or its token stale) and does
        nothing; a finish that crashed before its commit is run again by the sweeper, and
        writing the same result again is harmless.
        """
        claim = self._claim(Step.FINISH, job_id, token, self.config.lock_seconds)
        if isinstance(claim, str):
            return claim
        job = claim.job
        assert job is not None
        if not job.terminal or job.published or job.step != Step.FINISH or job.token != token:
            self.store.release(job_id, claim.owner)
            return Outcome.STALE
        try:
            self.scheduler.publish_result(job)
        except BaseException:
            self.store.release(job_id, claim.owner)
            raise
        job.published = True
        if not self.store.commit(job, owner=claim.owner):
            log.warning("job.commit_conflict", job_id=job.id, step=Step.FINISH)
            return Outcome.CONFLICT
        # After the commit: a crash in between loses one job's figures, never counts twice.
        if self.metrics is not None:
            self._record_metrics(job)
        return Outcome.PUBLISHED

    def _claim(self, step: Step, job_id: str, token: int, lock: float) -> Claim | str:
        """Lock the job for `step`, or say why not: "not_found", or "busy" — then the step
        comes back when the holder's lock ends (a cancel's holder also sees the flag)."""
        try:
            claim = self.store.claim(job_id, lock)
        except JobNotFoundError:
            log.warning("job.not_found", job_id=job_id, step=step)
            return Outcome.NOT_FOUND
        if not claim.acquired:
            self.scheduler.schedule(step, job_id, token, countdown=claim.busy_for + 0.05)
            return Outcome.BUSY
        assert claim.job is not None
        _bind_log_context(claim.job)
        return claim

    def _deadline_passed(self, job: Job) -> bool:
        return time.time() > job.timings["queued_at"] + job.spec.deadline

    def _advance(
        self, job: Job, owner: str, step: Step, countdown: float, events: list[dict[str, Any]]
    ) -> bool:
        """Commit the job with `step` due after `countdown`, then schedule that step."""
        countdown = max(0.0, min(countdown, self._remaining(job)))
        token = job.due(step)
        lease = time.time() + countdown + self.config.lease_grace + self.config.lock_seconds
        if not self.store.commit(job, events, owner=owner, lease_until=lease):
            log.warning("job.commit_conflict", job_id=job.id, step=step)
            return False
        self.scheduler.schedule(step, job.id, token, countdown)
        return True

    # -- steps -------------------------------------------------------------------------
    def _start(self, job: Job, owner: str) -> str:
        waiting_for = self._turn_blocker(job)
        if waiting_for is not None:
            # Another job on this conversation goes first; this one keeps its place.
            self._come_back(job, owner, Step.START, self.config.turn_wait)
            log.info("job.waiting_turn", job_id=job.id, behind=waiting_for)
            return Outcome.WAITING_TURN
        link = self._link(job)
        if link.instant:
            return self._answer_instantly(job, owner, link)
        if self._remaining(job) < self.config.deadline_margin:
            err = BackendError("too little time left for this link", code=ErrorCode.DEADLINE_NEAR)
            return self._fall_back(job, owner, err, [], run_ended=True)
        breaker = self.services.breaker(link)
        admission = breaker.ask() if breaker is not None else None
        if admission is not None and not admission.allowed:
            if job.link_index + 1 < len(job.links):
                err = BackendError(
                    f"circuit breaker of {link.name} is open", code=ErrorCode.CIRCUIT_OPEN
                )
                return self._fall_back(job, owner, err, [], run_ended=True)
            # No other link: come back when the breaker can next let a call through.
            wait = min(_breaker_wait(admission), max(0.0, self._remaining(job)))
            self._come_back(job, owner, Step.START, wait)
            log.info("job.breaker_wait", job_id=job.id, link=link.name, wait=round(wait, 3))
            return Outcome.BREAKER_WAIT
        if not self._take_capacity(job, owner, link, Step.START):
            if breaker is not None and admission is not None and admission.probe:
                breaker.release_probe()  # this job will not call now: another may probe
            return Outcome.RATE_LIMITED
        backend = self._turn_backend(job)
        events: list[dict[str, Any]] = []
        if job.status != JobStatus.RUNNING:
            job.move(JobStatus.RUNNING)
            events.append(
                {"type": "job.status", "status": JobStatus.RUNNING, "attempt": job.attempt}
            )
        job.mark("started_at")
        requests = backend.streaming().streams_requests
        if job.spec.mode == "stream" and requests is not None:
            return self._start_streaming(job, owner, requests, events)
        try:
            state = backend.start(job)
        except BackendError as err:
            return self._on_error(job, owner, err, Step.START)
        job.handle.update(state.handle)
        self._calibrate(link, state)
        if breaker is not None:
            breaker.record_success()  # the link answers: close it (or end the probe) now
        job.mark("run_created_at")
        events.append({"type": "run.created", **state.handle, "attempt": job.attempt})
        log.info("job.run_created", job_id=job.id, attempt=job.attempt, **state.handle)
        return self._after_state(job, owner, state, events)

    def _take_capacity(
        self, job: Job, owner: str, link: Any, step: Step, tokens: int | None = None
    ) -> bool:
        """A request (and its estimated tokens) from the link's global bucket, or come back.

        Every call to the backend takes a request — polls too, since the server counts
        them; only creates take tokens.

        Without capacity the step gives the job back untouched and is re-scheduled after
        the bucket's exact wait; nothing is sent to the backend.
        """
        limiter = self.services.limiter(link)
        if limiter is None:
            return True
        if tokens is None:  # a create: its prompt and answer count against the TPM budget
            text = job.spec.input if isinstance(job.spec.input, str) else str(job.spec.input)
            tokens = estimate_tokens(text, job.spec.max_output_tokens)
        got = limiter.acquire(tokens)
        if got.ok:
            if tokens:
                job.rate_tokens = got.tokens
            return True
        self._come_back(job, owner, step, got.wait)
        if self.metrics is not None:
            self.metrics.ratelimit_wait(link=link.name, seconds=got.wait)
        log.info("job.rate_limited", job_id=job.id, link=link.name, wait=round(got.wait, 3))
        return False

    def _calibrate(self, link: Any, state: RunState) -> None:
        limiter = self.services.limiter(link)
        if limiter is not None and state.headers:
            limiter.calibrate(state.headers)

    def _come_back(self, job: Job, owner: str, step: Step, wait: float) -> None:
        """Give the job back untouched and run `step` again after `wait` seconds.

        The lease moves past the wait, so the sweeper does not mistake a job that waits
        on purpose (its turn, a breaker, the rate limiter) for one whose worker died.
        """
        lease = time.time() + wait + self.config.lease_grace + self.config.lock_seconds
        self.store.extend_lease(job.id, lease)
        self.store.release(job.id, owner)
        self.scheduler.schedule(step, job.id, job.token, wait)

    def _turn_blocker(self, job: Job) -> str | None:
        """The job this one must wait for, or None once it may talk to its conversation.

        A continuation waits until the earlier job ended, then takes over its backend ids;
        jobs on one thread or conversation take turns through a lock in Redis, because a
        thread with an active run refuses new messages.
        """
        spec = job.spec
        if spec.continue_job and not (
            spec.previous_response_id or spec.thread_id or spec.conversation_id
        ):
            earlier = self.store.get(spec.continue_job)
            if not earlier.terminal:
                return earlier.id
            ids = earlier.handle
            if ids.get("thread_id"):
                spec.thread_id = ids["thread_id"]
            elif earlier.spec.conversation_id:
                spec.conversation_id = earlier.spec.conversation_id
            elif ids.get("response_id"):
                spec.previous_response_id = ids["response_id"]
        conversation = spec.thread_id or spec.conversation_id
        if conversation and not job.handle:
            holder = self.store.take_conversation(conversation, job.id, spec.deadline)
            if holder != job.id:
                return holder
        return None

    def _poll(self, job: Job, owner: str) -> str:
        if not self._take_capacity(job, owner, self._link(job), Step.POLL, tokens=0):
            return Outcome.RATE_LIMITED
        try:
            state = self.backend_for(job).retrieve(job)
        except BackendError as err:
            return self._on_error(job, owner, err, Step.POLL)
        job.polls += 1
        return self._after_state(job, owner, state, [])

    def _submit_tool_outputs(self, job: Job, owner: str) -> str:
        outputs = self.tool_outputs(job.id, job.round)
        missing = StoredOutput(
            '{"error": {"code": "missing_output"}}', ToolErrorCode.MISSING_OUTPUT
        )
        stored = {c["call_id"]: outputs.get(c["call_id"], missing) for c in job.pending_calls}
        done = [
            {
                **call,
                "output": stored[call["call_id"]].output,
                "error": stored[call["call_id"]].error,
                "round": job.round,
            }
            for call in job.pending_calls
        ]
        failed = [c for c in done if c["error"]]
        if failed and self.config.tool_errors_fail_job:
            job.tool_calls.extend(done)
            first = failed[0]
            return self._fail(
                job,
                owner,
                ErrorCode.TOOL_ERROR,
                f"tool {first['name']!r} failed ({first['error']}): {first['output']}",
                cancel_run=True,
            )
        if not self._take_capacity(job, owner, self._link(job), Step.SUBMIT_TOOL_OUTPUTS):
            return Outcome.RATE_LIMITED
        pairs = [(call_id, out.output) for call_id, out in stored.items()]
        backend = self._turn_backend(job)
        requests = backend.streaming().streams_requests
        if job.spec.mode == "stream" and requests is not None:
            return self._submit_streaming(job, owner, requests, backend, pairs, done)
        try:
            state = backend.submit_tool_outputs(job, pairs)
        except BackendError as err:
            return self._on_error(job, owner, err, Step.SUBMIT_TOOL_OUTPUTS)
        job.tool_calls.extend(done)  # only once the round was handed over
        job.pending_calls = []
        job.handle.update(state.handle)
        job.move(JobStatus.RUNNING)
        events = [{"type": "job.status", "status": JobStatus.RUNNING, "round": job.round}]
        return self._after_state(job, owner, state, events)

    # -- what a run state means --------------------------------------------------------
    def _after_state(
        self, job: Job, owner: str, state: RunState, events: list[dict[str, Any]]
    ) -> str:
        # The backend answered: a 429 or 5xx streak is over. Counted per job instead, the
        # blips of a long run (one poll in twenty timing out) would add up to a failure
        # though every call was retried well within its policy.
        for streak in PER_CALL_CLASSES:
            job.retries.pop(streak, None)
        _add_usage(job, state.usage)
        if state.transcript is not None:
            job.transcript = state.transcript
        if job.status in (JobStatus.RETRYING, JobStatus.FALLING_BACK) and state.status in _HEALTHY:
            job.move(JobStatus.RUNNING)
            events.append(
                {"type": "job.status", "status": JobStatus.RUNNING, "attempt": job.attempt}
            )
        if state.waiting:
            follows = self.backend_for(job).streaming().follows_runs
            if job.spec.mode == "stream" and follows is not None:
                self._advance(job, owner, Step.STREAM, 0, events)
                return Outcome.STREAMING
            self._advance(job, owner, Step.POLL, self._poll_interval(job, state), events)
            return Outcome.WAITING
        if state.status == RunStatus.REQUIRES_TOOLS:
            return self._tool_round(job, owner, state, events)
        if state.status == RunStatus.COMPLETED:
            return self._succeed(job, owner, state, events)
        err = classify_run_failure(state.status, state.error_code)
        if state.error_message:
            err.args = (f"{err.args[0]}: {state.error_message}",)
        return self._on_error(job, owner, err, Step.START, events=events, run_ended=True)

    def _poll_interval(self, job: Job, state: RunState) -> float:
        """The server's `openai-poll-after-ms` if given, else min·1.5^polls up to max."""
        cfg = self.config
        if state.poll_after is not None:
            return max(0.01, min(state.poll_after, cfg.poll_interval_max))
        return min(cfg.poll_interval_max, cfg.poll_interval_min * (1.5**job.polls))

    def _tool_round(
        self, job: Job, owner: str, state: RunState, events: list[dict[str, Any]]
    ) -> str:
        if job.round - job.round_base >= job.spec.max_tool_rounds:
            return self._fail(
                job,
                owner,
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
        job.move(JobStatus.WAITING_TOOLS)
        events.append({"type": "job.status", "status": JobStatus.WAITING_TOOLS, "round": job.round})
        events.extend({"type": "tool.call", "round": job.round, **c} for c in job.pending_calls)
        token = job.due(Step.SUBMIT_TOOL_OUTPUTS)
        lease = time.time() + self.config.lease_grace + self.config.lock_seconds * 2
        if not self.store.commit(job, events, owner=owner, lease_until=lease):
            return Outcome.CONFLICT
        self.scheduler.dispatch_tools(job, token)
        log.info(
            "job.tools_dispatched", job_id=job.id, round=job.round, calls=len(state.tool_calls)
        )
        return Outcome.TOOLS


# While a probe is out, waiting jobs look again this often (plus jitter): a probe that
# succeeds lets them through within a couple of seconds, not a whole open period later.
PROBE_RECHECK = 1.0


def _breaker_wait(admission: Admission) -> float:
    """When a job refused by its breaker should ask again.

    At the end of the open period (when the probe goes), or shortly while a probe is out.
    The jitter spreads a crowd of waiting jobs instead of waking them all at one instant.
    """
    if admission.state == "half_open":
        return min(admission.wait, PROBE_RECHECK + random.uniform(0.0, 2 * PROBE_RECHECK))
    return admission.wait + random.uniform(0.0, PROBE_RECHECK)


def _bind_log_context(job: Job) -> None:
    """Every log line of this step (and, through the message header, of the steps it
    schedules) says which attempt, link and run it is about."""
    run_id = job.handle.get("response_id") or job.handle.get("run_id")
    link = Link.from_dict(job.links[job.link_index]).name if job.links else None
    structlog.contextvars.bind_contextvars(
        job_id=job.id, attempt=job.attempt, link=link, run_id=run_id
    )


def _add_usage(job: Job, usage: dict[str, int]) -> None:
    for key, value in usage.items():
        job.usage[key] = job.usage.get(key, 0) + int(value)
