"""runq's own record of a conversation: the turns, whoever answered them.

A backend's handle (a Responses `previous_response_id`, an Assistants thread) carries a
conversation only while every turn is answered by that backend. A fallback link, a
`--continue` on another backend, or the chat backend (which keeps nothing at the
server) loses the history. So runq keeps the history itself, in a protocol-neutral
form, and records which backend handle is still valid for which link:

    {"id": "rqc_...", "tenant": "acme", "instructions": "...",
     "turns": [{"role": "user", "text": "...", "files": ["file-1"]},
               {"role": "assistant", "text": "...", "citations": [...],
                "tool_calls": [{"call_id", "name", "arguments", "output"}],
                "job_id": "job_...", "source": "chat:llama"}],
     "dropped": 0,
     "handles": {"<link key>": {"response_id": "resp_...", "covers": 4}}}

A handle is valid for its link only while it `covers` every turn of the record: a turn
answered elsewhere makes the server's copy stale, and the next turn there replays.

The record lives at `runq:conversation:{id}` with a TTL (renewed by every turn) and a
size cap: past the cap the oldest turns are dropped (`dropped` counts them) and every
replay after says it was truncated (`runs.conversations.truncation`).

A record is written only for a conversation of more than one job. A job that names no
conversation and continues none (most of them: a batch of questions) begins the
conversation `rqc_<its job id>` and writes nothing more: its own job record holds the
turn (input, answer, the handle of the link that answered). Only when a later job
continues it is the record built from that job record (`from_first_job`), which
`ConversationStore.get` does for every reader, so a one-turn conversation is read,
continued and exported like any other while the job's result lives.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import redis

from runq.errors import InvalidJobError, JobNotFoundError
from runq.runs import keys
from runq.runs.conversations import replay
from runq.runs.conversations.ids import first_job_of
from runq.runs.job import CONVERSATION_ID, TENANT, TENANT_RULE, Job, JobStatus

ROLES = ("user", "assistant")
MAX_ID = 128


def from_first_job(conversation_id: str, job: Job) -> Conversation:
    """The record of a one-turn conversation, built from the job that began it: its input
    and answer, the handle of the link that answered (`history.answered`), its tenant
    and instructions. A job that did not succeed added no turn."""
    record = Conversation(conversation_id, tenant=job.spec.tenant)
    if job.status != JobStatus.SUCCEEDED:
        return record
    record.instructions = job.spec.instructions
    record.add_turns([*replay.input_turns(job.spec.input), replay.answer_turn(job)])
    answered = (job.history or {}).get("answered")
    if isinstance(answered, dict) and answered.get("link") and answered.get("handle"):
        record.record_handle(answered["link"], dict(answered["handle"]))
    return record


def check_id(conversation: Any, option: str = "conversation") -> str:
    """A conversation id is part of a Redis key: plain characters only."""
    if not isinstance(conversation, str) or not CONVERSATION_ID.fullmatch(conversation):
        raise InvalidJobError(
            option, f"must be 1-{MAX_ID} characters of A-Z, a-z, 0-9, '.', '_' and '-'"
        )
    return conversation


def link_key(backend: str, model: str, base_url: str | None) -> str:
    """Which link a backend handle is valid for: the protocol, the model where the
    handle depends on it (a Responses `previous_response_id`), and the endpoint as a
    hash (a record never holds a host; `None` is the worker's own endpoint).

    An Assistants thread belongs to the server, not to a model: any assistants link on
    that endpoint may run it."""
    host = hashlib.sha256((base_url or "").encode()).hexdigest()[:12]
    if backend == "assistants":
        return f"assistants@{host}"
    return f"{backend}:{model}@{host}"


def check_turn(turn: Any, where: str) -> dict[str, Any]:
    """One turn in the neutral form, checked (an import or a transcript line)."""
    if not isinstance(turn, dict):
        raise InvalidJobError(where, "must be an object with a role and text")
    role = turn.get("role")
    if role not in ROLES:
        raise InvalidJobError(f"{where}.role", f"must be one of {', '.join(ROLES)}")
    text = turn.get("text", "")
    if not isinstance(text, str):
        raise InvalidJobError(f"{where}.text", "must be text")
    clean: dict[str, Any] = {"role": role, "text": text}
    for name in ("files", "citations", "tool_calls"):
        value = turn.get(name)
        if value is None:
            continue
        if not isinstance(value, list):
            raise InvalidJobError(f"{where}.{name}", "must be a list")
        if name == "files" and not all(isinstance(f, str) for f in value):
            raise InvalidJobError(f"{where}.files", "must be a list of file ids")
        if name != "files" and not all(isinstance(v, dict) for v in value):
            raise InvalidJobError(f"{where}.{name}", "must be a list of objects")
        if value:
            clean[name] = value
    for name in ("job_id", "source"):
        if isinstance(turn.get(name), str):
            clean[name] = turn[name]
    return clean


@dataclass
class Conversation:
    """The record as a Python object; `to_dict` is what Redis holds."""

    id: str
    tenant: str | None = None
    instructions: str | None = None
    turns: list[dict[str, Any]] = field(default_factory=list)
    dropped: int = 0  # oldest turns dropped to stay under the size cap
    handles: dict[str, dict[str, Any]] = field(default_factory=dict)

    def handle_for(self, key: str) -> dict[str, Any] | None:
        """The handle valid for link `key`: recorded there and covering every turn."""
        handle = self.handles.get(key)
        if handle is None or handle.get("covers") != len(self.turns) + self.dropped:
            return None
        return {k: v for k, v in handle.items() if k != "covers"}

    def add_turns(self, turns: list[dict[str, Any]]) -> None:
        self.turns.extend(turns)

    def record_handle(self, key: str, handle: dict[str, Any]) -> None:
        """`handle` holds every turn so far (the link just answered the last one)."""
        self.handles[key] = {**handle, "covers": len(self.turns) + self.dropped}

    def remove_turn(self, job_id: str) -> int:
        """Remove the turns job `job_id` added (its answer with the question before it,
        or questions marked with its id); returns how many. A double-texting `rollback`
        (`runs.multitask`) undoes the turn it interrupted. Every backend handle covered
        the removed turns, so none holds the history without them: all are dropped."""
        kept: list[dict[str, Any]] = []
        for turn in self.turns:
            if turn.get("job_id") == job_id:
                if turn.get("role") == "assistant":  # an answer: its question goes with it
                    while kept and kept[-1].get("role") == "user" and "job_id" not in kept[-1]:
                        kept.pop()
                continue
            kept.append(turn)
        removed = len(self.turns) - len(kept)
        if removed:
            self.turns = kept
            self.handles = {}
        return removed

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "tenant": self.tenant,
            "instructions": self.instructions,
            "turns": self.turns,
            "dropped": self.dropped,
            "handles": self.handles,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Conversation:
        return cls(
            id=data["id"],
            tenant=data.get("tenant"),
            instructions=data.get("instructions"),
            turns=list(data.get("turns") or []),
            dropped=int(data.get("dropped") or 0),
            handles=dict(data.get("handles") or {}),
        )

    def transcript(self) -> list[dict[str, Any]]:
        """The JSONL export's lines: the instructions (as a system line), then the turns."""
        lines: list[dict[str, Any]] = []
        if self.instructions:
            lines.append({"role": "system", "text": self.instructions})
        lines.extend(self.turns)
        return lines


class ConversationStore:
    """Reads and writes conversation records; the TTL and the size cap are applied here."""

    def __init__(self, client: redis.Redis, *, ttl: int, max_bytes: int) -> None:
        self.redis = client
        self.ttl = ttl
        self.max_bytes = max_bytes

    def get(self, conversation_id: str) -> Conversation | None:
        """The record; for a one-turn conversation not written yet, built from the job
        that began it (None once that job's record has expired too)."""
        raw = self.redis.get(keys.conversation(conversation_id))
        if raw is not None:
            return Conversation.from_dict(json.loads(raw))
        first = first_job_of(conversation_id)
        if first is None:
            return None
        data = self.redis.get(keys.job(first))
        if data is None:
            return None
        return from_first_job(conversation_id, Job.from_dict(json.loads(data)))

    def load(self, conversation_id: str, tenant: str | None) -> Conversation:
        """The record, for `tenant` only: another tenant's conversation is not found."""
        found = self.get(conversation_id)
        if found is None or found.tenant != tenant:
            raise JobNotFoundError(f"no conversation {conversation_id!r}")
        return found

    def encode(self, conversation: Conversation) -> str:
        """The record as Redis holds it, its oldest turns dropped past the size cap.

        Turns are dropped in whole pairs from the front where possible, so the history
        still starts with a user turn; the instructions are never dropped.
        """
        data = json.dumps(conversation.to_dict(), separators=(",", ":"))
        while len(data.encode()) > self.max_bytes and len(conversation.turns) > 1:
            drop = 2 if len(conversation.turns) > 2 else 1
            del conversation.turns[:drop]
            conversation.dropped += drop
            data = json.dumps(conversation.to_dict(), separators=(",", ":"))
        return data

    def save(self, conversation: Conversation) -> None:
        """Write the record with a fresh TTL (see `encode` for the size cap).

        A job's turn is not written here but with the commit that ends the job
        (`runs.store.EndingWrites`), so a cancel that refuses the end refuses the turn."""
        self.redis.set(keys.conversation(conversation.id), self.encode(conversation), ex=self.ttl)

    def create(self, conversation: Conversation) -> None:
        """A new record (an import); an id in use is refused, not overwritten."""
        if self.get(conversation.id) is not None:
            raise InvalidJobError("conversation", f"{conversation.id!r} exists already")
        self.save(conversation)


def check_tenant(tenant: str | None) -> str | None:
    if tenant is not None and (not isinstance(tenant, str) or not TENANT.fullmatch(tenant)):
        raise InvalidJobError("tenant", f"must be {TENANT_RULE}")
    return tenant
