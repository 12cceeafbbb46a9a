"""Double-texting: what a new job on a busy conversation does (its `multitask` strategy).

Jobs on one conversation take turns through a lock in Redis (`runs.gates`). When a
job's start step finds another job holding its conversation, its strategy decides:

- `enqueue` (the default): it waits its turn, in the order the jobs were submitted
  (`JobStore.take_conversation`);
- `reject`: it fails at once with `conversation_busy` (nothing is sent to a backend);
- `interrupt`: it asks the holder to stop (the holder's cancel flag and the cancel task,
  as `runq cancel` does: the holder's run is cancelled at the backend), then takes the
  turn when the holder has ended. The interrupted turn's user message stays in the
  conversation's history, marked `interrupted`, so the new turn sees what was asked;
- `rollback`: as `interrupt`, and the interrupted turn is removed from the
  conversation's history, as if it had never been asked.

The job in the way is the one holding the conversation or, while none does, the job
submitted before this one that has yet to take its turn: `reject` fails behind either,
and `interrupt` asks each in turn to stop.

Only a holder of the same tenant is interrupted: a conversation id names a tenant's
conversation, and a job of another tenant that names it waits (and then fails at its
history, which is not its own) instead of stopping someone else's job.

Which jobs a job interrupted is kept in Redis (`runq:interrupted:{job}`), since a start
step that waits for its turn gives the job back without writing its record; the step
that finally takes the turn settles them (`took_turn`), once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import structlog

from runq.config.settings import MULTITASK_STRATEGIES, get_settings
from runq.errors import ConversationBusyError, JobAlreadyEndedError, JobNotFoundError
from runq.runs import keys
from runq.runs.conversations import replay
from runq.runs.conversations.record import Conversation, ConversationStore
from runq.runs.job import Job, JobStatus, Step
from runq.runs.replies import text
from runq.runs.scheduler import Scheduler
from runq.runs.store import JobStore

log = structlog.get_logger("runq.multitask")

ENQUEUE, REJECT, INTERRUPT, ROLLBACK = MULTITASK_STRATEGIES
INTERRUPTED_TTL = 24 * 3600


def strategy_of(job: Job) -> str:
    """The job's strategy; a record written before strategies existed enqueues."""
    return job.spec.multitask or ENQUEUE


class Multitask:
    """Applies a job's strategy at the conversation's turn (see the module docstring)."""

    def __init__(
        self,
        store: JobStore,
        send_cancel: Callable[[str], object],
        conversations: ConversationStore | None,
    ) -> None:
        self.store = store
        self.send_cancel = send_cancel  # sends `runq.jobs.cancel` for a job id
        self.conversations = conversations

    @staticmethod
    def waits_its_turn(job: Job) -> bool:
        """Does the job wait its turn (`enqueue`) rather than stop the job in its way?"""
        return strategy_of(job) == ENQUEUE

    def busy(self, job: Job, holder: str) -> str:
        """The conversation is `holder`'s: wait for it (returned), fail, or interrupt it."""
        strategy = strategy_of(job)
        if strategy == REJECT:
            log.info("job.conversation_busy", job_id=job.id, holder=holder)
            raise ConversationBusyError(holder)
        if strategy in (INTERRUPT, ROLLBACK):
            self._interrupt(job, holder)
        return holder

    def _interrupt(self, job: Job, holder: str) -> None:
        try:
            other = self.store.get(holder)
        except JobNotFoundError:
            return
        if other.spec.tenant != job.spec.tenant or other.terminal:
            return
        key = keys.interrupted(job.id)
        pipe = self.store.redis.pipeline(transaction=True)
        pipe.sadd(key, holder)
        pipe.expire(key, INTERRUPTED_TTL)
        first, _ = pipe.execute()
        if not first:
            return  # asked already: the holder is on its way out
        try:
            status = self.store.request_cancel(holder)
        except (JobAlreadyEndedError, JobNotFoundError):
            return
        if status != JobStatus.CANCELLED:
            self.send_cancel(holder)
        log.info("job.interrupting", job_id=job.id, holder=holder, strategy=strategy_of(job))

    def took_turn(self, job: Job) -> None:
        """The job has its conversation: keep (interrupt) or remove (rollback) the turns of
        the jobs it interrupted. Idempotent: a start step run twice changes nothing more."""
        key = keys.interrupted(job.id)
        members = self.store.redis.smembers(key)
        if not members:
            return
        conversation = job.spec.conversation
        if conversation is not None and self.conversations is not None:
            for holder in sorted(text(m) for m in members):
                self._settle_interrupted(job, conversation, holder)
        self.store.redis.delete(key)

    def _settle_interrupted(self, job: Job, conversation: str, holder: str) -> None:
        assert self.conversations is not None
        try:
            other = self.store.get(holder)
        except JobNotFoundError:
            return
        if other.status != JobStatus.CANCELLED:
            return  # it ended otherwise (it answered before the cancel): its turn stands
        if strategy_of(job) == ROLLBACK:
            removed = remove_turn(self.conversations, conversation, holder, job.spec.tenant)
            log.info("conversation.turn_rolled_back", job_id=job.id, conversation=conversation,
                     interrupted=holder, removed=removed)  # fmt: skip
            return
        record = self.conversations.get(conversation) or Conversation(
            conversation, tenant=job.spec.tenant
        )
        if record.tenant != job.spec.tenant:
            return
        if any(t.get("job_id") == holder for t in record.turns):
            return
        turns: list[dict[str, Any]] = [
            {**turn, "job_id": holder, "interrupted": True}
            for turn in replay.input_turns(other.spec.input)
        ]
        record.add_turns(turns)
        self.conversations.save(record)
        log.info("conversation.turn_interrupted", job_id=job.id, conversation=conversation,
                 interrupted=holder)  # fmt: skip


def remove_turn(
    conversations: ConversationStore, conversation: str, job_id: str, tenant: str | None
) -> int:
    """Remove the turns job `job_id` added to the tenant's conversation (see
    `Conversation.remove_turn`); returns how many."""
    record = conversations.get(conversation)
    if record is None or record.tenant != tenant:
        return 0
    removed = record.remove_turn(job_id)
    if removed:
        conversations.save(record)
    return removed


def for_worker(store: JobStore, scheduler: Scheduler) -> Multitask:
    """The strategies as a worker applies them: cancels go out as `runq.jobs.cancel`
    tasks, and the conversation records are those of the worker's settings."""
    settings = get_settings()
    conversations = ConversationStore(
        store.redis, ttl=settings.conversation_ttl, max_bytes=settings.conversation_max_bytes
    )
    return Multitask(
        store, lambda job_id: scheduler.schedule(Step.CANCEL, job_id, 0, 0.0), conversations
    )
