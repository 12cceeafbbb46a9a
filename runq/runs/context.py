"""One job, claimed for one step: the object every part of a step acts on.

The parts of a step (the calls, the gates before them, the stream driver, the
endings) each need the job, the lock owner that proves the claim, and what the job uses
right now: its link in the chain and that link's backend. They get this one object
instead of a job and an `owner` string threaded through every call, and all of them see
the same link and backend, built once per step.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from runq.runs.backends.base import Backend
from runq.runs.chains import MODEL, Link
from runq.runs.job import Job, JobSpec, Step


class StepContext:
    """The claimed job; built by `StepFrame.claim`, gone when the step returns."""

    def __init__(
        self,
        job: Job,
        owner: str,
        step: Step,
        *,
        cancel_requested: bool,
        backend_for: Callable[[Job], Backend],
        chain_of: Callable[[JobSpec], list[Link]],
    ) -> None:
        self.job = job
        self.owner = owner  # the job lock's owner: commits and releases prove the claim
        self.step = step
        self.cancel_requested = cancel_requested
        # The status in the record as claimed: a step whose commit the cancel flag refused
        # ends the job from here, since nothing it decided was written.
        self.claimed_status = job.status
        self._backend_for = backend_for
        self._chain_of = chain_of
        self._link: Link | None = None
        self._backend: Backend | None = None

    @property
    def link(self) -> Link:
        """The link in use. A job's first step copies its chain's links into the record,
        so a change of configuration never moves a job that is under way."""
        if self._link is None:
            if not self.job.links:
                self.job.links = [link.to_dict() for link in self._chain_of(self.job.spec)]
                self.use_link(0)
            else:
                self._link = Link.from_dict(self.job.links[self.job.link_index])
        assert self._link is not None
        return self._link

    @property
    def has_next_link(self) -> bool:
        return self.job.link_index + 1 < len(self.job.links)

    def use_link(self, index: int) -> None:
        """Move to link `index` of the chain; a model link names the backend and model."""
        link = Link.from_dict(self.job.links[index])
        self.job.link_index = index
        if link.kind == MODEL:
            self.job.spec.backend = link.backend
            self.job.spec.model = link.model
        self._link = link
        self._backend = None

    @property
    def backend(self) -> Backend:
        """The backend of the link in use, built on first use (again after a fallback)."""
        if self._backend is None:
            self._backend = self._backend_for(self.job)
        return self._backend

    @property
    def streams(self) -> bool:
        """Is the job in stream mode (text deltas forwarded while the run goes)?"""
        return self.job.spec.mode == "stream"

    def remaining(self) -> float:
        """Seconds before the job's deadline: `queued_at + deadline - now` (negative: past)."""
        return self.job.timings["queued_at"] + self.job.spec.deadline - time.time()
