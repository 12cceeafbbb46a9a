"""The tool-call task (queue `tools`): one task per call, so a round's calls run in parallel."""

from __future__ import annotations

from runq.errors import JobNotFoundError
from runq.runs import keys
from runq.runs.job import Step
from runq.runs.toolcalls import ToolCall
from runq.worker.celery_app import app


@app.task(name="runq.tools.call", ignore_result=True)
def call(
    job_id: str, round_no: int, call_id: str, name: str, arguments: str, expected: int, token: int
) -> bool:
    """Run one call at most once; the call that completes its round schedules the submit."""
    rt = app.runtime
    try:
        job = rt.store.get(job_id)
    except JobNotFoundError:
        return False
    cancelled = bool(rt.redis.exists(keys.cancel(job_id))) or job.terminal
    request = ToolCall(job_id, round_no, call_id, name, arguments, expected)
    completed = rt.tools.run(request, allowed=job.spec.tools, cancelled=cancelled)
    if completed:
        rt.steps.scheduler.schedule(Step.SUBMIT_TOOL_OUTPUTS, job_id, token, 0)
    return completed
