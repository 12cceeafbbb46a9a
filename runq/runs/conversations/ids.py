"""Conversation ids: what a job's spec says about the conversation it takes turns on.

Kept apart from the record and its store (`record`), which need redis-py: the job store
reads these when it creates a job, and `runq status` reads the store without redis-py.
"""

from __future__ import annotations

import re
import uuid

from runq.runs.job import JobSpec

PREFIX = "rqc_"

# The conversation a job begins when it names none: the job's id says where its turn is.
_FIRST_JOB = re.compile(r"rqc_(job_[0-9a-f]{32})")


def new_conversation_id() -> str:
    return PREFIX + uuid.uuid4().hex


def of_job(job_id: str) -> str:
    """The conversation a job begins when it names none and continues none."""
    return PREFIX + job_id


def turns_on(job_id: str, spec: JobSpec) -> str | None:
    """The conversation (or thread) a job takes turns on, as its spec names it: a runq
    conversation it continues, an Assistants thread, or a backend conversation. None for
    a job that names none or begins its own (`of_job`: the jobs after it wait for its
    end instead); a continuation learns its conversation at its start (`runs.gates`)."""
    own = spec.conversation is not None and spec.conversation == of_job(job_id)
    return (None if own else spec.conversation) or spec.thread_id or spec.conversation_id


def first_job_of(conversation_id: str | None) -> str | None:
    """The job that began `conversation_id` on its own (`of_job`), or None: while no
    later job has continued it, that job's record is where its turn is."""
    found = _FIRST_JOB.fullmatch(conversation_id or "")
    return found.group(1) if found else None
