"""Stream mode: text deltas reach the job's events while the run is still going.

Three protocols, three shapes (each backend says which is its own, `Backend.streaming`):

- **Responses** streams can be resumed (`starting_after=N`): a separate `stream` step
  follows the background run and, after a crash, picks up after the last
  `sequence_number` it forwarded.
- **Assistants** runs stream only from the request that creates them (or submits their
  tool outputs) and cannot be resumed: the run's handle is committed the moment the
  stream announces it, with `poll` due, while the stream goes on; if the worker dies,
  the sweeper re-drives that poll — streaming falls back to polling.
- **Chat** turns are one streamed request with no server state: a turn cut by a crash is
  asked again without streaming, so no text is forwarded twice.

Every delta is written with its position in one transaction (`JobStore.forward_delta`).
The blocking read happens in a reader thread while the step keeps watch
(`runs.stream_watch`): it renews its short job lock on its own schedule, and looks at
the job's cancel flag at least every quarter second, so a cancel interrupts a stream at
once — on every protocol, even while the run has not sent an event for a while.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import structlog

from runq.errors import BackendError
from runq.runs.backends.base import Backend, DeltaSink, RunState, StreamsRequests
from runq.runs.context import StepContext
from runq.runs.endings import Endings
from runq.runs.frame import StepFrame
from runq.runs.gates import Gates
from runq.runs.job import JobStatus, Step
from runq.runs.outcomes import Outcome
from runq.runs.run_progress import RunProgress
from runq.runs.step_config import StepConfig
from runq.runs.store import JobStore
from runq.runs.stream_watch import StreamWatch

log = structlog.get_logger("runq.steps")


class StreamDriver:
    """Drives the calls of stream-mode jobs, forwarding their text deltas."""

    def __init__(
        self,
        frame: StepFrame,
        store: JobStore,
        gates: Gates,
        endings: Endings,
        progress: RunProgress,
        config: StepConfig,
    ) -> None:
        self.frame = frame
        self.store = store
        self.gates = gates
        self.endings = endings
        self.progress = progress
        self.config = config

    def stream(self, ctx: StepContext) -> str:
        """The `stream` step: follow the run, forwarding text deltas; resume after the last.

        The stream holds a worker slot while it runs (that is what buys the latency) and
        keeps renewing the job's short lock; if the worker dies, the lock lapses within
        seconds and the redelivered step resumes from the stored sequence number. A
        cancel ends it within a quarter second (`CancelRequested`, see `runs.steps`).
        """
        if not self.gates.take_capacity(ctx, Step.STREAM, tokens=0):
            return Outcome.RATE_LIMITED
        job, backend = ctx.job, ctx.backend
        follows = backend.streaming().follows_runs
        run_id = job.handle.get("response_id", "")
        try:
            after = self.store.stream_position(job.id, run_id)
            state = None
            # A backend that cannot follow a run (the chain moved on) is simply polled.
            if follows is not None:
                watch = self._watch(ctx)
                on_delta = watch.on_step_thread(self._forwarder(ctx, run_id))
                state = watch.run(lambda: follows.stream(job, after, on_delta))
            if state is None:
                state = backend.retrieve(job)
        except BackendError as err:
            return self.endings.on_error(ctx, err, Step.STREAM)
        return self.progress.after_state(ctx, state, [])

    def turn(self, ctx: StepContext, call: Callable[[Backend], RunState]) -> RunState:
        """`call(backend)`: one model turn. For a protocol whose turn is one request
        (Chat), in stream mode, the turn streams, under watch.

        Such a stream cannot be resumed: if this very turn already streamed some deltas
        (its worker died), it is asked again without streaming, so no text is repeated.
        """
        job, backend = ctx.job, ctx.backend
        turns = backend.streaming().streams_turns
        if not ctx.streams or turns is None:
            return call(backend)
        position = f"turn:{job.link_index}:{job.round}:{job.attempt}"
        if self.store.stream_position(job.id, position) is not None:
            return call(backend)
        watch = self._watch(ctx)
        streamed = turns.streaming_turns(watch.on_step_thread(self._forwarder(ctx, position)))
        return watch.run(lambda: call(streamed))

    def start(
        self, ctx: StepContext, requests: StreamsRequests, events: list[dict[str, Any]]
    ) -> str:
        """Create an Assistants run as a stream; hand its handle over before anything else."""
        job = ctx.job
        position = f"run:{job.link_index}:{job.round}:{job.attempt}"

        def on_created(handle: dict[str, str]) -> bool:
            job.handle.update(handle)
            job.mark("run_created_at")
            log.info("job.run_created", job_id=job.id, attempt=job.attempt, **handle)
            announced = [*events, {"type": "run.created", **handle, "attempt": job.attempt}]
            events.clear()
            return self.frame.hand_over_to_poll(ctx, announced)

        watch = self._watch(ctx)
        on_delta = watch.on_step_thread(self._forwarder(ctx, position))
        created = watch.on_step_thread(on_created)
        try:
            state = watch.run(lambda: requests.start_stream(job, created, on_delta))
            if state is None and job.handle:
                state = ctx.backend.retrieve(job)
        except BackendError as err:
            return self.endings.on_error(ctx, err, Step.POLL if job.handle else Step.START)
        if state is None:
            self.frame.release(ctx)
            return Outcome.STALE
        return self.progress.after_state(ctx, state, events)

    def submit(
        self,
        ctx: StepContext,
        requests: StreamsRequests,
        pairs: list[tuple[str, str]],
        done: list[dict[str, Any]],
    ) -> str:
        """Submit a round's outputs as a stream; polling takes over if the worker dies."""
        job = ctx.job
        job.tool_calls.extend(done)
        job.pending_calls = []
        job.move(JobStatus.RUNNING)
        status = {"type": "job.status", "status": JobStatus.RUNNING, "round": job.round}
        if not self.frame.hand_over_to_poll(ctx, [status]):
            return Outcome.CONFLICT
        position = f"run:{job.link_index}:{job.round}:{job.attempt}:submit"
        watch = self._watch(ctx)
        on_delta = watch.on_step_thread(self._forwarder(ctx, position))
        try:
            state = watch.run(lambda: requests.submit_stream(job, pairs, on_delta))
            if state is None:
                state = ctx.backend.retrieve(job)
        except BackendError as err:
            return self.endings.on_error(ctx, err, Step.POLL)
        return self.progress.after_state(ctx, state, [])

    def _forwarder(self, ctx: StepContext, position: str) -> DeltaSink:
        """A delta sink writing each delta with its position (run on the step's thread)."""
        job_id = ctx.job.id

        def on_delta(seq: int, delta: str) -> None:
            self.store.forward_delta(job_id, position, seq, delta)

        return on_delta

    def _watch(self, ctx: StepContext) -> StreamWatch:
        """A watch for one stream of the step: the job's cancel flag, and its lock renewed
        every third of the step's lock time, so it never lapses while the stream goes and
        lapses within that time once its worker is gone."""
        job_id = ctx.job.id
        return StreamWatch(
            job_id,
            cancelled=lambda: self.store.cancel_requested(job_id),
            renew=lambda: self.frame.keep_holding(ctx),
            renew_every=self.frame.lock_time(ctx.step) / 3,
        )
