"""What a step did, as `Steps.run` reports it to its task (for the log line and tests).

A step that ended the job reports the job's new status instead (`succeeded`,
`cancelled`...), and one that failed it the error code it failed with.
"""

from __future__ import annotations

from enum import StrEnum


class Outcome(StrEnum):
    """A step's report when the job goes on (or the step found nothing to do)."""

    # Nothing was done.
    NOT_FOUND = "not_found"  # no record: the job expired or never existed
    BUSY = "busy"  # another task holds the job: this step comes back when its lock ends
    STALE = "stale"  # the record has moved on: a duplicate or redelivered task
    CONFLICT = "conflict"  # the record changed under the step: its commit was refused
    # The job waits, on purpose, and the step comes back later.
    WAITING_TURN = "waiting_turn"  # another job has the conversation
    BREAKER_WAIT = "breaker_wait"  # the only link's breaker is open
    RATE_LIMITED = "rate_limited"  # the link's bucket is empty
    # The job moved on.
    WAITING = "waiting"  # the run is going: a poll is due
    STREAMING = "streaming"  # the run is going: a stream step follows it
    TOOLS = "tools"  # a tool round was dispatched
    RETRYING = "retrying"
    FALLING_BACK = "falling_back"
    CANCELLED = "cancelled"
    PUBLISHED = "published"  # the finish: the ended job's result is out
