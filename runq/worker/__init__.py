"""The Celery worker side of runq: `celery -A runq.worker worker -Q runs,tools`.

`runq.worker.app` is the Celery app; `AsyncResult(job_id, app=runq.worker.app).get()`
returns a finished job's result.

The app (and with it the signal handlers, `runq.worker.signals`) is loaded on first
access to `runq.worker.app` or import of `runq.worker.celery_app`, not on import of the
package: producers that only read Redis (`runq ask` re-runs, `runq status`) import
`runq.worker.discovery` and should not pay for Celery.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from celery import Celery

    app: Celery

__all__ = ["app"]


def __getattr__(name: str) -> Any:
    if name == "app":
        from runq.worker.celery_app import app  # connects the signal handlers too

        return app
    raise AttributeError(f"module 'runq.worker' has no attribute {name!r}")
