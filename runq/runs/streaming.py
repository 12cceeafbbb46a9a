"""Stream mode: text deltas reach the job's events while the run is still going.

Three protocols, three shapes:

- **Responses** streams can be resumed (`starting_after=N`): a separate `stream` step
  follows the background run and, after a crash, picks up after the last
  `sequence_number` it forwarded.
- **Assistants** runs stream only from the request that creates them (or submits their
  tool outputs) and cannot be resumed: the run's handle is committed the moment the
  stream announces it, with `poll` due, while the stream goes on; if the worker dies,
  the sweeper re-drives that poll — streaming falls back to polling.
- **Chat** turns are one streamed request with no server state: a turn cut by a crash is
  asked again without streaming, so no text is forwarded twice.

Every delta is written with its position in one transaction (`JobStore.forward_delta`),
and the step renews its short job lock as deltas arrive.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import structlog

from runq.errors import BackendError
from runq.runs.backends.base import Backend, RunState, StreamsRequests
from runq.runs.job import Job, JobStatus, Step
from runq.runs.outcomes import Outcome
from runq.runs.store import JobStore

if TYPE_CHECKING:
    from runq.runs.steps import StepConfig

log = structlog.get_logger("runq.steps")


class Streaming:
    """Mixed into `Steps`."""

    store: JobStore
    config: StepConfig
    backend_for: Callable[[Job], Backend]

    if TYPE_CHECKING:  # provided by Endings and Steps

        def _take_capacity(
            self, job: Job, owner: str, link: Any, step: Step, tokens: int | None = None
        ) -> bool: ...

        def _link(self, job: Job) -> Any: ...

        def _on_error(
            self,
            job: Job,
            owner: str,
            err: BackendError,
            step: Step,
            *,
            events: list[dict[str, Any]] | None = None,
            run_ended: bool = False,
        ) -> str: ...

        def _after_state(
            self, job: Job, owner: str, state: RunState, events: list[dict[str, Any]]
        ) -> str: ...

    def _forwarder(self, job: Job, owner: str, position: str) -> Callable[[int, str], None]:
        """A delta sink that also keeps the job's short lock alive."""
        renew_every = self.config.stream_lock_seconds / 3
        renewed = time.monotonic()

        def on_delta(seq: int, delta: str) -> None:
            nonlocal renewed
            self.store.forward_delta(job.id, position, seq, delta)
            if time.monotonic() - renewed > renew_every:
                self.store.extend_lock(job.id, owner, self.config.lock_seconds)
                renewed = time.monotonic()

        return on_delta

    def _stream(self, job: Job, owner: str) -> str:
        """Follow the run's stream, forwarding text deltas; resume after the last one seen.

        The stream holds a worker slot while it runs (that is what buys the latency), and
        renews the job's short lock as events arrive; if the worker dies, the lock lapses
        within seconds and the redelivered step resumes from the stored sequence number.
        """
        if not self._take_capacity(job, owner, self._link(job), Step.STREAM, tokens=0):
            return Outcome.RATE_LIMITED
        backend = self.backend_for(job)
        follows = backend.streaming().follows_runs
        run_id = job.handle.get("response_id", "")
        on_delta = self._forwarder(job, owner, run_id)
        try:
            after = self.store.stream_position(job.id, run_id)
            state = follows.stream(job, after, on_delta) if follows is not None else None
            if state is None:
                state = backend.retrieve(job)
        except BackendError as err:
            return self._on_error(job, owner, err, Step.STREAM)
        return self._after_state(job, owner, state, [])

    def _turn_backend(self, job: Job) -> Backend:
        """The job's backend; for a protocol whose turn is one request (Chat), streamed.

        Such a stream cannot be resumed: if this very turn already streamed some deltas
        (its worker died), it is asked again without streaming, so no text is repeated.
        """
        backend = self.backend_for(job)
        turns = backend.streaming().streams_turns
        if job.spec.mode != "stream" or turns is None:
            return backend
        turn = f"turn:{job.link_index}:{job.round}:{job.attempt}"
        if self.store.stream_position(job.id, turn) is not None:
            return backend
        return turns.streaming_turns(
            lambda seq, delta: self.store.forward_delta(job.id, turn, seq, delta)
        )

    def _start_streaming(
        self, job: Job, owner: str, backend: StreamsRequests, events: list[dict[str, Any]]
    ) -> str:
        """Create an Assistants run as a stream; hand its handle over before anything else."""
        position = f"run:{job.link_index}:{job.round}:{job.attempt}"

        def on_created(handle: dict[str, str]) -> bool:
            job.handle.update(handle)
            job.mark("run_created_at")
            log.info("job.run_created", job_id=job.id, attempt=job.attempt, **handle)
            announced = [*events, {"type": "run.created", **handle, "attempt": job.attempt}]
            events.clear()
            return self._hand_over_to_poll(job, announced)

        try:
            state = backend.start_stream(job, on_created, self._forwarder(job, owner, position))
            if state is None and job.handle:
                state = self.backend_for(job).retrieve(job)
        except BackendError as err:
            return self._on_error(job, owner, err, Step.POLL if job.handle else Step.START)
        if state is None:
            self.store.release(job.id, owner)
            return Outcome.STALE
        return self._after_state(job, owner, state, events)

    def _submit_streaming(
        self,
        job: Job,
        owner: str,
        requests: StreamsRequests,
        backend: Backend,
        pairs: list[tuple[str, str]],
        done: list[dict[str, Any]],
    ) -> str:
        """Submit a round's outputs as a stream; polling takes over if the worker dies."""
        job.tool_calls.extend(done)
        job.pending_calls = []
        job.move(JobStatus.RUNNING)
        if not self._hand_over_to_poll(
            job, [{"type": "job.status", "status": JobStatus.RUNNING, "round": job.round}]
        ):
            return Outcome.CONFLICT
        position = f"run:{job.link_index}:{job.round}:{job.attempt}:submit"
        try:
            state = requests.submit_stream(job, pairs, self._forwarder(job, owner, position))
            if state is None:
                state = backend.retrieve(job)
        except BackendError as err:
            return self._on_error(job, owner, err, Step.POLL)
        return self._after_state(job, owner, state, [])

    def _hand_over_to_poll(self, job: Job, events: list[dict[str, Any]]) -> bool:
        """Commit with `poll` due and a lease, keeping the lock: the stream goes on, and
        if this worker dies the sweeper polls the run instead."""
        job.due(Step.POLL)
        lease = time.time() + self.config.lock_seconds + self.config.lease_grace
        return self.store.commit(job, events, owner="", lease_until=lease)
