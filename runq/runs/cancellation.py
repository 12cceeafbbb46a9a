"""Cancellation: how a producer's cancel reaches a job, whatever the job is doing.

A producer raises the job's cancel flag (`runq:cancel:{id}`) and sends the
`runq.jobs.cancel` task. The flag is what every part of a step honours, so a cancel
takes effect even when that task finds the job busy:

- a step that claims the job sees the flag with its claim, and ends the job cancelled
  instead of acting;
- a step that holds the job when the flag goes up learns it at its commit: the commit
  script checks the flag in the same atomic call as the compare-and-set, and refuses to
  write the step's outcome (`CancelRequested`); the step then ends the job cancelled,
  cancelling at the backend the run it may just have created — so a cancel never loses
  a race with a step that ends the job;
- a stream step looks at the flag at least every quarter second while it follows the
  run (`runs.stream_watch`), so a cancel interrupts a stream in progress;
- a tool task looks at it before running its tool (`runs.tool_step`).

Asking is one script too (`cancel_request.lua`): the flag goes up only if the job has
not ended, and the producer learns which, atomically — so a job that ended a moment
before is reported as ended (`JobAlreadyEndedError`), never silently "cancelled".
"""

from __future__ import annotations

from typing import Any

from runq.errors import JobAlreadyEndedError, JobNotFoundError
from runq.runs import keys, lua
from runq.runs.job import TERMINAL, JobStatus
from runq.runs.replies import text

# For a client that runs the script on a connection of its own (the asyncio client).
REQUEST = lua.source("cancel_request")


class CancelRequested(Exception):
    """The job's cancel flag is up: the step must end the job cancelled, not go on.

    Raised by a commit that refused to write a step's outcome, and by a stream step that
    saw the flag mid-stream; `runs.steps.Steps` ends the job. Never leaves the core.
    """


def request_call(job_id: str, flag_ttl: int) -> tuple[list[str], list[Any]]:
    """The request script's keys and arguments for one job."""
    return [keys.job(job_id), keys.cancel(job_id)], [flag_ttl, *sorted(TERMINAL)]


def outcome(job_id: str, reply: Any) -> str:
    """What the request script's reply means for the producer: the status the job was
    in (`cancelled` when it had been cancelled already: a repeated cancel is harmless),
    `JobAlreadyEndedError` when it succeeded or failed first, `JobNotFoundError`."""
    kind, status = (text(part) for part in reply)
    if kind == "missing":
        raise JobNotFoundError(job_id)
    if kind == "ended" and status != JobStatus.CANCELLED:
        raise JobAlreadyEndedError(job_id, status)
    return status
