"""The tool-call task (queue `tools`): one task per call, so a round's calls run in parallel."""

from __future__ import annotations

from runq.runs.toolcalls import ToolCall
from runq.worker.celery_app import app


@app.task(name="runq.tools.call", ignore_result=True)
def call(
    job_id: str, round_no: int, call_id: str, name: str, arguments: str, expected: int, token: int
) -> bool:
    """Run one call at most once; the call that completes its round schedules the submit."""
    return app.runtime.tool_calls.run(
        ToolCall(job_id, round_no, call_id, name, arguments, expected), token
    )
