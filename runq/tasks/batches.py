"""The batcher's task: one tick of `runq.runs.batcher.driver.Batcher`.

Every worker's pump sends it at most once per `RUNQ_BATCH_TICK` seconds fleet-wide; the
tick itself runs only under the batcher's Redis lease, so two ticks never overlap and a
killed worker's tick is taken up by the next one, anywhere.
"""

from __future__ import annotations

from celery import current_task

from runq.worker.celery_app import app


@app.task(name="runq.batches.tick", ignore_result=True)
def tick() -> dict[str, int]:
    """Cut the batches that are due and move every open batch on."""
    batcher = app.runtime.batcher
    if batcher is None:
        return {}
    owner = str(getattr(current_task.request, "id", None) or "batcher")
    return batcher.tick(owner)


@app.task(name="runq.jobs.batch", ignore_result=True)
def batch(job_id: str, token: int) -> str:
    """A batch-tier job's `batch` step: apply its line's result, or wait again."""
    return app.runtime.steps.run("batch", job_id, token)
