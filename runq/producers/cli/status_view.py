"""What `runq status` shows: the status, how long the job has run, its step, and when
the step is due, so "is it stuck?" has an answer without reading the record.

The first line is the bare status (scripts read `runq status ID | head -1`). When the
next step waits in Redis (`runq:delayed`: waits longer than a few seconds, such as a
slow run's next poll or a backoff), its due time is read with one ZSCORE over the
client's quick reads; a step due sooner is a Celery message already with the workers.
"""

from __future__ import annotations

import time
from typing import Any

from runq.runs import keys
from runq.runs.job import Job, JobStatus, Step, iso_utc


def next_due(reads: Any, job: Job) -> float | None:
    """When the job's due step waits to be sent (epoch seconds), if it waits in Redis."""
    if job.terminal:
        return None
    return reads.zscore(keys.delayed(), f"{job.id}|{job.step}|{job.token}")


def _elapsed(job: Job, now: float) -> float | None:
    queued = job.timings.get("queued_at")
    if queued is None:
        return None
    return max(0.0, job.timings.get("finished_at", now) - queued)


def duration(seconds: float) -> str:
    """`42s`, `3m05s`, `2h10m`, `3d4h`: short enough for a column."""
    s = round(seconds)
    if s < 60:
        return f"{seconds:.1f}s" if seconds < 10 else f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600}h"


def _step(job: Job) -> str:
    parts = [f"attempt {job.attempt}"]
    if job.round:
        parts.append(f"tool round {job.round}")
    if job.step == Step.POLL:
        parts.append(f"{job.polls} poll{'s' if job.polls != 1 else ''} so far")
    return f"{job.step} ({', '.join(parts)})"


def lines(job: Job, due_at: float | None, now: float | None = None) -> list[str]:
    """The lines `runq status` prints."""
    now = time.time() if now is None else now
    out = [str(job.status)]
    elapsed = _elapsed(job, now)
    if elapsed is not None:
        label = "took" if job.terminal else "running for"
        out.append(f"  {label:<12}{duration(elapsed)} (since {iso_utc(job.timings['queued_at'])})")
    if job.terminal:
        if job.error:
            out.append(f"  {'error':<12}{job.error.get('code')}: {job.error.get('message')}")
        return out
    out.append(f"  {'step':<12}{_step(job)}")
    if job.status == JobStatus.WAITING_APPROVAL:  # a person decides (runs.approvals)
        out.append(f"  {'decide':<12}runq approve {job.id}  (lists the calls that wait)")
    if due_at is not None:
        wait = due_at - now
        when = f"in {duration(wait)}" if wait > 0 else f"{duration(-wait)} ago, being sent"
        out.append(f"  {'next':<12}{job.step} {when} ({iso_utc(due_at)})")
    else:
        out.append(f"  {'next':<12}{job.step}: with the workers now (or within seconds)")
    return out


def as_dict(job: Job, due_at: float | None, now: float | None = None) -> dict[str, Any]:
    """`runq status --json`."""
    now = time.time() if now is None else now
    elapsed = _elapsed(job, now)
    return {
        "job_id": job.id,
        "status": job.status,
        "step": job.step,
        "attempt": job.attempt,
        "round": job.round,
        "polls": job.polls,
        "elapsed_s": None if elapsed is None else round(elapsed, 3),
        "next_due_at": None if due_at is None else iso_utc(due_at),
    }
