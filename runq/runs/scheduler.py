"""How the core asks for future work without knowing Celery.

The worker implements it with Celery messages (`worker.runtime.CeleryScheduler`); the
core's unit tests with a list that records what was asked.
"""

from __future__ import annotations

from typing import Protocol

from runq.runs.job import Job, Step


class Scheduler(Protocol):
    def schedule(self, step: Step, job_id: str, token: int, countdown: float) -> None:
        """Run `step` of the job, carrying `token`, `countdown` seconds from now."""

    def dispatch_tools(self, job: Job, token: int) -> None:
        """Run every pending call of the job's tool round, each as its own task."""

    def publish_result(self, job: Job) -> None:
        """Put the ended job's result where any producer can read it by the job id."""

    def result_entry(self, job: Job) -> tuple[str, str, int] | None:
        """The ended job's result as `publish_result` would write it, `(key, value, TTL
        in seconds, 0 for none)`, for the commit that ends the job to write with it; None
        when the result backend is not the job store's Redis (then `publish_result`)."""
