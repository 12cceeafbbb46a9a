"""Stream events of an Assistants run segment, planned from the run's record.

Like :mod:`runq.sandbox.engine.response_events`, the list is a pure function of the
stored run, each event paired with the time it is due, so the streamer only waits and
sends. Segment 0 opens with ``thread.run.created``/``queued``; a later segment (after
``submit_tool_outputs``) opens by completing the previous tool-calls step.
"""

from __future__ import annotations

import copy
from typing import Any

from runq.sandbox.engine.run_objects import RunRecord, render_run, render_steps
from runq.sandbox.engine.tokens import split_tokens

# (due at, event name, data)
RunEvent = tuple[float, str, dict[str, Any]]

_FINAL_EVENTS = {
    "requires_action": "thread.run.requires_action",
    "completed": "thread.run.completed",
    "failed": "thread.run.failed",
    "expired": "thread.run.expired",
    "incomplete": "thread.run.incomplete",
}


def segment_events(run: RunRecord, index: int) -> list[RunEvent]:
    """Every event of segment ``index`` of ``run``, in order, with its due time."""
    seg = run.segments[index]
    t0, t1 = seg.started_at, seg.done_at
    ev: list[RunEvent] = []
    if index == 0:
        ev.append((run.created_at, "thread.run.created", render_run(run, run.created_at, "queued")))
        ev.append((run.created_at, "thread.run.queued", render_run(run, run.created_at, "queued")))
    else:
        prev = [s for s in render_steps(run, t0) if s["id"] == run.segments[index - 1].step_id]
        ev += [(t0, "thread.run.step.completed", prev[0])] if prev else []
    ev.append((t0, "thread.run.in_progress", render_run(run, t0, "in_progress")))
    steps = {s["id"]: s for s in render_steps(run, t1)}
    if seg.code_step_id:  # the code interpreter's step: its code already ran
        code_step = copy.deepcopy(steps[seg.code_step_id])
        code_started = {**code_step, "status": "in_progress", "completed_at": None}
        ev.append((t0, "thread.run.step.created", code_started))
        ev.append((t0, "thread.run.step.in_progress", code_started))
        ev.append((t0, "thread.run.step.completed", code_step))
    step = copy.deepcopy(steps[seg.step_id])
    started = {**step, "status": "in_progress", "completed_at": None, "usage": None}
    ev.append((t0, "thread.run.step.created", started))
    ev.append((t0, "thread.run.step.in_progress", started))
    if seg.message:
        msg = seg.message or {}
        opening = {**msg, "status": "in_progress", "content": [], "completed_at": None}
        ev.append((t0, "thread.message.created", opening))
        ev.append((t0, "thread.message.in_progress", opening))
        parts = msg["content"]
        at_text = next(i for i, part in enumerate(parts) if part["type"] == "text")
        if at_text:  # images (a code interpreter's) come first, whole
            images = [{"index": i, **part} for i, part in enumerate(parts[:at_text])]
            delta = {
                "id": msg["id"],
                "object": "thread.message.delta",
                "delta": {"content": images},
            }
            ev.append((t0, "thread.message.delta", delta))
        pieces = split_tokens(parts[at_text]["text"]["value"])
        for i, piece in enumerate(pieces):
            at = t0 + (t1 - t0) * i / max(1, len(pieces))
            ev.append(
                (
                    at,
                    "thread.message.delta",
                    {
                        "id": msg["id"],
                        "object": "thread.message.delta",
                        "delta": {
                            "content": [
                                {"index": at_text, "type": "text", "text": {"value": piece}}
                            ]
                        },
                    },
                )
            )
        ev.append((t1, "thread.message.completed", msg))
    if seg.outcome != "requires_action":
        ev.append((t1, "thread.run.step.completed", step))
    ev.append((t1, _FINAL_EVENTS[seg.outcome], render_run(run, t1 + 1e-6)))
    return ev
