"""The worker's side of fair admission (`runs.fairness`): every worker runs the pump.

Twice a second (the pump thread of `worker.signals`) and each time a start step begins
(its place in the window frees), a worker asks Redis for the next jobs in their tenants'
turn and sends their start messages. Jobs a `fail` budget refuses are ended here with
`budget_exceeded`; a job held by a `wait` budget gets one `job.waiting` event saying
which budget and until when. An ended job gives back its place in flight and settles
its budget reservation as it is published (`Steps.after_publish`).
"""

from __future__ import annotations

import time
from typing import Any

import structlog

from runq.runs import keys
from runq.runs.error_codes import ErrorCode
from runq.runs.events import EventLog
from runq.runs.fairness import Admission
from runq.runs.job import Job, Step, iso_utc
from runq.runs.steps import Steps

log = structlog.get_logger("runq.fairness")

# A worker says how many tasks it runs at once this often (the derived window).
HEARTBEAT_EVERY = 5.0
REASONS = {
    "estimate_exceeds_budget": "its estimate is more than the whole budget",
    "budget_spent": "no room is left in this period",
}


class AdmissionPump:
    """Moves waiting jobs to the Celery `runs` queue in their tenants' turn."""

    def __init__(self, admission: Admission, scheduler: Any, steps: Steps, events: EventLog):
        self.admission = admission
        self.scheduler = scheduler
        self.steps = steps
        self.events = events
        self.slots = 1  # this worker's concurrency, set when it is ready
        self._beat_at = 0.0
        steps.after_publish(self.job_published)

    def tick(self, worker: str) -> int:
        """The pump's turn: say this worker is alive (now and then), then admit."""
        if time.monotonic() - self._beat_at >= HEARTBEAT_EVERY:
            self._beat_at = time.monotonic()
            self.admission.heartbeat(worker, self.slots)
        return self.admit_waiting()

    def admit_waiting(self, started: str = "") -> int:
        """Start the next waiting jobs; end those a `fail` budget refuses; tell a job
        held by a `wait` budget why it waits. Returns how many started. `started`: a job
        whose start step began, which leaves the window first (same Lua call)."""
        result = self.admission.admit(started=started)
        for job_id in result.admitted:
            self._send_start(job_id, result.contexts.get(job_id, {}))
        for job_id, scope, reason in result.refused:
            why = REASONS.get(reason, reason)
            log.info("job.budget_refused", job_id=job_id, budget=scope, reason=reason)
            self.steps.refuse(job_id, ErrorCode.BUDGET_EXCEEDED, f"budget {scope!r}: {why}")
        for lane, until, scope, job_id in result.held:
            # Once per job and hold, not at every look the held tenant gets.
            marker = keys.fair(f"held:{job_id}:{scope}")
            if self.admission.redis.set(marker, 1, nx=True, ex=3600):
                log.info("job.budget_wait", job_id=job_id, tenant=lane, budget=scope)
                self.events.append(
                    job_id,
                    {"type": "job.waiting", "reason": "budget", "budget": scope,
                     "until": iso_utc(until)},
                )  # fmt: skip
        return len(result.admitted)

    def _send_start(self, job_id: str, context: dict[str, Any]) -> None:
        """Send a start with its producer's log context, not the context of the task or
        thread that admitted it (a start step's prerun admits other jobs)."""
        bound = structlog.contextvars.get_contextvars()
        structlog.contextvars.clear_contextvars()
        try:
            structlog.contextvars.bind_contextvars(**context)
            self.scheduler.send(Step.START, job_id, 0)
        finally:
            structlog.contextvars.clear_contextvars()
            structlog.contextvars.bind_contextvars(**bound)

    def job_starting(self, job_id: str) -> None:
        """A start step begins: its place in the window goes to the next waiting job."""
        self.admit_waiting(started=job_id)

    def job_published(self, job: Job) -> None:
        """An ended job gives back its place in flight and settles its reservation (one
        call; a job under no budget holds none, and its release looks for none)."""
        self.admission.release(job.id, spent=self.admission.budgets.spent(job))
