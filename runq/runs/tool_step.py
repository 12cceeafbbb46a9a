"""One tool call, as the `runq.tools.call` task runs it.

The task carries the call (`ToolCall`) and the token of the job's `submit_tool_outputs`
step. The call runs at most once (`ToolCalls.run`); the one call that completes the
round runs the submit step itself, in the same task, with that token, so the submit
runs once per round however many times the calls' tasks are delivered.

Running it in-process rather than sending `runq.jobs.submit_tool_outputs` saves a Celery
task per round (its message, acknowledgement bookkeeping and events) and the wait in
the `runs` queue. It stays as safe as the task: the submit step claims the job and acts
only if the record's step and token are this round's (a duplicate finds them stale),
and the fan-in's NX flag means one call per round gets here. A submit that raises is
handed to the `runq.jobs.submit_tool_outputs` task, as the sweeper hands a lost one.

Only a submit that is one short request runs here (`submits_in_one_request`): a
background response or an Assistants submit, in poll mode. A Chat turn or a stream
lasts as long as the model's answer; in a tool worker's slot (a prefork process, on a
`-Q tools` worker) that would starve the tools, so those still go to the `runs` queue,
as does a job on a fallback chain (its link may be a Chat model).

A call of a job that ended, or whose producer asked to cancel it, does not run the tool:
its output says so, and the round still completes (the job's next step ends it).

A call that waits for a person (`runs.approvals`) runs nothing until it is decided: its
task posts the approval webhook (when configured) and ends. The decision sends the task
again: approved, the tool runs; denied, the denial is the call's output.
"""

from __future__ import annotations

from collections.abc import Callable

import structlog

from runq.errors import JobNotFoundError
from runq.runs.approval_webhook import ApprovalWebhook
from runq.runs.approvals import APPROVED, MCP, PENDING, Approvals
from runq.runs.job import Job, Step
from runq.runs.scheduler import Scheduler
from runq.runs.store import JobStore
from runq.runs.toolcalls import StoredOutput, ToolCall, ToolCalls

log = structlog.get_logger("runq.tools")


def submits_in_one_request(job: Job) -> bool:
    """Whether the job's submit step is one short backend request (see the docstring)."""
    return job.spec.mode in ("poll", "webhook") and job.spec.backend != "chat" and not job.chain


class ToolCallStep:
    """Runs the tool calls of rounds, one task per call."""

    def __init__(
        self,
        store: JobStore,
        tools: ToolCalls,
        scheduler: Scheduler,
        submit: Callable[[str, int], object] | None = None,
        *,
        approvals: Approvals | None = None,
        webhook: ApprovalWebhook | None = None,
    ) -> None:
        """`submit(job_id, token)` runs the submit step in this process (the worker's
        `Steps.run`); without it the submit is scheduled as its own task. `approvals`:
        the calls that wait for a person (None: no call waits), `webhook` says they do."""
        self.store = store
        self.tools = tools
        self.scheduler = scheduler
        self.submit = submit
        self.approvals = approvals
        self.webhook = webhook

    def run(self, call: ToolCall, token: int) -> bool:
        """Run `call` at most once; True if it completed its round (the submit is done)."""
        try:
            job, cancel_flag = self.store.get_with_cancel(call.job_id)
        except JobNotFoundError:
            return False
        cancelled = job.terminal or cancel_flag
        given = None
        if not cancelled:
            waits, given = self._decision(call, job)
            if waits:
                return False  # decided later: the decision sends this task again
        completed = self.tools.run(call, allowed=job.spec.tools, cancelled=cancelled, given=given)
        if completed:
            self._submit(job, token)
        return completed

    def _decision(self, call: ToolCall, job: Job) -> tuple[bool, StoredOutput | None]:
        """For a call that waits for a person: whether it still waits, and the output
        that replaces the tool's (a denial, an MCP server's answer). Other calls: run."""
        if self.approvals is None or not self.approvals.asks(call.name, job.spec):
            return False, None
        approval = self.approvals.get(call.job_id, call.call_id)
        if approval is None:
            return True, None  # its round was not committed: the round's step asks again
        if approval.status == PENDING:
            if self.webhook is not None:
                self.webhook.notify(approval, job.spec.tenant)
            log.info("tools.waiting_approval", job_id=call.job_id, call_id=call.call_id)
            return True, None
        if approval.status != APPROVED or approval.kind == MCP:
            return False, approval.output()
        return False, None

    def _submit(self, job: Job, token: int) -> None:
        job_id = job.id
        if self.submit is None or not submits_in_one_request(job):
            self.scheduler.schedule(Step.SUBMIT_TOOL_OUTPUTS, job_id, token, 0)
            return
        try:
            self.submit(job_id, token)
        except Exception as err:  # the round is complete; the submit gets its own task
            log.warning("tools.submit_deferred", job_id=job_id, error=repr(err))
            self.scheduler.schedule(Step.SUBMIT_TOOL_OUTPUTS, job_id, token, 0)
