"""How a job's conversation history goes with its run, and what the run adds to it.

Two moments of a job, both on the step that holds it:

- `prepare`, before a run is created on a link (the first link, a retry's fresh run,
  a fallback's next link): if the link has a backend handle that covers the whole
  conversation (the Responses model that answered the last turn, the Assistants
  server whose thread holds every turn), the run continues through it (`native`,
  cheap); otherwise the history is replayed in the request (`replayed`, N turns, after
  the truncation policy). The choice is the job's `history`, which the result shows.
- `settle`, when the job succeeded: the user's turn and the answer are appended to the
  record, and the handle of the link that answered is recorded for that link. The
  record is not written here but by the commit that ends the job (`Endings._end`, see
  `runs.store.EndingWrites`): a cancel that refuses the end leaves no turn behind.

A job that names no conversation and continues none begins `rqc_<job id>` and writes no
record at all (no Redis command): its job record holds the turn, and the record is built
from it when a later job continues the conversation (`record.from_first_job`). A job
that is part of a conversation (named, continued, imported) writes the record.

Jobs on one conversation take turns (`runs.gates`: its turn lock; a conversation's
first job holds none, and every later job waits for it to end), so a record is read
and written by one job at a time.
"""

from __future__ import annotations

from typing import Any

import redis
import structlog

from runq.config.settings import Settings
from runq.errors import InvalidJobError
from runq.runs.chains import MODEL, Link
from runq.runs.context import StepContext
from runq.runs.conversations import replay
from runq.runs.conversations.ids import first_job_of, of_job
from runq.runs.conversations.record import Conversation, ConversationStore, link_key
from runq.runs.conversations.truncation import TruncationPolicy, window
from runq.runs.job import Job

log = structlog.get_logger("runq.conversations")

NATIVE, REPLAYED, NONE = "native", "replayed", "none"


def key_of(link: Link) -> str:
    return link_key(link.backend, link.model, link.base_url)


def handle_of(job: Job, link: Link) -> dict[str, Any] | None:
    """The backend handle that, after this job, holds the whole conversation."""
    if link.backend == "responses" and job.handle.get("response_id"):
        return {"response_id": job.handle["response_id"]}
    if link.backend == "assistants" and job.handle.get("thread_id"):
        return {"thread_id": job.handle["thread_id"]}
    return None  # chat keeps nothing at the server


def report(history: dict[str, Any] | None) -> dict[str, Any] | None:
    """What a result says of the history: `{carried, items, truncated}`."""
    if history is None:
        return None
    return {k: history[k] for k in ("carried", "items", "truncated") if k in history}


class ConversationHistory:
    def __init__(self, store: ConversationStore, policy: TruncationPolicy) -> None:
        self.store = store
        self.policy = policy

    def _record(self, job: Job) -> Conversation | None:
        spec = job.spec
        assert spec.conversation is not None
        record = self.store.get(spec.conversation)
        if record is not None and record.tenant != spec.tenant:
            # Another tenant's conversation is not this job's to read or extend.
            raise InvalidJobError("conversation", f"no conversation {spec.conversation!r}")
        if record is None and first_job_of(spec.conversation) is not None:
            # Its one turn was kept in the job that began it, and that record is gone:
            # going on without it would silently forget the turn.
            raise InvalidJobError(
                "conversation",
                f"{spec.conversation!r} ended with the record of the job that began it "
                "(job records expire with their results)",
            )
        return record

    def prepare(self, ctx: StepContext) -> None:
        job, spec = ctx.job, ctx.job.spec
        if spec.conversation is None:
            spec.conversation = of_job(job.id)  # the first job of a conversation
        if spec.conversation == of_job(job.id):
            job.history = {"carried": NONE, "items": 0, "truncated": False}
            return  # nothing before it, and nothing to read
        record = self._record(job)
        if record is None:
            job.history = {"carried": NONE, "items": 0, "truncated": False}
            return
        if spec.instructions is None and record.instructions:
            spec.instructions = record.instructions
        if spec.previous_response_id or spec.thread_id or spec.conversation_id:
            # The producer named a backend handle itself: that is what the run continues.
            job.history = {"carried": NATIVE, "items": len(record.turns), "truncated": False}
            return
        handle = record.handle_for(key_of(ctx.link)) if ctx.link.kind == MODEL else None
        if handle is not None:
            job.history = {
                "carried": NATIVE, "items": len(record.turns),
                "truncated": record.dropped > 0, "handle": handle,
            }  # fmt: skip
        else:
            carried = window(record, self.policy)
            job.history = {
                "carried": REPLAYED if carried.turns else NONE,
                "items": len(carried.turns),
                "truncated": carried.truncated,
                "turns": carried.turns,
            }
        log.info("conversation.prepared", job_id=job.id, conversation=spec.conversation,
                 link=ctx.link.name, **report(job.history) or {})  # fmt: skip

    def settle(self, ctx: StepContext) -> tuple[str, str, int] | None:
        """The job succeeded: its turn and answer for the conversation's record.

        Returns the record to write with the job's end (`(id, JSON, TTL)`, see
        `runs.store.EndingWrites`), or None: a conversation's first job keeps its turn
        in its own record (with the handle of the link that answered, under
        `history.answered`), and a step run twice adds nothing twice.
        """
        job, spec, link = ctx.job, ctx.job.spec, ctx.link
        if spec.conversation is None:
            spec.conversation = of_job(job.id)  # answered by an instant link at once
        history = job.history or {"carried": NONE, "items": 0, "truncated": False}
        history.pop("turns", None)  # the replayed turns need not stay in the job record
        handle = handle_of(job, link) if link.kind == MODEL else None
        if handle is not None:
            history["answered"] = {"link": key_of(link), "handle": handle}
        job.history = history
        if spec.conversation == of_job(job.id):
            return None  # a one-turn conversation: the job record is its record
        record = self._record(job) or Conversation(spec.conversation, tenant=spec.tenant)
        if any(t.get("job_id") == job.id for t in record.turns[-1:]):
            return None  # this job's turn is in already
        if spec.instructions:
            record.instructions = spec.instructions
        record.add_turns([*replay.input_turns(spec.input), replay.answer_turn(job)])
        if handle is not None:
            record.record_handle(key_of(link), handle)
        data = self.store.encode(record)
        log.info("conversation.turn_recorded", job_id=job.id, conversation=record.id,
                 turns=len(record.turns), dropped=record.dropped)  # fmt: skip
        return record.id, data, max(1, self.store.ttl)


def history_from_settings(client: redis.Redis, settings: Settings) -> ConversationHistory:
    """The records and the truncation policy as the worker's settings say."""
    store = ConversationStore(
        client, ttl=settings.conversation_ttl, max_bytes=settings.conversation_max_bytes
    )
    policy = TruncationPolicy(
        max_turns=settings.conversation_max_turns, max_tokens=settings.conversation_max_tokens
    )
    return ConversationHistory(store, policy)
