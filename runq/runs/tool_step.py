"""One tool call, as the `runq.tools.call` task runs it.

The task carries the call (`ToolCall`) and the token of the job's `submit_tool_outputs`
step. The call runs at most once (`ToolCalls.run`); the one call that completes the
round sends the submit, with that token, so the submit runs once per round however
many times the calls' tasks are delivered.

A call of a job that ended, or whose producer asked to cancel it, does not run the tool:
its output says so, and the round still completes (the job's next step ends it).
"""

from __future__ import annotations

from runq.errors import JobNotFoundError
from runq.runs.job import Step
from runq.runs.scheduler import Scheduler
from runq.runs.store import JobStore
from runq.runs.toolcalls import ToolCall, ToolCalls


class ToolCallStep:
    """Runs the tool calls of rounds, one task per call."""

    def __init__(self, store: JobStore, tools: ToolCalls, scheduler: Scheduler) -> None:
        self.store = store
        self.tools = tools
        self.scheduler = scheduler

    def run(self, call: ToolCall, token: int) -> bool:
        """Run `call` at most once; True if it completed its round (the submit is sent)."""
        try:
            job = self.store.get(call.job_id)
        except JobNotFoundError:
            return False
        cancelled = job.terminal or self.store.cancel_requested(call.job_id)
        completed = self.tools.run(call, allowed=job.spec.tools, cancelled=cancelled)
        if completed:
            self.scheduler.schedule(Step.SUBMIT_TOOL_OUTPUTS, call.job_id, token, 0)
        return completed
