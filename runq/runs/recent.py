"""Recent jobs, newest first: what `runq jobs`, `Client.jobs` and `GET /v1/jobs` list.

The job store adds every new job to two sorted sets scored by creation time, in the
same Lua call that writes its record (`store_create.lua`): one for every job and one
for the job's tenant. Records expire (`result_expires` after they end) and the indexes
keep an entry longer, so a reader meets ids whose record is gone: it skips them and
removes them from the index it read, so the next reader does not pay for them again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from runq.runs import keys
from runq.runs.job import Job, JobStatus, iso_utc
from runq.runs.replies import text
from runq.runs.store import load_record

PREVIEW_CHARS = 60
# One listing reads at most this many index entries, so a filter that matches nothing
# costs a bounded number of reads however many jobs there are.
SCAN_LIMIT = 5000
STATUSES = tuple(status.value for status in JobStatus)


@dataclass(frozen=True)
class JobSummary:
    """One line of a job listing: who, what, how far, answered by what."""

    job_id: str
    status: str
    created_at: float | None
    backend: str
    model: str
    source: str | None
    tenant: str | None
    step: str
    input: str  # the first words of the input

    @classmethod
    def of(cls, job: Job) -> JobSummary:
        return cls(
            job_id=job.id,
            status=str(job.status),
            created_at=job.timings.get("queued_at"),
            backend=job.spec.backend,
            model=job.spec.model,
            source=job.source,
            tenant=job.spec.tenant,
            step=str(job.step),
            input=input_preview(job.spec.input),
        )

    def age(self, now: float | None = None) -> float | None:
        """Seconds since the job was submitted."""
        if self.created_at is None:
            return None
        return max(0.0, (time.time() if now is None else now) - self.created_at)

    def to_dict(self) -> dict[str, Any]:
        """Plain data, the creation moment as ISO 8601 UTC (as a result's timings)."""
        return {
            "job_id": self.job_id,
            "status": self.status,
            "created_at": None if self.created_at is None else iso_utc(self.created_at),
            "backend": self.backend,
            "model": self.model,
            "source": self.source,
            "tenant": self.tenant,
            "step": self.step,
            "input": self.input,
        }


def input_preview(given: str | list[dict[str, Any]], width: int = PREVIEW_CHARS) -> str:
    """The first words of a job's input on one line: the text, or the last message's."""
    if isinstance(given, list):
        given = next((_message_text(item) for item in reversed(given) if _message_text(item)), "")
    words = " ".join(str(given).split())
    if len(words) <= width:
        return words
    cut = words[: width - 1]
    if " " in cut:  # end at a word's end
        cut = cut.rsplit(" ", 1)[0]
    return cut + "…"


def _message_text(item: dict[str, Any]) -> str:
    content = item.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p.get("text", "") for p in content if isinstance(p, dict)]
        return " ".join(part for part in parts if isinstance(part, str))
    return ""


def recent_jobs(
    redis: Any, *, limit: int = 20, status: str | None = None, tenant: str | None = None
) -> list[JobSummary]:
    """Up to `limit` jobs, newest first, of `tenant` (None: every job), with `status`."""
    if status is not None and status not in STATUSES:
        raise ValueError(f"unknown status {status!r}; choose one of {', '.join(STATUSES)}")
    if limit < 1:
        raise ValueError(f"limit must be at least 1 (got {limit})")
    index = keys.tenant_jobs(tenant) if tenant else keys.jobs_index()
    found: list[JobSummary] = []
    seen: set[str] = set()
    start, scanned = 0, 0
    batch = limit if status is None else max(limit * 4, 100)
    while len(found) < limit and scanned < SCAN_LIMIT:
        ids = [text(i) for i in redis.zrevrange(index, start, start + batch - 1)]
        if not ids:
            break
        scanned += len(ids)
        gone = []
        for job_id, raw in zip(ids, redis.mget([keys.job(i) for i in ids]), strict=True):
            if raw is None:
                gone.append(job_id)
                continue
            if job_id in seen:  # a job submitted meanwhile moved the ranks down
                continue
            seen.add(job_id)
            job = load_record(job_id, raw)
            if status is None or job.status == status:
                found.append(JobSummary.of(job))
        if gone:
            redis.zrem(index, *gone)
        start += len(ids) - len(gone)  # removing entries moved the later ones up
    return found[:limit]
