"""What a call must pass before it goes out: the job's turn, the link's usability, its
breaker, its bucket.

Each gate either lets the step go on or gives the job back untouched, with the step
coming back when the gate can next open (`StepFrame.come_back`): a task never sleeps
at a gate.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import structlog

from runq.errors import BackendError, ConfigurationError, InvalidJobError, JobNotFoundError
from runq.runs.breaker import Admission, CircuitBreaker
from runq.runs.chains import Link
from runq.runs.context import StepContext
from runq.runs.conversations.ids import first_job_of, turns_on
from runq.runs.error_codes import ErrorCode
from runq.runs.frame import StepFrame
from runq.runs.job import Job, JobSpec, Step
from runq.runs.links import LinkServices
from runq.runs.metrics import Metrics
from runq.runs.multitask import for_worker as multitask_for_worker
from runq.runs.ratelimit import estimate_tokens
from runq.runs.store import JobStore, Turn

log = structlog.get_logger("runq.steps")

# While a probe is out, waiting jobs look again this often (plus jitter): a probe that
# succeeds lets them through within a couple of seconds, not a whole open period later.
PROBE_RECHECK = 1.0


@dataclass(frozen=True)
class BreakerPass:
    """The link's breaker's answer to one call (no breaker: every call goes)."""

    breaker: CircuitBreaker | None = None
    admission: Admission | None = None

    @property
    def refused(self) -> bool:
        return self.admission is not None and not self.admission.allowed

    def wait(self) -> float:
        """When a job refused by its breaker should ask again.

        At the end of the open period (when the probe goes), or shortly while a probe is
        out. The jitter spreads a crowd of waiting jobs instead of waking them all at
        one instant.
        """
        assert self.admission is not None
        if self.admission.state == "half_open":
            return min(self.admission.wait, PROBE_RECHECK + random.uniform(0.0, 2 * PROBE_RECHECK))
        return self.admission.wait + random.uniform(0.0, PROBE_RECHECK)

    def unused(self) -> None:
        """This job will not call now: if it was the probe, another job may probe."""
        if self.breaker is not None and self.admission is not None and self.admission.probe:
            self.breaker.release_probe()

    def answered(self) -> None:
        """The link answered: close its breaker (or end the probe) now.

        Nothing to do when the breaker was closed with no failures counted as this call
        was let through (most calls): a success would only delete a key that is not
        there. A failure another job recorded meanwhile is then reset by the next
        success reported after it, not by this one (one call's time later)."""
        if self.breaker is not None and not (self.admission and self.admission.clean):
            self.breaker.record_success()


def _take_over_handle(spec: JobSpec, earlier: Job) -> None:
    ids = earlier.handle
    if ids.get("thread_id"):
        spec.thread_id = ids["thread_id"]
    elif earlier.spec.conversation_id:
        spec.conversation_id = earlier.spec.conversation_id
    elif ids.get("response_id"):
        spec.previous_response_id = ids["response_id"]


class Gates:
    """The turn, breaker and rate-limit gates, shared through Redis by every worker."""

    def __init__(
        self, frame: StepFrame, store: JobStore, services: LinkServices, metrics: Metrics | None
    ) -> None:
        self.frame = frame
        self.store = store
        self.services = services
        self.metrics = metrics
        # What a job does when another has its conversation (runs.multitask).
        self.multitask = multitask_for_worker(store, frame.scheduler)

    def turn_blocker(self, ctx: StepContext) -> Turn | None:
        """The job this one must wait for, or None once it may talk to its conversation.

        A continuation waits until the earlier job ended, then takes over its backend ids;
        jobs on one thread or conversation take turns through a lock in Redis, because a
        thread with an active run refuses new messages. `Turn.after`: the job whose end
        will start this one (`ask_hand_over`): the other job when this one is next, else
        the job just before it in line.
        """
        job, spec = ctx.job, ctx.job.spec
        ended = None  # a job seen ended here (the one continued)
        if spec.continue_job and not (
            spec.previous_response_id or spec.thread_id or spec.conversation_id
            or spec.conversation
        ):  # fmt: skip
            earlier = self._earlier(spec.continue_job)
            if not earlier.terminal:
                waiting_for = self.multitask.busy(job, earlier.id)
                # Never in the way of another tenant's own next turn.
                own = earlier.spec.tenant == spec.tenant
                return Turn(waiting_for, after=earlier.id if own else None)
            ended = earlier.id
            if earlier.spec.conversation:
                # runq's own record carries the history to whichever link answers
                # (runs.conversations); a native handle is used where it still holds.
                spec.conversation = earlier.spec.conversation
            else:  # a job from before runq kept conversations: its backend's handle
                _take_over_handle(spec, earlier)
        # A conversation's first job takes no lock on it: every later job waits for it
        # to end instead (`runs.conversations.ids.of_job`), which costs it nothing.
        # The others take the turn in the order they were submitted.
        conversation = turns_on(job.id, spec)
        if conversation and not job.handle:
            first = first_job_of(spec.conversation)
            if first not in (None, ended, job.id) and not self.store.has_ended(first):
                waiting_for = self.multitask.busy(job, first)
                ahead = self.store.ahead_in_line(job, conversation)
                return self._in_line(job, waiting_for, first if ahead == "" else ahead)
            turn = self.store.take_conversation(job, conversation)
            if turn.holder != job.id:
                return self._in_line(job, self.multitask.busy(job, turn.holder), turn.after)
            job.turn_lock = conversation
            self.multitask.took_turn(job)
        return None

    def _in_line(self, job: Job, holder: str, after: str | None) -> Turn:
        """A job waiting in a conversation's line, started by the end of `after`.

        Except a job further back that interrupts (`interrupt`, `rollback`): it looks
        again every `turn_wait`, since each look stops the job then in its way
        (`runs.multitask`), and the end of the job before it would come too late."""
        if after != holder and not self.multitask.waits_its_turn(job):
            after = None
        return Turn(holder, after)

    def ask_hand_over(self, job: Job, after: str) -> None:
        """Ask the end of `after` (`Turn.after`) to start this job (`JobStore.wait_for_end`),
        then look at that job once more: an end before the request is seen then, and this
        job's start is sent now; a later end finds the request.

        Called once the waiting job is given back (`StepFrame.come_back`): a start sent
        by the end while the job was still held would find it busy and come back only
        when its lock ran out.
        """
        self.store.wait_for_end(after, job)
        if self.store.has_ended(after):
            self.frame.scheduler.schedule(Step.START, job.id, job.token, 0)

    def _earlier(self, job_id: str) -> Job:
        """The job a continuation continues; gone (expired, never there) is a bad job."""
        try:
            return self.store.get(job_id)
        except JobNotFoundError:
            raise InvalidJobError(
                "continue_job", f"no job {job_id!r} to continue (records expire)"
            ) from None

    def link_unusable(self, ctx: StepContext) -> BackendError | None:
        """Why this worker cannot call the job's link at all, or None.

        A link whose API key variable is not set, or whose backend this worker lacks,
        is skipped like a link with an open breaker (the reason goes into the job's
        `attempts`), not made the job's end: the chain exists for links that cannot
        answer. Building the link's backend is what finds out.
        """
        try:
            ctx.backend  # noqa: B018 - built here, before any call, to learn it cannot be
        except ConfigurationError as err:
            return BackendError(str(err), code=ErrorCode.LINK_UNUSABLE)
        return None

    def ask_breaker(self, link: Link) -> BreakerPass:
        """May a call go to `link` now? Closed, or this job is the one probe."""
        breaker = self.services.breaker(link)
        if breaker is None:
            return BreakerPass()
        return BreakerPass(breaker, breaker.ask())

    def take_capacity(self, ctx: StepContext, step: Step, tokens: int | None = None) -> bool:
        """A request (and its estimated tokens) from the link's global bucket, or come back.

        Every call to the backend takes a request — polls too, since the server counts
        them; only creates take tokens (`tokens=None`: estimate them from the input).

        Without capacity the step gives the job back untouched and is re-scheduled after
        the bucket's exact wait; nothing is sent to the backend.
        """
        job, link = ctx.job, ctx.link
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
        self.frame.come_back(ctx, step, got.wait)
        if self.metrics is not None:
            self.metrics.ratelimit_wait(link=link.name, seconds=got.wait)
        log.info("job.rate_limited", job_id=job.id, link=link.name, wait=round(got.wait, 3))
        return False

    def calibrate(self, link: Link, headers: dict[str, str]) -> None:
        """Bring the link's bucket in line with the server's `x-ratelimit-*` headers."""
        limiter = self.services.limiter(link)
        if limiter is not None and headers:
            limiter.calibrate(headers)
