"""Human approval of tool calls: a call that needs a person waits, durably, for one.

A call needs approval when its tool was registered `@tool(requires_approval=True)` or
the job names it in `approval_required`. Its life:

1. **asked** — the tool round (`RunProgress._tool_round`) writes one entry per such
   call into the job's approvals hash (`runq:approvals:{job}`, before the round is
   committed), moves the job to `waiting_approval` with the event `approval.requested`
   (call id, tool, arguments), and schedules the round's submit step at the approval's
   deadline (through the delayed steps, `runs.delays`). The round's tool tasks run
   the other calls; a task for a waiting call runs nothing and ends (it posts the
   approval webhook first, when one is configured). Nothing polls, no worker slot is
   held: the job is only data in Redis (AOF), so a worker or Redis restart loses
   nothing.
2. **decided** — `decide` (a person through `runq approve`, `JobHandle.approve/deny`,
   the gateway; or the timeout) writes the decision into the entry with one Lua call
   (`approval_decide.lua`: once, and only while the job has not ended); the producer
   then sends the call's tool task again. Approved, the tool runs; denied, the tool's
   output is `{"error": "denied by a person: <reason>"}` and the tool never runs.
3. **resumed** — the call that completes the round runs the submit step, as for any
   round; the model sees the outputs (a denial too) and answers.

The timeout: the submit step scheduled at the deadline finds the calls still pending,
denies them (`decided_by: timeout`) and stores their denial outputs (`expire`).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from typing import Any

import redis

from runq.config.settings import get_settings
from runq.errors import (
    ApprovalDecidedError,
    ApprovalNotFoundError,
    JobAlreadyEndedError,
    JobNotFoundError,
    ToolError,
)
from runq.runs import keys, lua, mcp_approvals
from runq.runs.events import EventLog
from runq.runs.job import TERMINAL, Job, JobSpec
from runq.runs.replies import text
from runq.runs.toolcalls import StoredOutput
from runq.runs.tools import ToolRegistry, registry

PENDING, APPROVED, DENIED = "pending", "approved", "denied"
PERSON, TIMEOUT = "person", "timeout"
FUNCTION, MCP = "function", "mcp"
EVENT_REQUESTED, EVENT_DECIDED = "approval.requested", "approval.decided"
MAX_REASON = 1000


@dataclass
class Approval:
    """One call that waits (or waited) for a person: what the job's approvals hash holds."""

    job_id: str
    call_id: str
    name: str
    arguments: str
    round: int
    queue: str = "tools"
    status: str = PENDING
    requested_at: float = 0.0
    deadline: float = 0.0
    reason: str | None = None
    decided_at: float | None = None
    decided_by: str | None = None
    kind: str = FUNCTION  # or MCP: an MCP server's call the backend asks about
    server_label: str | None = None

    def dumps(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def loads(cls, raw: bytes | str) -> Approval:
        data = json.loads(raw)
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})

    def view(self) -> dict[str, Any]:
        """What a producer is shown (the API, the gateway, the page)."""
        return asdict(self)

    def output(self) -> StoredOutput:
        """A denied call's output, as the model reads it in place of the tool's; for an
        MCP server's approval request, the decision either way (`runs.mcp_approvals`)."""
        if self.kind == MCP:
            return StoredOutput(
                mcp_approvals.decision_output(self.status == APPROVED, self.reason), None
            )
        if self.decided_by == TIMEOUT:
            message = f"denied: no decision {self.reason}" if self.reason else "denied: timed out"
        else:
            message = "denied by a person" + (f": {self.reason}" if self.reason else "")
        return StoredOutput(json.dumps({"error": message}), None)


def needs_approval(name: str, spec: JobSpec, registry: ToolRegistry | None) -> bool:
    """Does a call of tool `name` in a job of `spec` wait for a person?"""
    if name in spec.approval_required:
        return True
    if registry is None:
        return False
    try:
        return registry.get(name).requires_approval
    except ToolError:
        return False  # an unknown tool: its call reports that to the model, not a person


def _mcp(name: str) -> dict[str, Any]:
    if not mcp_approvals.is_mcp(name):
        return {}
    return {"kind": MCP, "server_label": mcp_approvals.server_label(name)}


def _queue(name: str, registry: ToolRegistry | None) -> str:
    try:
        return registry.get(name).queue if registry is not None else "tools"
    except ToolError:
        return "tools"


class Approvals:
    """The job's approvals hash and the decisions written to it."""

    def __init__(
        self,
        client: redis.Redis,
        registry: ToolRegistry | None = None,
        *,
        timeout: float = 3600.0,
        ttl: int = 7 * 24 * 3600,
    ) -> None:
        self.redis = client
        self.registry = registry
        self.timeout = timeout
        self.ttl = ttl
        self.events = EventLog(client, ttl=ttl)
        self._decide = lua.register(client, "approval_decide")
        self._store_and_count = lua.register(client, "toolcalls_store_and_count")

    # -- asking --------------------------------------------------------------------------
    def required(self, name: str, spec: JobSpec) -> bool:
        return needs_approval(name, spec, self.registry)

    def asks(self, name: str, spec: JobSpec) -> bool:
        """Does a call of `name` wait for a person: its tool needs one, or it is an MCP
        server's approval request?"""
        return mcp_approvals.is_mcp(name) or self.required(name, spec)

    def ask(self, job: Job, deadline_cap: float) -> list[Approval]:
        """Write an entry for each call of the job's round that needs a person; return them.

        Written before the round is committed, so a tool task never finds a waiting call
        without its entry. `deadline_cap`: the job's own deadline (epoch seconds), which
        an approval never outlasts. A call asked before (the same call id: a step run
        twice) keeps its entry.
        """
        now = time.time()
        deadline = min(now + self.timeout, deadline_cap)
        asked = [
            Approval(job.id, c["call_id"], c["name"], str(c.get("arguments") or ""), job.round,
                     queue=_queue(c["name"], self.registry), requested_at=now, deadline=deadline,
                     **_mcp(c["name"]))
            for c in job.pending_calls
            if self.asks(c["name"], job.spec)
        ]  # fmt: skip
        if not asked:
            return []
        key = keys.approvals(job.id)
        pipe = self.redis.pipeline(transaction=True)
        for approval in asked:
            pipe.hsetnx(key, approval.call_id, approval.dumps())
        pipe.expire(key, self.ttl)
        pipe.execute()
        return asked

    @staticmethod
    def requested_event(approval: Approval) -> dict[str, Any]:
        return {
            "type": EVENT_REQUESTED,
            "round": approval.round,
            "call_id": approval.call_id,
            "name": approval.name,
            "arguments": approval.arguments,
            "deadline": approval.deadline,
            "kind": approval.kind,
        }

    # -- reading -------------------------------------------------------------------------
    def get(self, job_id: str, call_id: str) -> Approval | None:
        raw = self.redis.hget(keys.approvals(job_id), call_id)
        return Approval.loads(raw) if raw is not None else None

    def all(self, job_id: str) -> list[Approval]:
        """The job's approvals, oldest first."""
        raw = self.redis.hgetall(keys.approvals(job_id))
        found = [Approval.loads(v) for v in raw.values()]
        return sorted(found, key=lambda a: (a.round, a.requested_at, a.call_id))

    def pending(self, job_id: str) -> list[Approval]:
        return [a for a in self.all(job_id) if a.status == PENDING]

    # -- deciding ------------------------------------------------------------------------
    def decide(
        self, job_id: str, call_id: str, approve: bool, reason: str | None = None,
        *, by: str = PERSON,
    ) -> Approval:  # fmt: skip
        """Write the decision once (`approval_decide.lua`); return the decided entry.

        `ApprovalNotFoundError` when no such call waits in the job, `ApprovalDecidedError`
        when it was decided before (`.approval` says how), `JobAlreadyEndedError` when the
        job ended meanwhile (cancelled, past its deadline), `JobNotFoundError`.
        """
        reason = (reason or "")[:MAX_REASON]
        reply = self._decide(
            keys=[keys.approvals(job_id), keys.job(job_id)],
            args=[call_id, APPROVED if approve else DENIED, reason, repr(time.time()), by,
                  *sorted(TERMINAL)],
        )  # fmt: skip
        kind, value = (text(part) for part in reply)
        if kind == "missing_job":
            raise JobNotFoundError(job_id)
        if kind == "missing":
            raise ApprovalNotFoundError(job_id, call_id)
        if kind == "ended":
            raise JobAlreadyEndedError(job_id, value)
        approval = Approval.loads(value)
        if kind == "decided":
            raise ApprovalDecidedError(approval.job_id, call_id, approval.status)
        self.events.append(job_id, self.decided_event(approval))
        return approval

    @staticmethod
    def decided_event(approval: Approval) -> dict[str, Any]:
        return {
            "type": EVENT_DECIDED,
            "round": approval.round,
            "call_id": approval.call_id,
            "name": approval.name,
            "status": approval.status,
            "reason": approval.reason,
            "decided_by": approval.decided_by,
        }

    def expire(self, job_id: str, expected: int, now: float | None = None) -> list[Approval]:
        """Deny every call of the job still pending past its deadline, and store its
        denial as the call's output (the round may be complete after). Returns them."""
        now = time.time() if now is None else now
        denied = []
        for approval in self.pending(job_id):
            if approval.deadline > now:
                continue
            waited = f"within {approval.deadline - approval.requested_at:g}s"
            try:
                decided = self.decide(job_id, approval.call_id, False, waited, by=TIMEOUT)
            except (ApprovalDecidedError, ApprovalNotFoundError):
                continue  # a person decided at the last moment: the tool task acts on it
            self.store_output(decided, decided.output(), expected)
            denied.append(decided)
        return denied

    def store_output(self, approval: Approval, output: StoredOutput, expected: int) -> bool:
        """Store a call's output without running its tool; True if it completed the round."""
        completed = self._store_and_count(
            keys=[keys.tool_output(approval.job_id, approval.round)],
            args=[approval.call_id, output.dumps(), expected, self.ttl],
        )
        return bool(int(completed))


def for_worker(client: redis.Redis) -> Approvals:
    """The approvals as a worker applies them: the worker's tools and settings."""
    settings = get_settings()
    return Approvals(
        client, registry, timeout=settings.approval_timeout, ttl=settings.result_expires
    )
