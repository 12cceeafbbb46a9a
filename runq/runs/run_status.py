"""The statuses of a run at a backend, in words every protocol's adapter maps to.

Apart from `runs.backends` so that `runs.classify` (which the adapters import) can read
them too.
"""

from __future__ import annotations

from enum import StrEnum


class RunStatus(StrEnum):
    """A run's status, the same words whatever protocol drives it.

    Adapters map their protocol's statuses to these (Assistants' `requires_action` and a
    completed Responses run with function calls are both `requires_tools`); a status the
    server invents later is passed through as it is and ends the run as a failure.
    """

    QUEUED = "queued"
    IN_PROGRESS = "in_progress"
    REQUIRES_TOOLS = "requires_tools"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    INCOMPLETE = "incomplete"
    EXPIRED = "expired"
