"""Celery tasks for the steps of a job. Thin: each hands its step to `runq.runs.steps`.

Task arguments are `(job_id, token)`: Flower shows the job id, and the token lets a step
recognise a stale duplicate of itself.
"""

from __future__ import annotations

from runq.worker.celery_app import app


@app.task(name="runq.jobs.start", ignore_result=True)
def start(job_id: str, token: int = 0) -> str:
    """Create the job's run at the backend (or resume the one already created)."""
    return app.runtime.steps.run("start", job_id, token)


@app.task(name="runq.jobs.poll", ignore_result=True)
def poll(job_id: str, token: int) -> str:
    """Look at the run once; re-scheduled with a countdown while it waits."""
    return app.runtime.steps.run("poll", job_id, token)


@app.task(name="runq.jobs.look", ignore_result=True)
def look(job_id: str, token: int) -> str:
    """A safety look at a run waiting for its webhook (usually a wake, not a task: a
    look due within a few seconds is sent as this task)."""
    return app.runtime.steps.run("look", job_id, token)


@app.task(name="runq.jobs.stream", ignore_result=True)
def stream(job_id: str, token: int) -> str:
    """Follow the run's event stream, forwarding text deltas (stream mode)."""
    return app.runtime.steps.run("stream", job_id, token)


@app.task(name="runq.jobs.submit_tool_outputs", ignore_result=True)
def submit_tool_outputs(job_id: str, token: int) -> str:
    """Send a finished tool round's outputs back to the model."""
    return app.runtime.steps.run("submit_tool_outputs", job_id, token)


@app.task(name="runq.jobs.finish", ignore_result=True)
def finish(job_id: str, token: int) -> str:
    """Publish an ended job: its result under the job id in the result backend, metrics."""
    return app.runtime.steps.finish(job_id, token)


@app.task(name="runq.jobs.cancel", ignore_result=True)
def cancel(job_id: str, token: int = 0) -> str:
    """Act on a cancel request at once, whatever step the job is in."""
    return app.runtime.steps.cancel(job_id)
