"""Processing batches off the request path: one asyncio task per batch, never two.

``POST /v1/batches`` stores a :class:`~runq.sandbox.engine.batches.BatchRecord` and
hands it to :meth:`BatchRunner.start`, which answers at once. The batch's task then
walks it through its statuses on the completion-time model of
:class:`~runq.sandbox.engine.batches.BatchTiming`: validate the input file, answer one
line at a time at its planned moment, finalize (write the output and error files).

Each line is answered by the same code that answers a live request: the API layer
passes an :data:`Answerer` (``(url, body) -> (status_code, body)``), so the engine
never duplicates a protocol.

Never processed twice: a batch is claimed by writing this runner's ``boot`` id in its
``processor`` field before its task starts (on the event loop, so no two starts
interleave), and a start for a batch this runner has claimed does nothing. Its progress
(``answered``) is in the record, so a batch left unfinished by another process (a
restored snapshot) is taken over where it stopped, never from its first line again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from runq.sandbox.engine.batches import (
    BatchRecord,
    BatchTiming,
    add_usage,
    answered_line,
    jsonl,
    parse_input,
    unexecuted_line,
)
from runq.sandbox.engine.file_objects import FileRecord
from runq.sandbox.engine.ids import new_id

if TYPE_CHECKING:  # the state holds the runner: no import at run time
    from runq.sandbox.engine.state import SandboxState

log = logging.getLogger("sandbox")

# Async: a line may run code in a container (the code interpreter), as a live request does.
Answerer = Callable[[str, dict[str, Any]], Awaitable[tuple[int, dict[str, Any]]]]
ModelCheck = Callable[[str], bool]

EXPIRED_MESSAGE = "This request could not be executed before the completion window expired."
CANCELLED_MESSAGE = "This request was not executed: the batch was cancelled first."


class BatchRunner:
    """Owns the tasks that process batches; one per batch, claimed in its record."""

    def __init__(self) -> None:
        self.boot = new_id("runner")
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._wake: dict[str, asyncio.Event] = {}

    def reset(self) -> None:
        """Stop every batch's processing (``POST /sandbox/reset`` forgets the batches)."""
        for task in self._tasks.values():
            task.cancel()
        self._tasks.clear()
        self._wake.clear()

    def start(
        self, state: SandboxState, rec: BatchRecord, answer: Answerer, serves: ModelCheck
    ) -> None:
        """Process ``rec`` in the background unless it has ended or is already ours."""
        if rec.is_terminal() or rec.processor == self.boot:
            return
        rec.processor = self.boot  # the claim, before any await
        self._wake[rec.id] = asyncio.Event()
        task = asyncio.get_running_loop().create_task(self._process(state, rec, answer, serves))
        self._tasks[rec.id] = task
        task.add_done_callback(lambda _: self._forget(rec.id, task))

    def wake(self, batch_id: str) -> None:
        """Interrupt a batch's wait (its cancel was asked)."""
        event = self._wake.get(batch_id)
        if event is not None:
            event.set()

    def _forget(self, batch_id: str, task: asyncio.Task[None]) -> None:
        if self._tasks.get(batch_id) is task:
            del self._tasks[batch_id]
            self._wake.pop(batch_id, None)
        if not task.cancelled() and task.exception() is not None:
            log.error("sandbox: batch %s stopped: %r", batch_id, task.exception())

    async def _sleep_until(self, rec: BatchRecord, moment: float) -> None:
        """Wait until ``moment``, or less if the batch's cancel is asked meanwhile."""
        delay = moment - time.time()
        event = self._wake.get(rec.id)
        if delay <= 0 or event is None:
            await asyncio.sleep(0)  # let the loop breathe between lines
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout=delay)

    async def _process(
        self, state: SandboxState, rec: BatchRecord, answer: Answerer, serves: ModelCheck
    ) -> None:
        timing = BatchTiming.from_config(state.config)
        if rec.status == "validating":
            await self._sleep_until(rec, min(rec.created_at + timing.validating, rec.expires_at))
            if rec.status == "validating":
                self._validate(state, rec, serves)
        if rec.status == "in_progress":
            await self._answer_lines(state, rec, answer, timing)
        if rec.status == "finalizing":
            assert rec.finalizing_at is not None
            await asyncio.sleep(max(0.0, rec.finalizing_at + timing.finalizing - time.time()))
            self._end(state, rec, "completed")
        if rec.status == "cancelling":
            assert rec.cancelling_at is not None
            await asyncio.sleep(max(0.0, rec.cancelling_at + timing.finalizing - time.time()))
            self._end(state, rec, "cancelled")

    def _validate(self, state: SandboxState, rec: BatchRecord, serves: ModelCheck) -> None:
        source = state.store.files.get(rec.input_file_id)
        if source is None:  # deleted since the create checked it
            rec.errors = [
                {
                    "code": "file_not_found",
                    "message": f"The input file {rec.input_file_id!r} no longer exists.",
                    "param": "input_file_id",
                    "line": None,
                }
            ]
            self._end(state, rec, "failed")
            return
        lines, problems, model = parse_input(source.data, rec.endpoint, serves)
        if problems:
            rec.errors = problems
            self._end(state, rec, "failed")
            return
        rec.lines, rec.model = lines, model
        if time.time() >= rec.expires_at:
            self._end(state, rec, "expired")  # every line reported as never run
            return
        rec.status, rec.in_progress_at = "in_progress", time.time()

    async def _answer_lines(
        self, state: SandboxState, rec: BatchRecord, answer: Answerer, timing: BatchTiming
    ) -> None:
        assert rec.in_progress_at is not None
        total = len(rec.lines)
        span = timing.in_progress(total)
        while rec.answered < total:
            due = rec.in_progress_at + span * (rec.answered + 1) / total
            await self._sleep_until(rec, min(due, rec.expires_at))
            if rec.status != "in_progress":
                return  # cancelling
            if time.time() >= rec.expires_at:
                self._end(state, rec, "expired")
                return
            await self._answer_line(rec, answer)
        await self._sleep_until(rec, min(rec.in_progress_at + span, rec.expires_at))
        if rec.status == "in_progress":
            rec.status, rec.finalizing_at = "finalizing", time.time()

    async def _answer_line(self, rec: BatchRecord, answer: Answerer) -> None:
        line = rec.lines[rec.answered]
        try:
            status_code, body = await answer(rec.endpoint, dict(line.body))
        except Exception as exc:  # a bug answering one line must not stop the batch
            log.exception("sandbox: batch %s line %d", rec.id, line.line)
            status_code = 500
            body = {"error": {"message": f"The sandbox had an internal error: {exc!r}",
                              "type": "server_error", "param": None, "code": None}}  # fmt: skip
        entry = answered_line(line.custom_id, status_code, body)
        if status_code == 200:
            rec.outputs.append(entry)
            add_usage(rec.usage, body)
        else:
            rec.failures.append(entry)
        rec.answered += 1

    def _end(self, state: SandboxState, rec: BatchRecord, status: str) -> None:
        """Reach a terminal status: write the result files, count it, announce it."""
        now = time.time()
        code, message = {
            "expired": ("batch_expired", EXPIRED_MESSAGE),
            "cancelled": ("batch_cancelled", CANCELLED_MESSAGE),
        }.get(status, ("", ""))
        if code:
            for line in rec.lines[rec.answered :]:
                rec.failures.append(unexecuted_line(line.custom_id, code, message))
        if status != "failed":
            rec.output_file_id = _write(state, rec, "output", rec.outputs, now)
            rec.error_file_id = _write(state, rec, "error", rec.failures, now)
        rec.status = status
        setattr(rec, f"{status}_at", now)
        counts = rec.request_counts()
        state.stats.count_batch(status, Counter(counts))
        announce_batch_end(state, rec)
        log.info("sandbox: batch %s %s %s", rec.id, status, counts)


def _write(
    state: SandboxState, rec: BatchRecord, kind: str, lines: list[dict[str, Any]], now: float
) -> str | None:
    """Store one result file (none when it would be empty, as OpenAI does)."""
    if not lines:
        return None
    record = FileRecord(
        new_id("file"), f"{rec.id}_{kind}.jsonl", "batch_output", int(now), jsonl(lines)
    )
    state.store.files[record.id] = record
    return record.id


def announce_batch_end(state: SandboxState, rec: BatchRecord) -> None:
    """The one place a batch's end becomes a ``batch.<status>`` webhook event."""
    ended_at = getattr(rec, f"{rec.status}_at")
    state.webhooks.emit(f"batch.{rec.status}", {"id": rec.id}, ended_at)
