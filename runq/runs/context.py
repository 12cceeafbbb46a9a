"""One job, claimed for one step: the object every part of a step acts on.

The parts of a step (the calls, the gates before them, the stream driver, the
endings) each need the job, the lock owner that proves the claim, and what the job uses
right now: its link in the chain and that link's backend. They get this one object
instead of a job and an `owner` string threaded through every call, and all of them see
the same link and backend, built once per step.

The link is resolved from the worker's configuration by the chain's name and the index
the record keeps: a record never says where to send a request or which key to send.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import structlog

from runq.runs.backends.base import Backend
from runq.runs.chains import MODEL, Chain, Link
from runq.runs.job import Job, Step


class StepContext:
    """The claimed job; built by `StepFrame.claim`, gone when the step returns."""

    def __init__(
        self,
        job: Job,
        owner: str,
        step: Step,
        *,
        cancel_requested: bool,
        backend_for: Callable[[Job, Link], Backend],
        chain_of: Callable[[Job], Chain],
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
        self._chain: Chain | None = None
        self._link: Link | None = None
        self._backend: Backend | None = None

    @property
    def chain(self) -> Chain:
        """The job's chain, from this worker's configuration. The first step writes the
        chain's name into the record, so a job under way keeps its chain even if the
        worker's default chain changes; its links are looked up again every step."""
        if self._chain is None:
            self._chain = self._chain_of(self.job)
            self.job.chain = self._chain.name
        return self._chain

    @property
    def link(self) -> Link:
        """The link in use: the chain's link at the record's `link_index`."""
        if self._link is None:
            self.use_link(self.job.link_index)
        assert self._link is not None
        return self._link

    @property
    def has_next_link(self) -> bool:
        return self.job.link_index + 1 < len(self.chain.links)

    def use_link(self, index: int) -> None:
        """Use link `index` of the chain. A model link decides the backend and model the
        job's requests name (a chain's link is the operator's choice, not the record's)."""
        link = self.chain.link(index)
        self.job.link_index = index
        if link.kind == MODEL:
            self.job.spec.backend = link.backend
            self.job.spec.model = link.model
        self._link = link
        self._backend = None
        structlog.contextvars.bind_contextvars(link=link.name)

    @property
    def backend(self) -> Backend:
        """The backend of the link in use, built on first use (again after a fallback)."""
        if self._backend is None:
            self._backend = self._backend_for(self.job, self.link)
        return self._backend

    @property
    def streams(self) -> bool:
        """Is the job in stream mode (text deltas forwarded while the run goes)?"""
        return self.job.spec.mode == "stream"

    def remaining(self) -> float:
        """Seconds before the job's deadline: `queued_at + deadline - now` (negative: past)."""
        return self.job.timings["queued_at"] + self.job.spec.deadline - time.time()
