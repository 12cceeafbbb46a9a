"""Assistants runs: planned segments, a lazily derived status, the run and step objects.

A run is a list of *segments*; each is planned when it starts (at creation, then at
each ``submit_tool_outputs``): ``queued`` (first segment only) for a quarter of
``latency_ms``, ``in_progress`` until ``done_at``, then either ``requires_action``
(tool calls; ``expired`` once ``expires_at`` passes without outputs) or a final
status. As with responses, nothing runs in the background: reads derive the status.
Segments are decided by :mod:`.run_planner` and streamed from :mod:`.run_events`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from runq.sandbox.engine.ids import new_id
from runq.sandbox.engine.model import Reply

ACTIVE = ("queued", "in_progress", "requires_action", "cancelling")
FAULT_ERRORS = {
    "failed": {"code": "server_error", "message": "The run failed (injected fault)."},
    "rate_limited": {"code": "rate_limit_exceeded", "message": "Rate limit reached (injected)."},
}


@dataclass
class Segment:
    started_at: float  # in_progress from here
    done_at: float
    reply: Reply
    step_id: str
    outcome: str  # requires_action | completed | failed | expired | incomplete
    in_tokens: int
    out_tokens: int
    message_id: str | None = None
    message: dict[str, Any] | None = None
    search_step_id: str | None = None
    code_step_id: str | None = None  # a code interpreter step, before the message
    code_calls: list[dict[str, Any]] = field(default_factory=list)
    outputs: dict[str, str] = field(default_factory=dict)  # call_id -> submitted output
    submitted_at: float | None = None


@dataclass
class RunRecord:
    id: str
    thread_id: str
    assistant_id: str
    created_at: float
    expires_at: float
    params: dict[str, Any]  # model, instructions, tools, metadata, ...
    segments: list[Segment] = field(default_factory=list)
    cancelled_at: float | None = None
    job_id: str | None = None

    def status(self, now: float | None = None) -> str:
        now = time.time() if now is None else now
        seg = self.segments[-1]
        if self.cancelled_at is not None:
            return "cancelling" if now <= self.cancelled_at else "cancelled"
        if len(self.segments) == 1 and now < seg.started_at:
            return "queued"
        if now < seg.done_at:
            return "in_progress"
        if seg.outcome == "requires_action":
            return "expired" if now >= self.expires_at else "requires_action"
        return seg.outcome

    def ended_at(self, now: float) -> float | None:
        status = self.status(now)
        if status in ACTIVE:
            return None
        if status == "cancelled":
            return self.cancelled_at
        if status == "expired" and self.segments[-1].outcome == "requires_action":
            return self.expires_at
        return self.segments[-1].done_at


def _ts(value: float | None) -> int | None:
    return None if value is None else int(value)


def render_run(
    run: RunRecord, now: float | None = None, force: str | None = None
) -> dict[str, Any]:
    now = time.time() if now is None else now
    status = force or run.status(now)
    seg = run.segments[-1]
    p = run.params
    required = None
    if status == "requires_action":
        required = {
            "type": "submit_tool_outputs",
            "submit_tool_outputs": {
                "tool_calls": [
                    {
                        "id": c.call_id,
                        "type": "function",
                        "function": {"name": c.name, "arguments": c.arguments},
                    }
                    for c in seg.reply.calls
                ]
            },
        }
    ended = run.ended_at(now) if force is None else None
    usage = None
    if status in ("completed", "failed", "incomplete", "expired", "cancelled"):
        i = sum(s.in_tokens for s in run.segments)
        o = sum(s.out_tokens for s in run.segments)
        usage = {"prompt_tokens": i, "completion_tokens": o, "total_tokens": i + o}
    return {
        "id": run.id,
        "object": "thread.run",
        "created_at": int(run.created_at),
        "thread_id": run.thread_id,
        "assistant_id": run.assistant_id,
        "status": status,
        "required_action": required,
        "last_error": FAULT_ERRORS.get(p.get("fault") or "") if status == "failed" else None,
        "expires_at": None if ended else int(run.expires_at),
        "started_at": _ts(run.segments[0].started_at) if status != "queued" else None,
        "cancelled_at": _ts(ended) if status == "cancelled" else None,
        "failed_at": _ts(ended) if status == "failed" else None,
        "completed_at": _ts(ended) if status == "completed" else None,
        "incomplete_details": (
            {"reason": "max_completion_tokens"} if status == "incomplete" else None
        ),
        "model": p["model"],
        "instructions": p.get("instructions") or "",
        "tools": p.get("tools") or [],
        "metadata": p.get("metadata") or {},
        "usage": usage,
        "temperature": p.get("temperature", 1.0),
        "top_p": p.get("top_p", 1.0),
        "max_prompt_tokens": p.get("max_prompt_tokens"),
        "max_completion_tokens": p.get("max_completion_tokens"),
        "truncation_strategy": {"type": "auto", "last_messages": None},
        "response_format": p.get("response_format") or "auto",
        "tool_choice": p.get("tool_choice") or "auto",
        "parallel_tool_calls": p.get("parallel_tool_calls", True),
    }


def _step_base(run: RunRecord, step_id: str, created: float) -> dict[str, Any]:
    return {
        "id": step_id,
        "object": "thread.run.step",
        "created_at": int(created),
        "run_id": run.id,
        "assistant_id": run.assistant_id,
        "thread_id": run.thread_id,
        "cancelled_at": None,
        "expired_at": None,
        "failed_at": None,
        "last_error": None,
        "metadata": {},
    }


def _code_step(run: RunRecord, seg: Segment, done: bool) -> dict[str, Any]:
    """The ``tool_calls`` step of the code interpreter's calls (already run)."""
    step = _step_base(run, seg.code_step_id or "", seg.started_at)
    step.update(
        type="tool_calls",
        status="completed" if done else "in_progress",
        completed_at=int(seg.done_at) if done else None,
        usage=None,
        step_details={"type": "tool_calls", "tool_calls": seg.code_calls},
    )
    return step


def render_steps(run: RunRecord, now: float | None = None) -> list[dict[str, Any]]:
    """Run steps in creation order (a file_search step, then tool calls or a message)."""
    now = time.time() if now is None else now
    steps = []
    run_status = run.status(now)
    for seg in run.segments:
        if now < seg.started_at:
            break
        done = now >= seg.done_at
        if seg.search_step_id:
            step = _step_base(run, seg.search_step_id, seg.started_at)
            step.update(
                type="tool_calls",
                status="completed" if done else "in_progress",
                completed_at=int(seg.done_at) if done else None,
                usage=None,
                step_details={
                    "type": "tool_calls",
                    "tool_calls": [
                        {
                            "id": new_id("call"),
                            "type": "file_search",
                            "file_search": {
                                "ranking_options": {
                                    "ranker": "default_2024_08_21",
                                    "score_threshold": 0.0,
                                },
                                "results": [],
                            },
                        }
                    ],
                },
            )
            steps.append(step)
        if seg.code_step_id:
            steps.append(_code_step(run, seg, now >= seg.done_at))
        step = _step_base(run, seg.step_id, seg.started_at)
        usage = {
            "prompt_tokens": seg.in_tokens,
            "completion_tokens": seg.out_tokens,
            "total_tokens": seg.in_tokens + seg.out_tokens,
        }
        if seg.reply.calls:
            waiting = done and seg.submitted_at is None
            status = "in_progress" if not done or waiting else "completed"
            if waiting and run_status in ("expired", "cancelled"):
                status = run_status
            details = {
                "type": "tool_calls",
                "tool_calls": [
                    {
                        "id": c.call_id,
                        "type": "function",
                        "function": {
                            "name": c.name,
                            "arguments": c.arguments,
                            "output": seg.outputs.get(c.call_id),
                        },
                    }
                    for c in seg.reply.calls
                ],
            }
            step.update(
                type="tool_calls",
                step_details=details,
                status=status,
                completed_at=_ts(seg.submitted_at),
                usage=usage if done else None,
            )
        else:
            status = "completed" if done else "in_progress"
            if done and seg.outcome in ("failed", "expired", "incomplete"):
                status = {"incomplete": "completed"}.get(seg.outcome, seg.outcome)
            step.update(
                type="message_creation",
                status=status,
                step_details={
                    "type": "message_creation",
                    "message_creation": {"message_id": seg.message_id or ""},
                },
                completed_at=int(seg.done_at) if status == "completed" else None,
                usage=usage if done else None,
            )
        steps.append(step)
    return steps
