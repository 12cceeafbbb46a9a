"""How many safety looks a job made, kept beside its record until the job ends.

A safety look at a run still going (`runs.look_step`) writes no record: no lock, no
commit, no events. The record's `polls` must still say how often the run was looked at
(webhook mode's promise is "zero polls" when the webhooks come), so each look adds one
to the job's field of a shared hash, and the commit that ends the job moves the sum
into `polls`. Until then a reader of the record sees the looks of the job's past waits
only; `RunProgress.safety_interval` adds the pending ones when it spaces the next look.

One field per waiting job, a few bytes; the end deletes it. A job that never ends is
ended by its lease or deadline, so no field outlives its job for long.
"""

from __future__ import annotations

from typing import Any

from runq.runs import keys
from runq.runs.job import Job
from runq.runs.step_config import StepConfig


def waits_for_webhook(job: Job, config: StepConfig) -> bool:
    """Does this job's run end with a webhook? A background response does, in webhook
    mode (the job's, or the worker's for jobs that poll: the deployment receives them)."""
    mode = job.spec.mode
    webhook_mode = mode == "webhook" or (mode == "poll" and config.webhooks)
    return webhook_mode and job.spec.backend == "responses"


class LookCounts:
    """The hash of looks not yet in their jobs' records."""

    def __init__(self, redis: Any) -> None:
        self.redis = redis
        self.key = keys.looks()

    def add(self, job_id: str) -> int:
        """Count one look; returns the job's looks not yet in its record."""
        return int(self.redis.hincrby(self.key, job_id, 1))

    def pending(self, job_id: str) -> int:
        raw = self.redis.hget(self.key, job_id)
        return int(raw) if raw is not None else 0

    def clear(self, job_id: str) -> None:
        self.redis.hdel(self.key, job_id)
